"""Masks made in place on a built model, at any depth, the model keeping its
own classes, configuration and weights.

A layer of a class keras-lottery has a twin for (`Dense`, `Conv2D`, `LSTM`,
`MultiHeadAttention`, ...) becomes that twin by a change of class and makes
its masks as the twin does after `build`. Any other layer that holds a weight
matrix, table or kernel in an attribute (KerasHub's `ReversibleEmbedding` and
`PositionEmbedding`, a layer of your own) becomes a *view* of its class: a
subclass of the same name and module whose reads of that attribute return
`weight * mask`. Nothing is rebuilt from a config, so a layer whose config
cannot rebuild it is masked all the same.

The model becomes a view of its own class too, one that records which of its
weights are masked (by position, as names can differ between two builds) and
adds that record to its config: a `.keras` file, `model.to_json()` or
`from_config` rebuild the model with its own class and mask the same weights
again, before Keras loads the weights and masks into them.
"""

import contextlib
import functools
import importlib.util

import keras
from keras import ops

from keras_lottery import _keras
from keras_lottery.runtime.distribution import lay_out_like
from keras_lottery.layers.masked_layer import (
    _KINDS,
    _MASKS,
    _READ,
    MaskedLayer,
    MaskedWeight,
    PrunableWeight,
    mask_name,
    stored_variable,
)

# The key of the record in a masked model's config.
CONFIG_KEY = "keras_lottery_masks"
# Instance attributes (set in `__dict__`, untracked by Keras):
_VIEW_KINDS = "_keras_lottery_view_kinds"  # A view's {attribute: kind}.
_RECORD = "_keras_lottery_record"  # The model's masked weights, by position.
_REGISTERED = "keras_lottery>MaskedModel"

_ATTENTION = (keras.layers.MultiHeadAttention, keras.layers.GroupQueryAttention)
_CONVOLUTIONS = tuple(getattr(keras.layers, name) for name in (
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
) if hasattr(keras.layers, name))


class InPlaceMasked(MaskedLayer):
    """What a layer masked in place becomes: its own class, with each masked
    attribute read as `weight * mask`. Its masks are its own variables."""

    _keras_lottery_in_place = True  # Not a twin: no declaration, no build hook.

    def prunable_weight_paths(self) -> dict:
        return dict(self.__dict__[_VIEW_KINDS])

    def get_prunable_weights(self) -> list:
        masks = self.__dict__[_MASKS]
        return [PrunableWeight(stored_variable(self, attribute), masks[attribute], kind)
                for attribute, kind in self.__dict__[_VIEW_KINDS].items()]


class MaskedModel:
    """What a model with masks made in place becomes: its own class, whose
    config also records which weights are masked, and which rebuilds them."""

    def get_config(self):
        config = super().get_config()
        base = type(self)._keras_lottery_view_of
        record = dict(self.__dict__[_RECORD])
        record["class"] = {"module": base.__module__, "class_name": base.__name__,
                           "registered_name": keras.saving.get_registered_name(base)}
        build_config = self.get_build_config()
        if build_config is not None:
            record["build_config"] = build_config
        return {**config, CONFIG_KEY: record}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return rebuild(config, custom_objects)


# Registered once at import, so that a file saved in another process loads;
# each model view registers under the same name (see `_model_view`).
keras.saving.register_keras_serializable(package="keras_lottery", name="MaskedModel")(MaskedModel)


def mask_in_place(model, skip=lambda layer: False, only=None) -> None:
    """Masks the kernel-like weights of `model`'s layers in place, all ones,
    and records them in the model (see the module).

    Args:
        model: a built Keras model.
        skip: `layer -> bool`, True for layers to leave dense, with all the
            layers inside them.
        only: ids of the weights to mask (a model being rebuilt masks what
            it recorded); None: every kernel-like weight not masked yet.

    A kernel-like weight that its layer holds elsewhere than in an attribute
    of its own (in a list, say) cannot be masked: `sparsity.warn_unmasked`
    names its layer.
    """
    if not model.built:
        raise ValueError(
            f"Expected a built model. Received {type(model).__name__} {model.name!r}, not "
            "built: call it on a batch (or give it an `Input`) first, so that its weights "
            "exist.")
    layers = _keras.sublayers(model, include_self=True)
    skipped = set()
    for layer in layers:
        if id(layer) not in skipped and layer is not model and skip(layer):
            skipped.update(id(inner) for inner in _keras.sublayers(layer, True))
    layers = [layer for layer in layers if id(layer) not in skipped]
    for layer in layers:
        _check_maskable(layer)  # Before any layer changes.
    ancestors = _ancestors(layers)
    covered = _covered(layers)
    made = set()
    for layer in layers:
        if not layer.built or isinstance(layer, MaskedLayer) or (
                hasattr(type(layer), "_keras_lottery_view_of") and _RECORD not in layer.__dict__):
            continue  # Nothing to mask, masked already, or inside a masked layer.
        twin = _twin_of(layer)
        if twin is not None:
            targets = _twin_targets(layer, twin)
            if only is None or any(id(v) in only for v in targets.values()):
                _become_twin(layer, twin, targets, ancestors[id(layer)])
                made.update(id(v) for v in targets.values())
            continue
        found = _kernels(layer, covered)
        if only is not None:
            found = {a: v for a, v in found.items() if id(v[0]) in only}
        if found:
            _become_view(layer, found, ancestors[id(layer)])
            made.update(id(v) for v, _ in found.values())
    _record(model, made)
    _reset_compiled(model)


