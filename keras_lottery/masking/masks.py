"""Masks in and out of a model: the prunable weights, their masks, kinds and rates.

Every dict here is keyed by the prunable weight's `variable.path` (for
example `"sequential/masked_dense/kernel"`), as in `keras_lottery.pruning.rules`.
"""

import collections
from collections.abc import Mapping
from typing import NamedTuple

import keras
import numpy as np

from keras_lottery import _keras, checks
from keras_lottery.layers import MaskedLayer
from keras_lottery.pruning.rules import PruneRates, WeightInfo, validate_masks


def masked_layers(model) -> list:
    """The masked layers of `model`, nested models and wrappers included, in model order."""
    return [layer for layer in _keras.sublayers(model, include_self=True)
            if isinstance(layer, MaskedLayer)]


class Prunable(NamedTuple):
    """A prunable weight of a model: variable, mask, the masked layer owning the mask, kind."""

    weight: object
    mask: object
    layer: object
    kind: str


def prunable_variables(model) -> dict:
    """`{path: Prunable(weight, mask, layer, kind)}` for every prunable weight.

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
        for weight, mask, kind in layer.get_prunable_weights():
            if weight.path in found:
                raise ValueError(
                    f"Expected unique variable paths. Received two weights at "
                    f"{weight.path!r}: give the layers or nested models distinct names."
                )
            found[weight.path] = Prunable(weight, mask, layer, kind)
    return found


def get_weights(model) -> dict[str, np.ndarray]:
    """`{path: array}` of the stored prunable weights (not multiplied by masks)."""
    return {
        path: keras.ops.convert_to_numpy(weight)
        for path, (weight, *_) in prunable_variables(model).items()
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
        for path, (_, mask, *_) in prunable_variables(model).items()
    }


def apply_masks(model, masks: Mapping[str, np.ndarray], partial: bool = False) -> None:
    """Sets the masks of `model` and zeroes the pruned stored weights.

    Writes `mask` into each mask variable and `weight * mask` into each
    weight, so that stored weights are exactly zero where pruned, outside the
    train step.

    Args:
        model: a model with masked layers, built.
        masks: `{path: binary array}` for every prunable weight.
        partial: accept masks for some weights only, leaving the others as
            they are. Defaults to False: a missing path is an error.
    """
    partial = checks.boolean("partial", partial)
    variables = prunable_variables(model)
    _check_paths(masks, variables, "masks")
    missing = sorted(set(variables) - set(masks))
    if missing and not partial:
        raise ValueError(
            f"Expected `masks` for every prunable weight. Received none for {missing}: "
            "pass them, or `partial=True` to leave those masks as they are."
        )
    weights = {path: variables[path][0] for path in masks}
    # Checks everything before assigning anything: a bad mask changes nothing.
    # Shape-only stand-ins (no memory) for the weights validate_masks compares against.
    masks = validate_masks(masks, {p: np.broadcast_to(0.0, w.shape) for p, w in weights.items()})
    for path, mask in masks.items():
        weight, mask_variable, *_ = variables[path]
        mask_variable.assign(mask.astype(mask_variable.dtype))
        weight.assign(keras.ops.convert_to_numpy(weight) * mask)


def _check_paths(given, variables, name):
    unknown = sorted(set(given) - set(variables))
    if unknown:
        raise ValueError(
            f"Expected `{name}` keys among the model's prunable weights "
            f"{sorted(variables)}. Received unknown paths: {unknown}"
        )


def layer_labels(model) -> dict:
    """`{id(layer): label}` for every layer of `model` at any depth: its name,
    or its path where another layer has the same name (the blocks of a
    KerasHub backbone each hold a "query"). Rates and structures name layers
    by label."""
    layers = _keras.sublayers(model)
    counts = collections.Counter(layer.name for layer in layers)
    return {id(layer): layer.name if counts[layer.name] == 1 or not layer.path else layer.path
            for layer in layers} | {id(model): model.name}


def weight_infos(model) -> dict[str, WeightInfo]:
    """`{path: WeightInfo}`: owning layer (its label, see `layer_labels`), kind
    and whether it is an output layer.

    `is_output` is None for every weight when the output layers cannot be
    found (a subclassed model that was never called).
    """
    variables = prunable_variables(model)
    with _keras.traces_forgotten(model):
        outputs = _output_layers(model)
    output_ids = None if outputs is None else {id(layer) for layer in outputs}
    labels = layer_labels(model)
    return {
        path: WeightInfo(labels[id(entry.layer)], entry.kind,
                         None if output_ids is None else id(entry.layer) in output_ids)
        for path, entry in variables.items()
    }


def rates_for(model, rates: PruneRates | float) -> dict[str, float]:
    """`{path: rate}` for every prunable weight of `model` under `rates`."""
    if not isinstance(rates, PruneRates):
        rates = PruneRates(rates)
    return rates.resolve(weight_infos(model))


def _output_layers(model) -> list | None:
    """Masked layers whose outputs reach the model's outputs through no other masked layer.

    Found by walking the functional graph back from the outputs. A model
    without a graph (subclassed) has the masked layer it called last, by the
    order of the last call; None if it was never called.
    """
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if not outputs:
        layers = [layer for layer in masked_layers(model) if layer.last_read()]
        return [max(layers, key=lambda layer: layer.last_read())] if layers else None
    found, seen = [], set()
    stack = list(keras.tree.flatten(outputs))
    while stack:
        made = _keras.made_by(stack.pop())
        if made is None:
            continue
        operation, node = made
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(operation, keras.Model):
            inner = _output_layers(operation)
        elif isinstance(operation, keras.layers.Layer):
            inner = masked_layers(operation)  # Itself, or those a wrapper holds.
            if len(inner) > 1 and not isinstance(operation, MaskedLayer):
                # A composite layer (a KerasHub block): the masked layers that
                # make its outputs, found in its own call.
                function = _keras.inner_function(operation, node)
                inner = (function is not None and _output_layers(function)) or inner
        else:
            inner = None  # An op such as `keras.ops.add` on symbolic tensors.
        if inner:
            found.extend(layer for layer in inner if layer not in found)
            continue
        stack.extend(node.input_tensors)
    return found


def __getattr__(name):
    # `sparsity_report` and `SparsityReport` moved to `keras_lottery.masking.sparsity`.
    if name in ("sparsity_report", "SparsityReport"):
        from keras_lottery.masking import sparsity

        return getattr(sparsity, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
