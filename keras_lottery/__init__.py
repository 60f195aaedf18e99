"""keras-lottery: lottery-ticket pruning for Keras 3 on TensorFlow, JAX and PyTorch.

Masked layers, conversion of a Keras model to them and back, pruning as pure
functions over `{variable_path: array}` dicts, masks in and out of a model,
and `TicketSearch`, the train-prune-rewind loop through `model.fit`.
"""

from keras_lottery import (
    callbacks,
    datasets,
    layers,
    models,
    plots,
    presets,
    pruning,
    schedules,
    state,
)
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
    rates_for_densities,
)
from keras_lottery.results import RoundRecord, SearchResult
from keras_lottery.ticket_search import SearchConfig, TicketSearch

__version__ = "0.1.0"
