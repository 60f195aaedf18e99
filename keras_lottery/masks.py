"""Masks in and out of a model, and how sparse it is.

Every dict here is keyed by the prunable weight's `variable.path` (for
example `"sequential/masked_dense/kernel"`), as in `keras_lottery.pruning`.
"""

import dataclasses
from collections.abc import Mapping

import keras
import numpy as np

from keras_lottery.layers import MaskedLayer
from keras_lottery.pruning import PruneRates, WeightInfo, validate_masks


def masked_layers(model) -> list:
    """The masked layers of `model`, nested models included, in model order."""
    if isinstance(model, MaskedLayer):
        return [model]
    # `_flatten_layers` is how Keras itself walks nested layers and models.
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, MaskedLayer)
    ]


def prunable_variables(model) -> dict:
    """`{path: (weight_variable, mask_variable, layer)}` for every prunable weight.

    Raises:
        ValueError: if `model` has no masked layer, one is not built yet, or
            two weights share a path.
    """
    layers = masked_layers(model)
    if not layers:
        raise ValueError(
            "Expected a model with masked layers. Received a model without any: "
            "convert it with `keras_lottery.prunable(model)` or build it from "
            "`keras_lottery.layers`."
        )
    unbuilt = [layer.name for layer in layers if not layer.built]
    if unbuilt:
        raise ValueError(
            "Expected a built model. Received unbuilt masked layers "
            f"{unbuilt}: call the model on a batch or give it an `Input` first."
        )
    found = {}
    for layer in layers:
        for weight, mask in layer.get_prunable_weights():
            if weight.path in found:
                raise ValueError(
                    f"Expected unique variable paths. Received two weights at "
                    f"{weight.path!r}: give the layers or nested models distinct names."
                )
            found[weight.path] = (weight, mask, layer)
    return found


def get_weights(model) -> dict[str, np.ndarray]:
    """`{path: array}` of the stored prunable weights (not multiplied by masks)."""
    return {
        path: keras.ops.convert_to_numpy(weight)
        for path, (weight, _, _) in prunable_variables(model).items()
    }


def set_weights(model, weights: Mapping[str, np.ndarray]) -> None:
    """Assigns prunable weights by path, e.g. to rewind them to a snapshot.

    Masks are not touched: follow with `apply_masks` to zero pruned weights.
    Paths not in `weights` are left as they are.
    """
    variables = prunable_variables(model)
    _check_paths(weights, variables, "weights")
    for path, value in weights.items():
        if np.shape(value) != tuple(variables[path][0].shape):
            raise ValueError(
                f"Expected weights[{path!r}] of shape {tuple(variables[path][0].shape)}. "
                f"Received shape {np.shape(value)}"
            )
    for path, value in weights.items():
        variables[path][0].assign(value)


def get_masks(model) -> dict[str, np.ndarray]:
    """`{path: boolean array}` of the model's current masks."""
    return {
        path: keras.ops.convert_to_numpy(mask) != 0
        for path, (_, mask, _) in prunable_variables(model).items()
    }


def apply_masks(model, masks: Mapping[str, np.ndarray]) -> None:
    """Sets the masks of `model` and zeroes the pruned stored weights.

    Writes `mask` into each mask variable and `weight * mask` into each
    weight, so that stored weights are exactly zero where pruned, outside the
    train step. Paths not in `masks` are left as they are.

    Args:
        model: a model with masked layers, built.
        masks: `{path: binary array}` for some or all prunable weights.
    """
    variables = prunable_variables(model)
    _check_paths(masks, variables, "masks")
    weights = {path: variables[path][0] for path in masks}
    # Checks everything before assigning anything: a bad mask changes nothing.
    # Shape-only stand-ins (no memory) for the weights validate_masks compares against.
    masks = validate_masks(masks, {p: np.broadcast_to(0.0, w.shape) for p, w in weights.items()})
    for path, mask in masks.items():
        weight, mask_variable, _ = variables[path]
        mask_variable.assign(mask.astype(mask_variable.dtype))
        weight.assign(keras.ops.convert_to_numpy(weight) * mask)


def _check_paths(given, variables, name):
    unknown = sorted(set(given) - set(variables))
    if unknown:
        raise ValueError(
            f"Expected `{name}` keys among the model's prunable weights "
            f"{sorted(variables)}. Received unknown paths: {unknown}"
        )


