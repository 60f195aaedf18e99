"""keras-lottery: lottery-ticket pruning for Keras 3 on TensorFlow, JAX and PyTorch.

The public names are the ones below; `docs/architecture.md` maps the package.
Masked layers (`layers`), masks on a model (`masking`), which weights to prune
(`pruning`, pure functions over `{variable_path: array}` dicts, and its
criteria), whole neurons, filters and heads (`structured`), and `TicketSearch`,
the train-prune-rewind loop through `model.fit` (`search`).

Only the masked layers (with the model masked in place, and the schedules and
metrics a saved model may name) are imported with the package, so that
`keras.saving.load_model` finds them; everything else loads on first use,
which keeps `keras-lottery --help` quick.
"""

import importlib

# Registered with Keras on import: a saved masked model needs them to load
# (`layers.in_place` registers the model of a model masked in place).
from keras_lottery import layers, metrics, schedules
from keras_lottery.layers import in_place as _in_place  # noqa: F401
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

__version__ = "0.1.0"

# Public name -> the module that defines it.
_NAMES = {
    "keras_lottery.masking.conversion": ["prunable", "strip", "copy_model", "copy_variables"],
    "keras_lottery.masking.masks": [
        "apply_masks", "get_masks", "get_weights", "masked_layers", "rates_for",
        "set_weights", "weight_infos"],
    "keras_lottery.masking.sparsity": [
        "SparsityReport", "compressed_size", "sparsity_report", "unmasked_layers"],
    "keras_lottery.pruning.rules": [
        "PruneRates", "density", "erk_densities", "global_magnitude_prune",
        "global_score_prune", "magnitude_prune", "prune_count", "random_masks_like",
        "random_prune", "rates_for_densities", "score_prune"],
    "keras_lottery.pruning.criteria": ["Criterion"],
    "keras_lottery.pruning.saliency": ["prune_at_initialization"],
    "keras_lottery.structured.structures": ["Structure"],
    "keras_lottery.structured.shrink": ["shrink", "shrink_report"],
    "keras_lottery.structured.early_bird": ["EarlyBird"],
    "keras_lottery.sparse.schedules": ["ConstantSparsity", "PolynomialDecay", "PruningSchedule"],
    "keras_lottery.sparse.gradual": ["GradualPruning"],
    "keras_lottery.sparse.dynamic": ["RigL", "SET"],
    "keras_lottery.search.ticket_search": ["TicketSearch"],
    "keras_lottery.search.together": ["run_together"],
    "keras_lottery.search.results": ["InstabilityRecord", "RoundRecord", "SearchResult"],
    "keras_lottery.search.stability": ["instability"],
    "keras_lottery.search.aggregate": ["AggregateResult"],
    "keras_lottery.search.export": ["export_ticket", "load_ticket"],
    "keras_lottery.search.run_directory": ["load_result", "load_masks"],
    "keras_lottery.runtime.distribution": ["data_parallel"],
    "keras_lottery.runtime.speed": ["fast_compile_settings"],
    "keras_lottery.sweeps.sweep": ["Sweep"],
}
# Modules reachable as attributes (`kl.text.text_splits`), under the names
# they had before the package was grouped into subpackages.
_MODULES = {
    "aggregate": "keras_lottery.search.aggregate",
    "callbacks": "keras_lottery.search.callbacks",
    "conversion": "keras_lottery.masking.conversion",
    "criteria": "keras_lottery.pruning.criteria",
    "datasets": "keras_lottery.data.datasets",
    "distribution": "keras_lottery.runtime.distribution",
    "early_bird": "keras_lottery.structured.early_bird",
    "export": "keras_lottery.search.export",
    "models": "keras_lottery.models",
    "plots": "keras_lottery.plots",
    "presets": "keras_lottery.presets",
    "pruning": "keras_lottery.pruning",
    "results": "keras_lottery.search.results",
    "saliency": "keras_lottery.pruning.saliency",
    "shrinking": "keras_lottery.structured.shrink",
    "sparsity": "keras_lottery.masking.sparsity",
    "speed": "keras_lottery.runtime.speed",
    "state": "keras_lottery.search.state",
    "structured_pruning": "keras_lottery.structured.unit_masks",
    "structures": "keras_lottery.structured.structures",
    "sweeps": "keras_lottery.sweeps",
    "text": "keras_lottery.data.text",
    "transfer": "keras_lottery.search.transfer",
    "unit_groups": "keras_lottery.structured.unit_groups",
}
_WHERE = {name: module for module, names in _NAMES.items() for name in names}

__all__ = sorted([*_WHERE, *_MODULES, "layers", "metrics", "schedules",
                  *(name for name in dir() if name.startswith("Masked"))])


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        raise AttributeError(f"module 'keras_lottery' has no attribute {name!r}")
    globals()[name] = value  # Looked up once.
    return value


def __dir__():
    return sorted({*globals(), *__all__})
