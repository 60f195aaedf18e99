"""keras-lottery: lottery-ticket pruning for Keras 3 on TensorFlow, JAX and PyTorch.

Masked layers, conversion of a Keras model to them and back, pruning as pure
functions over `{variable_path: array}` dicts, and masks in and out of a model.
"""

from keras_lottery import layers, pruning
from keras_lottery.conversion import prunable, strip
from keras_lottery.layers import (
    MaskedConv1D,
    MaskedConv2D,
    MaskedConv3D,
    MaskedDense,
    MaskedDepthwiseConv2D,
    MaskedEinsumDense,
    MaskedEmbedding,
    MaskedLayer,
)
from keras_lottery.masks import (
    SparsityReport,
    apply_masks,
    get_masks,
    get_weights,
    masked_layers,
    rates_for,
    set_weights,
    sparsity_report,
    weight_infos,
)
from keras_lottery.pruning import (
    PruneRates,
    density,
    global_magnitude_prune,
    magnitude_prune,
    prune_count,
    random_masks_like,
    random_prune,
)

__version__ = "0.1.0"
