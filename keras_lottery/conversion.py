"""Turning a Keras model into a prunable one (`prunable`) and back (`strip`).

Both clone the model layer by layer, each layer from its config with its
class swapped for its twin (inner layers of wrappers such as `Bidirectional`
and `TimeDistributed` too), then copy every variable by its position within
the layer, checking names and shapes: masks are the only variables one side
has and the other lacks.
"""

import itertools
from collections.abc import Callable, Iterable

import keras

from keras_lottery.layers import MASKED_TWINS, MaskedLayer
from keras_lottery.masks import masked_layers
from keras_lottery.sparsity import warn_unmasked

# The plain Keras class each masked layer exports as.
_PLAIN_TWINS = {masked: plain for plain, masked in MASKED_TWINS.items()}


def prunable(model, exclude: Iterable[str] | Callable | None = None):
    """Returns a copy of `model` whose supported layers are masked twins.

    Every layer with a twin in `keras_lottery.layers.MASKED_TWINS` (Dense,
    EinsumDense, the convolutions, Embedding, the recurrent and attention
    layers), in a Sequential or Functional model, nested models and wrappers
    (`Bidirectional`, `TimeDistributed`) included, becomes its twin with the
    same configuration and variables and all-ones masks. Other layers are
    copied unchanged; those holding weights (other than normalization layers)
    are named in a warning, since they stay dense. `model` itself is not
    modified and shares no variables with the copy.

    Args:
        model: a `keras.Sequential` or Functional `keras.Model`.
        exclude: layer names to leave unmasked, or a function
            `layer -> bool` that returns True for layers to leave unmasked.
            Defaults to masking every supported layer.

    Returns:
        A new model of the same structure and the same predictions.

    Example:

    >>> model = keras_lottery.prunable(keras_model, exclude=["embedding"])
    """
    _check_graph_model(model, "prunable")
    is_excluded = _exclusion(model, exclude)
    excluded = _subtrees(model, is_excluded)

    def to_masked(layer):
        if id(layer) in excluded:
            return _rebuilt(type(layer), layer.get_config(), layer)
        twin = MASKED_TWINS.get(type(layer))
        if twin is None:
            return _with_inner_layers(layer, to_masked)
        _check_convertible(layer)
        return _rebuilt(twin, layer.get_config(), layer)

    converted = _clone_with_variables(model, to_masked)
    warn_unmasked(converted, is_excluded)
    return converted


def strip(model):
    """Returns a plain Keras copy of `model` with the masks baked in as zeros.

    Each masked layer becomes its Keras twin (`MaskedDense` -> `Dense`,
    `MaskedLSTM` -> `LSTM`, ...) holding `weight * mask`; the result loads
    with plain Keras, without `keras_lottery` installed. `model` is not
    modified.

    Args:
        model: a Sequential or Functional model with masked layers.

    Returns:
        A new model of the same structure and the same predictions.

    Raises:
        ValueError: for a masked layer of your own, which has no plain Keras
            twin to become.
    """
    _check_graph_model(model, "strip")

    def to_plain(layer):
        plain = _PLAIN_TWINS.get(type(layer))
        if plain is not None:
            return _rebuilt(plain, layer.get_config(), layer)
        if isinstance(layer, MaskedLayer):
            raise ValueError(
                f"Expected masked layers with a plain Keras twin. Received layer "
                f"{layer.name!r} ({type(layer).__name__}), a masked layer of your own: "
                "build its plain version and copy the variables in with "
                "`keras_lottery.conversion.copy_variables(masked_layer, plain_layer)`, "
                "which bakes the masks in."
            )
        return _with_inner_layers(layer, to_plain)

    return _clone_with_variables(model, to_plain)


def _rebuilt(cls, config, layer):
    """`cls.from_config(config)`, or an error naming `layer` if that fails."""
    try:
        return cls.from_config(config)
    except Exception as error:  # Whatever a user's `from_config` raises.
        raise ValueError(
            f"Expected every layer to rebuild from its config. Received layer "
            f"{layer.name!r} ({type(layer).__name__}), whose `from_config("
            f"get_config())` fails: {error}. Give the layer a `get_config()` that "
            "returns its constructor arguments, or build the model from masked "
            "layers directly."
        ) from error


def _with_inner_layers(layer, convert):
    """A new `layer` of the same class, the layers in its config converted.

    A wrapper's config holds its inner layers serialized (`Bidirectional`'s
    `layer` and `backward_layer`, `TimeDistributed`'s `layer`, an RNN's
    `cell`, lists of them): each is rebuilt, converted, and serialized back.
    """
    config = layer.get_config()
    for key, value in config.items():
        if isinstance(value, (list, tuple)):
            config[key] = type(value)(_converted_config(item, convert) for item in value)
        else:
            config[key] = _converted_config(value, convert)
    return _rebuilt(type(layer), config, layer)