def _record(model, masked) -> None:
    """Makes `model` remember, by position, that the weights `masked` (ids)
    are masked in place, and serialize so (`MaskedModel`)."""
    weights = _unmasked_order(model)
    indices = sorted({i for i, v in enumerate(weights) if id(v) in masked}
                     | set(model.__dict__.get(_RECORD, {}).get("weights", [])))
    if not indices:
        return
    model.__dict__[_RECORD] = {"weights": indices, "count": len(weights),
                               "shapes": [list(weights[i].shape) for i in indices]}
    base = getattr(type(model), "_keras_lottery_view_of", type(model))
    model.__class__ = _model_view(base, tuple(sorted(model.__dict__.get(_MASKS, {}))))


def rebuild(config, custom_objects=None):
    """The model a `MaskedModel` config describes: its own class, rebuilt from
    its own config, with the recorded weights masked again (all ones: the
    weights and masks are loaded afterwards, as for any model)."""
    config = dict(config)
    record = config.pop(CONFIG_KEY)
    library = record["class"]["module"].split(".")[0]
    try:
        model = keras.saving.deserialize_keras_object({**record["class"], "config": config},
                                                      custom_objects=custom_objects)
    except (TypeError, ModuleNotFoundError) as error:
        if library == "keras_hub" and importlib.util.find_spec("keras_hub") is None:
            raise ImportError(
                f"Expected KerasHub to rebuild this masked {record['class']['class_name']}. "
                "Received an environment without it: install the extra, "
                "`pip install keras-lottery[hub]` (or `pip install keras-hub`).") from error
        raise
    if not model.built and record.get("build_config"):
        model.build_from_config(record["build_config"])
    weights = _unmasked_order(model)
    found = [list(weights[i].shape) if i < len(weights) else None for i in record["weights"]]
    if len(weights) != record["count"] or found != record["shapes"]:
        raise ValueError(
            f"Expected the rebuilt {record['class']['class_name']} to hold "
            f"{record['count']} weights with the recorded masked shapes. Received "
            f"{len(weights)} weights: the model's config does not rebuild the model "
            "whose masks were recorded.")
    mask_in_place(model, only={id(weights[i]) for i in record["weights"]})
    return model


def unmask_in_place(model) -> None:
    """Bakes every mask of `model` into its weight (`weight * mask`) and
    removes the masks: each masked layer, twin or view, gets its plain class
    back, and so does the model. Refuses masked layers of your own, which
    have no plain class, before changing anything."""
    from keras_lottery.layers import MASKED_TWINS

    plain = {twin: keras_class for keras_class, twin in MASKED_TWINS.items()}
    layers = [layer for layer in _keras.sublayers(model, include_self=True)
              if isinstance(layer, MaskedLayer)]
    for layer in layers:
        if type(layer) not in plain and not hasattr(type(layer), "_keras_lottery_view_of"):
            raise ValueError(
                f"Expected masked layers with a plain Keras class. Received layer "
                f"{layer.name!r} ({type(layer).__name__}), a masked layer of your own: build "
                "its plain version and copy the variables in with "
                "`keras_lottery.masking.conversion.copy_variables(masked_layer, plain_layer)`, which "
                "bakes the masks in.")
    for layer in layers:
        for path in layer.prunable_weight_paths():
            owner, attribute = layer._owner_of(path)
            mask = owner.__dict__[_MASKS].pop(attribute)
            weight = stored_variable(owner, attribute)
            weight.assign(ops.multiply(weight, ops.cast(mask, weight.dtype)))
            _keras.untrack(layer, mask)
            for name, value in list(layer.__dict__.items()):
                if value is mask:
                    del layer.__dict__[name]
            if owner is not layer and not owner.__dict__[_MASKS]:
                owner.__class__ = type(owner)._keras_lottery_view_of
        for key in (_MASKS, _VIEW_KINDS, _KINDS, _READ):
            layer.__dict__.pop(key, None)
        layer.__class__ = plain.get(type(layer)) or type(layer)._keras_lottery_view_of
    if _RECORD in model.__dict__:
        del model.__dict__[_RECORD]
        model.__class__ = getattr(type(model), "_keras_lottery_view_of", type(model))
    _reset_compiled(model)