def weight_infos(model) -> dict[str, WeightInfo]:
    """`{path: WeightInfo}`: owning layer, kind and whether it is an output layer."""
    variables = prunable_variables(model)
    outputs = {id(layer) for layer in _output_layers(model)}
    return {
        path: WeightInfo(layer.name, layer.prunable_kind, id(layer) in outputs)
        for path, (_, _, layer) in variables.items()
    }


def rates_for(model, rates: PruneRates | float) -> dict[str, float]:
    """`{path: rate}` for every prunable weight of `model` under `rates`."""
    if not isinstance(rates, PruneRates):
        rates = PruneRates(rates)
    return rates.resolve(weight_infos(model))


def _output_layers(model) -> list:
    """Masked layers whose outputs reach the model's outputs through no other masked layer.

    Found by walking the functional graph back from the outputs; a model
    without a graph (subclassed) falls back to its last masked layer.
    """
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if not outputs:
        layers = masked_layers(model)
        return layers[-1:]
    found, seen = [], set()
    stack = list(keras.tree.flatten(outputs))
    while stack:
        history = getattr(stack.pop(), "_keras_history", None)
        if history is None:
            continue
        operation = history.operation
        key = (id(operation), history.node_index)
        if key in seen:
            continue
        seen.add(key)
        if isinstance(operation, MaskedLayer):
            if operation not in found:
                found.append(operation)
            continue
        if isinstance(operation, keras.Model):
            inner = _output_layers(operation)
            if inner:
                found.extend(layer for layer in inner if layer not in found)
                continue
        node = operation._inbound_nodes[history.node_index]
        stack.extend(node.input_tensors)
    return found


@dataclasses.dataclass(frozen=True)
class WeightSparsity:
    """One prunable weight's count of weights: total and remaining."""

    path: str
    shape: tuple
    total: int
    remaining: int

    @property
    def density(self) -> float:
        """Fraction of the weight remaining."""
        return self.remaining / self.total if self.total else 1.0


@dataclasses.dataclass(frozen=True)
class SparsityReport:
    """Per-weight and overall counts of remaining weights. `str()` gives a table."""

    rows: tuple

    @property
    def total(self) -> int:
        return sum(row.total for row in self.rows)

    @property
    def remaining(self) -> int:
        return sum(row.remaining for row in self.rows)

    @property
    def density(self) -> float:
        """Fraction of all prunable weights remaining."""
        return self.remaining / self.total if self.total else 1.0

    def to_dict(self) -> dict:
        """Plain data: `{"weights": [...], "total", "remaining", "density"}`."""
        return {
            "weights": [
                {**dataclasses.asdict(row), "shape": list(row.shape), "density": row.density}
                for row in self.rows
            ],
            "total": self.total,
            "remaining": self.remaining,
            "density": self.density,
        }

    def __str__(self) -> str:
        header = ("weight", "shape", "total", "remaining", "density")
        lines = [
            (row.path, "x".join(map(str, row.shape)), f"{row.total:,}",
             f"{row.remaining:,}", f"{row.density:.2%}")
            for row in self.rows
        ]
        lines.append(("all", "", f"{self.total:,}", f"{self.remaining:,}", f"{self.density:.2%}"))
        widths = [max(len(r[i]) for r in [header, *lines]) for i in range(5)]

        def fmt(cells):
            first = cells[0].ljust(widths[0])
            rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:]))
            return "  ".join([first, *rest])

        rule = "-" * len(fmt(header))
        return "\n".join([fmt(header), rule, *map(fmt, lines[:-1]), rule, fmt(lines[-1])])


def sparsity_report(model_or_masks) -> SparsityReport:
    """Counts of remaining weights per prunable weight, from a model or a mask dict.

    Example:

    >>> report = sparsity_report(model)
    >>> report.density         # fraction of prunable weights remaining
    >>> print(report)          # a table, one row per weight and a total
    """
    if isinstance(model_or_masks, Mapping):
        masks = validate_masks(model_or_masks)
    else:
        masks = get_masks(model_or_masks)
    return SparsityReport(
        tuple(
            WeightSparsity(path, tuple(mask.shape), int(mask.size), int(np.count_nonzero(mask)))
            for path, mask in masks.items()
        )
    )