def _converted_config(value, convert):
    if not (isinstance(value, dict) and "class_name" in value and "config" in value):
        return value
    inner = keras.saving.deserialize_keras_object(value)
    if not isinstance(inner, keras.layers.Layer):
        return value  # An initializer, a regularizer, ...
    return keras.saving.serialize_keras_object(convert(inner))


def _clone_with_variables(model, make_layer):
    pairs = []

    def clone(layer):
        new = make_layer(layer)
        pairs.append((layer, new))
        return new

    new_model = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for old, new in pairs:
        # Ops on symbolic tensors (`keras.ops.cumsum(...)`) are cloned too; they hold no state.
        if isinstance(old, keras.layers.Layer) and old.built:
            copy_variables(old, new)
    return new_model


def copy_variables(source, target) -> None:
    """Copies every variable of `source` into `target`, by position.

    The two are the same layer (or model), or twins: variables pair up in
    order once the masks are set aside, and each pair must agree in name and
    shape. Masks are copied where both sides have them; where only `source`
    has them (stripping), each weight is copied as `weight * mask`; where
    only `target` has them (converting), they stay all ones.
    """
    source_masked, target_masked = _prunable(source), _prunable(target)
    source_masks = {id(p.mask) for p in source_masked}
    target_masks = {id(p.mask) for p in target_masked}
    sources = [v for v in source.variables if id(v) not in source_masks]
    targets = [v for v in target.variables if id(v) not in target_masks]
    if len(sources) != len(targets):
        raise ValueError(
            f"Expected the copy of layer {source.name!r} to hold the same variables. "
            f"Received {len(sources)} variables in {type(source).__name__} and "
            f"{len(targets)} in {type(target).__name__}."
        )
    values = {}
    for old, new in zip(sources, targets):
        if old.name != new.name or tuple(old.shape) != tuple(new.shape):
            raise ValueError(
                f"Expected the copy of layer {source.name!r} to hold the same variables. "
                f"Received {old.path} {tuple(old.shape)} against {new.path} {tuple(new.shape)}."
            )
        values[id(old)] = keras.ops.convert_to_numpy(old)
    if source_masked and not target_masked:
        for weight, mask, _ in source_masked:
            values[id(weight)] = values[id(weight)] * (keras.ops.convert_to_numpy(mask) != 0)
    for old, new in zip(sources, targets):
        new.assign(values[id(old)])
    for old, new in zip(_rnn_states(source), _rnn_states(target)):
        new.assign(old)  # A stateful RNN's states, which Keras does not track.
    if source_masked and target_masked:
        for old, new in itertools.zip_longest(source_masked, target_masked):
            if old is None or new is None or tuple(old.mask.shape) != tuple(new.mask.shape):
                raise ValueError(
                    f"Expected the copy of layer {source.name!r} to have the same masks."
                )
            new.mask.assign(old.mask)


def _rnn_states(layer):
    return [state for inner in layer._flatten_layers(include_self=True)
            if getattr(inner, "stateful", False) for state in (getattr(inner, "states", None) or [])
            if isinstance(state, keras.Variable)]


def _prunable(layer):
    return [p for masked in masked_layers(layer) for p in masked.get_prunable_weights()]


def _check_graph_model(model, function):
    # `keras.Model(inputs, outputs)` builds a `keras.Function` too; a subclassed model does not.
    if isinstance(model, keras.Sequential) or (
            isinstance(model, keras.Model) and isinstance(model, keras.Function)):
        return
    kind = "a masked layer" if isinstance(model, MaskedLayer) else (
        f"a subclassed model ({type(model).__name__})"
        if isinstance(model, keras.Model) else repr(model)[:80]
    )
    advice = (
        "Build a subclassed model from the masked layers of "
        "`keras_lottery.layers` (MaskedDense, MaskedConv2D, MaskedLSTM, ...) "
        "directly; `TicketSearch` takes it as it is."
        if function == "prunable"
        else "Rebuild it from plain Keras layers and copy the variables in with "
        "`keras_lottery.conversion.copy_variables(masked_layer, plain_layer)`, "
        "which bakes the masks in."
    )
    raise ValueError(
        f"`{function}()` expected a Sequential or Functional Keras model. "
        f"Received {kind}. {advice}"
    )


def _exclusion(model, exclude):
    """`layer -> bool`: True for the layers `exclude` names (or selects)."""
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


def _subtrees(model, selected):
    """Ids of the layers `selected` picks and of every layer inside them
    (an excluded wrapper or nested model stays dense as a whole)."""
    ids = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if id(layer) not in ids and selected(layer):
            ids.update(id(inner) for inner in layer._flatten_layers(include_self=True))
    return ids


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