def _check_maskable(layer):
    # A LoRA delta or a quantized kernel would bypass the mask.
    if getattr(layer, "quantization_mode", None):
        raise ValueError(
            f"Expected an unquantized layer. Received layer {layer.name!r} quantized as "
            f"{layer.quantization_mode!r}: prune before quantizing.")
    if getattr(layer, "lora_enabled", False):
        raise ValueError(
            f"Expected a layer without LoRA. Received layer {layer.name!r} with LoRA "
            "enabled: merge or drop the LoRA weights before pruning.")


def _ancestors(layers) -> dict:
    """`{id(layer): [its enclosing layers, innermost first]}`."""
    parent = {}
    for layer in layers:
        for inner in _keras.children(layer):
            parent.setdefault(id(inner), layer)
    found = {}
    for layer in layers:
        chain, current = [], parent.get(id(layer))
        while current is not None and len(chain) < len(layers):
            chain.append(current)
            current = parent.get(id(current))
        found[id(layer)] = chain
    return found


def _covered(layers) -> set:
    return {id(p.weight) for layer in layers if isinstance(layer, MaskedLayer)
            for p in layer.get_prunable_weights()}


def _twin_of(layer):
    from keras_lottery.layers import MASKED_TWINS

    return MASKED_TWINS.get(type(layer))


def _twin_targets(layer, twin) -> dict:
    """`{path: variable}` of what `twin` masks in `layer`, read before it becomes the twin."""
    if twin.prunable_weight_paths is MaskedLayer.prunable_weight_paths:
        paths = dict(twin.prunable_weights)
    else:
        paths = twin.prunable_weight_paths(layer)
    found = {}
    for path in paths:
        owner, attribute = MaskedLayer._owner_of(layer, path)
        found[path] = stored_variable(owner, attribute)
    return found


@contextlib.contextmanager
def _scope(layer):
    """The layer's name scope, so its masks are named `<layer path>/<name>_mask`
    as they would be if made in its `build`."""
    with contextlib.ExitStack() as stack:
        for part in layer.path.split("/"):
            stack.enter_context(keras.name_scope(part))
        yield


def _become_twin(layer, twin, targets, ancestors):
    """`layer` becomes its masked twin, which makes its masks (all ones)."""
    kind = _context_kind(ancestors)
    with _keras.unlocked(layer), _scope(layer):
        layer.__class__ = twin
        layer._build_masks()
    if kind is not None:
        layer.__dict__[_KINDS] = {path: kind for path in targets}


def _become_view(layer, found, ancestors):
    """`layer` becomes a view of its class masking the attributes in `found`."""
    kinds = {}
    with _keras.unlocked(layer), _scope(layer):
        for attribute, (variable, aliases) in found.items():
            name = mask_name(attribute)
            if name in layer.__dict__ or hasattr(type(layer), name):
                name = f"keras_lottery_{name}"
            mask = layer.add_weight(name=name, shape=variable.shape, initializer="ones",
                                    dtype=variable.dtype, trainable=False)
            lay_out_like(mask, variable)  # Sharded as the weight is (keras.distribution).
            layer.__dict__[name] = mask
            for held_as in (attribute, *aliases):
                layer.__dict__.setdefault(_MASKS, {})[held_as] = mask
            kinds[attribute] = _context_kind(ancestors) or _kind(layer, attribute)
    layer.__dict__[_VIEW_KINDS] = {**layer.__dict__.get(_VIEW_KINDS, {}), **kinds}
    base = getattr(type(layer), "_keras_lottery_view_of", type(layer))
    layer.__class__ = _layer_view(base, tuple(sorted(layer.__dict__[_MASKS])))


