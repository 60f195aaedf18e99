"""Turning a Keras model into a prunable one (`prunable`) and back (`strip`).

Both work on the model itself (`in_place=True`) or on a copy of it, rebuilt
from its config with its own class and given every variable by position and
shape (automatic names can differ between two builds of one model). Masks
are made and removed in place (`layers/in_place.py`): a layer of a class with
a masked twin becomes that twin, any other layer holding a kernel-like weight
a masked view of its own class.
"""

import itertools
from collections.abc import Callable, Iterable

import keras

from keras_lottery import _keras, checks
from keras_lottery.layers import MaskedLayer
from keras_lottery.layers.in_place import mask_in_place, masked_positions, unmask_in_place
from keras_lottery.masking.masks import masked_layers
from keras_lottery.masking.sparsity import warn_unmasked


def prunable(model, exclude: Iterable[str] | Callable | None = None, in_place: bool = False):
    """Returns `model` with a mask on every kernel-like weight, all ones.

    Every layer with a twin in `keras_lottery.layers.MASKED_TWINS` (Dense,
    EinsumDense, the convolutions, Embedding, the recurrent and attention
    layers) becomes its twin, at any depth: in nested models, wrappers
    (`Bidirectional`, `TimeDistributed`) and layers of other libraries (a
    KerasHub `TransformerEncoder`'s projections). Any other layer holding a
    weight of two or more axes in an attribute of its own (KerasHub's
    `ReversibleEmbedding` and `PositionEmbedding`, a subclass of `Dense`,
    your own) is masked in place as itself. Biases, normalization layers and
    other one-axis weights stay dense, as in the paper; layers left with a
    dense kernel are named in a warning.

    The model keeps its own class and config (KerasHub backbones and tasks,
    Keras Applications, subclassed models), its predictions and its weights.
    Its config records which weights are masked, so `.keras` files and
    `model_from_json` rebuild the masks.

    Args:
        model: a built Keras model: Sequential, Functional, a subclass of
            either (a KerasHub backbone or task) or a subclassed model.
        exclude: layer names to leave unmasked, or a function
            `layer -> bool` that returns True for layers to leave unmasked
            (with the layers inside them). Defaults to masking every layer.
        in_place: mask `model` itself rather than a copy. A copy is rebuilt
            from the model's config, which some layers of other libraries
            cannot do; `in_place=True` needs no config. Defaults to False.

    Returns:
        A copy of `model`, sharing no variables with it, or `model` itself
        with `in_place=True`; either predicts as `model` did.

    Example:

    >>> model = keras_lottery.prunable(keras_model, exclude=["embedding"])
    >>> keras_lottery.prunable(bert_backbone, in_place=True)
    """
    _check_model(model, "prunable")
    in_place = checks.boolean("in_place", in_place)
    is_excluded = _exclusion(model, exclude)
    target = model if in_place else _copy(model, "prunable")
    mask_in_place(target, skip=is_excluded)
    warn_unmasked(target, is_excluded)
    return target


def strip(model, in_place: bool = False):
    """Returns `model` without masks, each baked into its weight as zeros.

    Each masked layer becomes its plain Keras class again (`MaskedDense` ->
    `Dense`, a KerasHub layer masked in place -> that layer) holding
    `weight * mask`; the model keeps its own class and loads with plain
    Keras (and its own libraries), without `keras_lottery` installed.

    Args:
        model: a model with masked layers.
        in_place: strip `model` itself rather than a copy (see `prunable`).
            Defaults to False.

    Returns:
        A new model of the same structure and the same predictions, or
        `model` itself with `in_place=True`.

    Raises:
        ValueError: for a masked layer of your own, which has no plain Keras
            class to become.
    """
    _check_model(model, "strip")
    in_place = checks.boolean("in_place", in_place)
    unmask_in_place(model if in_place else (copy := _copy(model, "strip")))
    return model if in_place else copy


def copy_model(model):
    """A new `model` of its own class, rebuilt from its config, holding
    copies of all its variables, masks included.

    A Sequential or Functional model is cloned layer by layer, as
    `keras.models.clone_model` does, so its variables keep their paths; any
    other model (a KerasHub backbone, a subclassed model) is rebuilt by its
    class's `from_config`.
    """
    return _copy(model, "copy_model")


def _copy(model, function):
    """`copy_model(model)`; a config that fails names `function` to call in place."""
    # The model's own classes resolve even where they are not registered
    # (a layer defined in a script), as `clone_model` resolves them.
    classes = {}
    for layer in _keras.sublayers(model, include_self=True):
        cls = _base_class(layer)
        if not cls.__module__.startswith("keras."):
            classes.setdefault(keras.saving.get_registered_name(cls), cls)
    try:
        with keras.saving.CustomObjectScope(classes):
            if _is_graph_model(model):
                copy = keras.models.clone_model(model, recursive=True,
                                                clone_function=_rebuilt_layer)
                if hasattr(type(copy), "_keras_lottery_view_of"):
                    copy.__class__ = type(copy)._keras_lottery_view_of  # No record yet.
            else:
                copy = type(model).from_config(model.get_config())
                if not copy.built and model.get_build_config() is not None:
                    copy.build_from_config(model.get_build_config())
    except Exception as error:  # Whatever a config of another library raises.
        raise _not_rebuilt(model, error, function) from error
    # Masks the copy's layers rebuilt without (those masked in place).
    mask_in_place(copy, only=masked_positions(model, copy))
    copy_variables(model, copy)
    return copy


