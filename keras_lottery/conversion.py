"""Turning a Keras model into a prunable one (`prunable`) and back (`strip`)."""

from collections.abc import Callable, Iterable

import keras
# Keras exports no public name for the class behind `keras.Model(inputs, outputs)`.
from keras.src.models.functional import Functional

from keras_lottery.layers import MASKED_TWINS, MaskedLayer

# The plain Keras class each masked layer exports as.
_PLAIN_TWINS = {masked: plain for plain, masked in MASKED_TWINS.items()}


def prunable(model, exclude: Iterable[str] | Callable | None = None):
    """Returns a copy of `model` whose supported layers are masked twins.

    Every `Dense`, `EinsumDense`, `Conv1D/2D/3D`, `DepthwiseConv2D` and
    `Embedding` of a Sequential or Functional model, nested models included,
    becomes its `keras_lottery.layers` twin with the same configuration and
    weights and an all-ones mask. Other layers (BatchNorm, pooling, ...) are
    copied unchanged. `model` itself is not modified and shares no variables
    with the copy.

    Args:
        model: a `keras.Sequential` or Functional `keras.Model`.
        exclude: layer names to leave unmasked, or a function
            `layer -> bool` that returns True for layers to leave unmasked.
            Defaults to masking every supported layer.

    Returns:
        A new model of the same structure.

    Example:

    >>> model = keras_lottery.prunable(keras_model, exclude=["embedding"])
    """
    _check_graph_model(model, "prunable")
    should_skip = _exclusion(model, exclude)

    def to_masked(layer):
        twin = MASKED_TWINS.get(type(layer))
        if twin is None or should_skip(layer):
            return layer.__class__.from_config(layer.get_config())
        _check_convertible(layer)
        return twin.from_config(layer.get_config())

    return _clone_with_weights(model, to_masked, _copy_weights)


def strip(model):
    """Returns a plain Keras copy of `model` with the masks baked in as zeros.

    Each masked layer becomes its Keras twin (`MaskedDense` -> `Dense`, ...)
    holding `weight * mask`; the result loads with plain Keras, without
    `keras_lottery` installed. `model` is not modified.

    Args:
        model: a Sequential or Functional model with masked layers.

    Returns:
        A new model of the same structure and the same predictions.
    """
    _check_graph_model(model, "strip")

    def to_plain(layer):
        plain = _PLAIN_TWINS.get(type(layer), type(layer))
        return plain.from_config(layer.get_config())

    return _clone_with_weights(model, to_plain, _copy_masked_weights)


def _clone_with_weights(model, make_layer, copy_weights):
    pairs = []

    def clone(layer):
        new = make_layer(layer)
        pairs.append((layer, new))
        return new

    new_model = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for old, new in pairs:
        if old.built:
            copy_weights(old, new)
    return new_model


def _copy_weights(old, new):
    """Copies variables by name: the masked twin adds masks the original lacks."""
    values = {v.name: keras.ops.convert_to_numpy(v) for v in old.weights}
    for variable in new.weights:
        if variable.name in values:
            variable.assign(values[variable.name])


def _copy_masked_weights(old, new):
    values = {v.name: keras.ops.convert_to_numpy(v) for v in old.weights}
    if isinstance(old, MaskedLayer):
        for weight, mask in old.get_prunable_weights():
            values[weight.name] = values[weight.name] * (values.pop(mask.name) != 0)
    for variable in new.weights:
        variable.assign(values[variable.name])


def _check_graph_model(model, function):
    if isinstance(model, (keras.Sequential, Functional)):
        return
    kind = "a masked layer" if isinstance(model, MaskedLayer) else (
        f"a subclassed model ({type(model).__name__})"
        if isinstance(model, keras.Model) else repr(model)[:80]
    )
    advice = (
        "Build a subclassed model from the masked layers of "
        "`keras_lottery.layers` (MaskedDense, MaskedConv2D, ...) directly."
        if function == "prunable"
        else "Rebuild it from plain Keras layers and copy `weight * mask` in."
    )
    raise ValueError(
        f"`{function}()` expected a Sequential or Functional Keras model. "
        f"Received {kind}. {advice}"
    )


def _exclusion(model, exclude):
    if exclude is None:
        return lambda layer: False
    if callable(exclude):
        return exclude
    if isinstance(exclude, str):
        exclude = [exclude]
    names = set(exclude)
    known = {layer.name for layer in model._flatten_layers(include_self=False, recursive=True)}
    unknown = sorted(names - known)
    if unknown:
        raise ValueError(
            f"Expected `exclude` to name layers of the model, among {sorted(known)}. "
            f"Received unknown names: {unknown}"
        )
    return lambda layer: layer.name in names


def _check_convertible(layer):
    if getattr(layer, "quantization_mode", None):
        raise ValueError(
            f"Expected an unquantized layer. Received layer {layer.name!r} "
            f"quantized as {layer.quantization_mode!r}: prune before quantizing."
        )
    if getattr(layer, "lora_enabled", False):
        raise ValueError(
            f"Expected a layer without LoRA. Received layer {layer.name!r} with "
            "LoRA enabled: merge or drop the LoRA weights before pruning."
        )