def _kernels(layer, covered):
    """`{attribute: (variable, aliases)}`: the layer's own kernel-like weights
    that an attribute of its own holds (any other attributes holding the
    same variable are its aliases, read masked too)."""
    from keras_lottery.layers import NOT_PRUNED

    if isinstance(layer, NOT_PRUNED):
        return {}
    held = {}
    for attribute, value in layer.__dict__.items():
        if isinstance(value, keras.Variable):
            held.setdefault(id(value), []).append(attribute)
    found = {}
    for variable in _keras.own_variables(layer):
        if kernel_like(variable) and id(variable) not in covered and id(variable) in held:
            first, *aliases = held[id(variable)]
            found[first] = (variable, aliases)
    return found


def kernel_like(variable) -> bool:
    """A trainable floating-point weight of two or more axes, not named a
    bias: a matrix, a table, a kernel. Biases (an attention projection's
    has two axes) and per-channel scales stay dense, as in the paper."""
    return (variable.trainable and len(variable.shape) >= 2
            and "bias" not in variable.name.lower()
            and keras.backend.is_float_dtype(variable.dtype))


def _context_kind(ancestors):
    """"attention" for a weight inside an attention layer, else None."""
    for outer in ancestors:
        if isinstance(outer, _ATTENTION) or "attention" in type(outer).__name__.lower():
            return "attention"
    return None


def _kind(layer, attribute):
    """The weight's kind: as the twin of the Keras class the layer extends
    declares it (a subclass of `LSTMCell`: "recurrent_input"...), else by
    what the layer is."""
    from keras_lottery.layers import MASKED_TWINS

    for cls in type(layer).__mro__:
        declared = getattr(MASKED_TWINS.get(cls), "prunable_weights", {})
        if attribute.lstrip("_") in declared:
            return declared[attribute.lstrip("_")]
    if isinstance(layer, _ATTENTION) or "attention" in type(layer).__name__.lower():
        return "attention"
    if isinstance(layer, keras.layers.Embedding) or "embedding" in attribute.lower() or (
            "embedding" in type(layer).__name__.lower()):
        return "embedding"
    if isinstance(layer, _CONVOLUTIONS):
        return "conv"
    return "dense"


def masked_positions(model, other) -> set:
    """Ids of the weights of `other` (a copy of `model`) at the positions of
    `model`'s masked weights."""
    mine, theirs = _unmasked_order(model), _unmasked_order(other)
    masked = {id(p.weight) for layer in _keras.sublayers(model, include_self=True)
              if isinstance(layer, MaskedLayer) for p in layer.get_prunable_weights()}
    return {id(theirs[i]) for i, v in enumerate(mine) if id(v) in masked and i < len(theirs)}


def _unmasked_order(model) -> list:
    """The model's weights other than masks, in Keras' order: what a record's
    positions index (a rebuilt model lists them in the same order)."""
    masks = {id(p.mask) for layer in _keras.sublayers(model, include_self=True)
             if isinstance(layer, MaskedLayer) for p in layer.get_prunable_weights()}
    return [v for v in model.weights if id(v) not in masks]


def _reset_compiled(model):
    # A compiled step traced the layers before their class changed.
    for name in ("train_function", "test_function", "predict_function"):
        if getattr(model, name, None) is not None:
            setattr(model, name, None)


@functools.cache
def _layer_view(base, attributes):
    """`base` with `attributes` read as `weight * mask`, named as `base`: a
    layer masked in place still serializes as its own class."""
    namespace = {attribute: MaskedWeight(attribute) for attribute in attributes}
    namespace.update(__module__=base.__module__, __qualname__=base.__qualname__,
                     _keras_lottery_view_of=base)
    view = type(base.__name__, (InPlaceMasked, base), namespace)
    registered = keras.saving.get_registered_name(base)
    if registered != base.__name__:
        # Serialize under the base's registered name, and keep that name
        # deserializing to the base (the record masks it again).
        package, _, name = registered.partition(">")
        keras.saving.register_keras_serializable(package, name)(view)
        keras.saving.register_keras_serializable(package, name)(base)
    return view


@functools.cache
def _model_view(base, attributes):
    """`base` recording its masks in its config (and masking `attributes` of
    its own, for a model that holds weights itself)."""
    namespace = {attribute: MaskedWeight(attribute) for attribute in attributes}
    namespace.update(__module__=base.__module__, __qualname__=base.__qualname__,
                     _keras_lottery_view_of=base)
    bases = (MaskedModel, InPlaceMasked, base) if attributes else (MaskedModel, base)
    view = type(base.__name__, bases, namespace)
    register = keras.saving.register_keras_serializable(package="keras_lottery",
                                                        name="MaskedModel")
    register(view)
    register(MaskedModel)  # The name still deserializes through `MaskedModel`.
    return view
