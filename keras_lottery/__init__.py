"""keras-lottery: lottery-ticket pruning for Keras 3 on TensorFlow, JAX and PyTorch.

Masked layers, conversion of a Keras model to them and back, pruning as pure
functions over `{variable_path: array}` dicts (weight by weight, or whole
neurons, filters and heads that `shrink` removes for real), pruning criteria (after
training, and at initialization: SNIP, GraSP, SynFlow), masks in and out of
a model, and `TicketSearch`, the train-prune-rewind loop through `model.fit`.
"""

from keras_lottery import (
    aggregate,
    callbacks,
    conversion,
    criteria,
    datasets,
    distribution,
    early_bird,
    export,
    layers,
    metrics,
    models,
    plots,
    presets,
    pruning,
    saliency,
    schedules,
    sparsity,
    speed,
    shrink as shrinking,
    state,
    structured_pruning,
    structures,
    text,
    transfer,
    unit_groups,
)
from keras_lottery.criteria import Criterion
from keras_lottery.conversion import prunable, strip
from keras_lottery.distribution import data_parallel
from keras_lottery.layers import (
    MaskedConv1D,
    MaskedConv1DTranspose,
    MaskedConv2D,
    MaskedConv2DTranspose,
    MaskedConv3D,
    MaskedConv3DTranspose,
    MaskedConvLSTM1D,
    MaskedConvLSTM2D,
    MaskedConvLSTM3D,
    MaskedDense,
    MaskedDepthwiseConv1D,
    MaskedDepthwiseConv2D,
    MaskedEinsumDense,
    MaskedEmbedding,
    MaskedGroupQueryAttention,
    MaskedGRU,
    MaskedGRUCell,
    MaskedLayer,
    MaskedLSTM,
    MaskedLSTMCell,
    MaskedMultiHeadAttention,
    MaskedSeparableConv1D,
    MaskedSeparableConv2D,
    MaskedSimpleRNN,
    MaskedSimpleRNNCell,
)
from keras_lottery.masks import (
    apply_masks,
    get_masks,
    get_weights,
    masked_layers,
    rates_for,
    set_weights,
    weight_infos,
)
from keras_lottery.sparsity import SparsityReport, sparsity_report, unmasked_layers
from keras_lottery.speed import fast_compile_settings
from keras_lottery.pruning import (
    PruneRates,
    density,
    erk_densities,
    global_magnitude_prune,
    global_score_prune,
    magnitude_prune,
    prune_count,
    random_masks_like,
    random_prune,
    rates_for_densities,
    score_prune,
)
from keras_lottery.aggregate import AggregateResult
from keras_lottery.early_bird import EarlyBird
from keras_lottery.export import export_ticket, load_ticket
from keras_lottery.shrink import shrink, shrink_report
from keras_lottery.structures import Structure
from keras_lottery.results import RoundRecord, SearchResult
from keras_lottery.ticket_search import SearchConfig, TicketSearch

__version__ = "0.1.0"