def _rebuilt_layer(layer):
    """A new layer of `layer`'s class from its config, unbuilt."""
    return _base_class(layer).from_config(_unbuilt(layer.get_config()))


def _unbuilt(config):
    """`config` with no build config for the layers it holds (a wrapper's
    inner layer): built when the wrapper builds, in its name scope, they
    keep the paths they had (`bilstm/forward_lstm/...`)."""
    if isinstance(config, dict):
        nested = "class_name" in config and "config" in config
        return {key: _unbuilt(value) for key, value in config.items()
                if not (nested and key == "build_config")}
    if isinstance(config, (list, tuple)):
        return type(config)(_unbuilt(value) for value in config)
    return config


def _base_class(layer):
    """The class a layer masked in place is a view of, else its own."""
    return getattr(type(layer), "_keras_lottery_view_of", type(layer))


def _is_graph_model(model):
    # Sequential, or Functional with its default config (a subclass with a
    # config of its own, such as a KerasHub backbone, is rebuilt by its class).
    functional = _keras.functional_class()
    return isinstance(model, keras.Sequential) or (
        isinstance(model, functional)
        and _base_class(model).get_config is functional.get_config)


def _not_rebuilt(model, error, function):
    """The error for a model its config does not rebuild, naming the first
    layer whose own config fails (the likely reason) where one does."""
    culprit = ""
    for layer in _keras.sublayers(model):
        cls = _base_class(layer)
        try:
            cls.from_config(layer.get_config())
        except Exception as inner:  # noqa: BLE001 - named for the user.
            culprit = (f" The first layer whose config fails is {layer.name!r} "
                       f"({cls.__name__}): `from_config(get_config())` raises "
                       f"{type(inner).__name__}: {inner}.")
            break
    return ValueError(
        f"`{function}()` expected a model that its config rebuilds, to copy. Received "
        f"{type(model).__name__} {model.name!r}, whose `from_config(get_config())` raises "
        f"{type(error).__name__}: {error}.{culprit} Work on the model itself with "
        f"`{function}(model, in_place=True)`, which needs no config; or give the layer a "
        "`get_config()` that returns its constructor arguments.")


def copy_variables(source, target) -> None:
    """Copies every variable of `source` into `target`, by position.

    The two are the same layer (or model), or twins: variables pair up in
    order once the masks are set aside, and each pair must agree in shape
    (names can differ: Keras numbers unnamed variables per process). Masks
    are copied where both sides have them; where only `source` has them
    (stripping), each weight is copied as `weight * mask`; where only
    `target` has them (converting), they stay all ones.
    """
    source_masked, target_masked = _prunable(source), _prunable(target)
    source_masks = {id(p.mask) for p in source_masked}
    target_masks = {id(p.mask) for p in target_masked}
    sources = [v for v in source.variables if id(v) not in source_masks]
    targets = [v for v in target.variables if id(v) not in target_masks]
    if len(sources) != len(targets):
        raise ValueError(
            f"Expected the copy of {source.name!r} to hold the same variables. Received "
            f"{len(sources)} variables in {type(source).__name__} and {len(targets)} in "
            f"{type(target).__name__}.")
    values = {}
    for old, new in zip(sources, targets):
        if tuple(old.shape) != tuple(new.shape):
            raise ValueError(
                f"Expected the copy of {source.name!r} to hold the same variables. Received "
                f"{old.path} {tuple(old.shape)} against {new.path} {tuple(new.shape)}.")
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
                    f"Expected the copy of {source.name!r} to have the same masks.")
            new.mask.assign(old.mask)


def _rnn_states(layer):
    return [state for inner in _keras.sublayers(layer, include_self=True)
            if getattr(inner, "stateful", False) for state in (getattr(inner, "states", None) or [])
            if isinstance(state, keras.Variable)]


def _prunable(layer):
    return [p for masked in masked_layers(layer) for p in masked.get_prunable_weights()]


def _check_model(model, function):
    if isinstance(model, keras.Model):
        return
    kind = (f"a masked layer ({type(model).__name__})" if isinstance(model, MaskedLayer)
            else f"a layer ({type(model).__name__})" if isinstance(model, keras.layers.Layer)
            else repr(model)[:80])
    raise ValueError(
        f"`{function}()` expected a Keras model. Received {kind}. Wrap a layer in a model "
        "first (`keras.Sequential([keras.Input(shape), layer])`).")


def _exclusion(model, exclude):
    """`layer -> bool`: True for the layers `exclude` names (or selects)."""
    if exclude is None:
        return lambda layer: False
    if callable(exclude):
        return exclude
    if isinstance(exclude, str):
        exclude = [exclude]
    names = set(exclude)
    known = {layer.name for layer in _keras.sublayers(model)}
    unknown = sorted(names - known)
    if unknown:
        raise ValueError(
            f"Expected `exclude` to name layers of the model, among {sorted(known)}. "
            f"Received unknown names: {unknown}"
        )
    return lambda layer: layer.name in names
