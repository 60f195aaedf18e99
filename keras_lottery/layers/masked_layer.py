"""The mechanism every masked layer shares: one mask per prunable weight,
multiplied in wherever the layer, or a layer inside it, reads that weight.

A masked layer is its Keras twin plus a declaration, `prunable_weights`:
`{attribute path: kind}`, e.g. `{"kernel": "dense"}` for `Dense` or
`{"cell.kernel": "recurrent_input", "cell.recurrent_kernel": "recurrent"}` for
`LSTM`, whose weights live in its cell. After `build`, the layer owns one
non-trainable `<path>_mask` variable per entry, and every read of the
attribute returns `weight * mask`: the Keras twin's own `call` (and any fast
path, such as the cuDNN LSTM, that reads the attribute) computes with the
masked weight, so nothing of Keras' computation is rewritten here.
"""

import contextlib
import functools
import itertools
import threading
from typing import NamedTuple

import keras
from keras import ops

from keras_lottery import _keras
from keras_lottery.runtime.distribution import lay_out_like
from keras_lottery.pruning.rules import WEIGHT_KINDS

# Instance attributes of a weight's owner, set directly in `__dict__` so that
# Keras does not track them as state: `{attribute: mask variable}`, and the
# stamp of the last read (the call order, to find a model's output layer).
_MASKS = "_keras_lottery_masks"
_READ = "_keras_lottery_read"
_KINDS = "_keras_lottery_kinds"
_read_stamps = itertools.count(1)
# `weight * mask` computed once for a whole call (a recurrent layer reads its
# kernels at every time step), per thread: TensorFlow's MirroredStrategy
# traces its replicas in parallel threads.
_computed = threading.local()


class PrunableWeight(NamedTuple):
    """A prunable weight of a masked layer: its variable, its mask and its kind."""

    weight: object
    mask: object
    kind: str


def stored_variable(owner, attribute):
    """The variable behind `owner.<attribute>`, whatever the attribute returns.

    Keras stores a weight either under its name (`LSTMCell.kernel`) or, where
    a property computes the public name, under another (`_keras.stored_as`).
    """
    state = owner.__dict__
    for key in _keras.stored_as(attribute):
        if key in state:
            return state[key]
    raise AttributeError(f"{type(owner).__name__} has no attribute {attribute!r}")


class MaskedWeight:
    """A data descriptor: `layer.<name>` reads as `weight * mask` once masked.

    Before the mask exists (during `build`) it reads as the variable itself;
    assignments store the variable, as they would without the descriptor.
    """

    def __init__(self, name: str):
        self.name = name

    def __get__(self, owner, owner_type=None):
        if owner is None:
            return self
        variable = stored_variable(owner, self.name)
        mask = owner.__dict__.get(_MASKS, {}).get(self.name)
        if mask is None:
            return variable
        if not _compiling():
            owner.__dict__[_READ] = next(_read_stamps)
        computed = getattr(_computed, "products", None)
        if computed and id(variable) in computed:
            return computed[id(variable)]
        return ops.multiply(variable, mask)

    def __set__(self, owner, value):
        owner.__dict__[self.name] = value


def _compiling():
    """Whether torch.compile is tracing: a write to a layer's `__dict__` there
    breaks its graph (and recompiles), so reads are not stamped while it does.
    The only backend-specific line of the masking; eager and traced reads
    (JAX, TensorFlow) are stamped."""
    if keras.backend.backend() != "torch":
        return False
    import torch

    return torch.compiler.is_compiling()


def _refuse(what):
    def refuse(self, *args, **kwargs):
        raise NotImplementedError(
            f"Layer {self.name!r} is inside a masked layer and cannot {what}. Call "
            "`keras_lottery.strip(model)` first, then do it on the plain Keras model."
        )

    return refuse


@functools.cache
def _masked_view(cls, names):
    """`cls` with `MaskedWeight` descriptors for `names`: what a layer inside a
    masked layer (an LSTM's cell, an attention's projection) becomes.

    It keeps the name and module of `cls`, so the inner layer still
    serializes as plain Keras; its masks belong to the outer masked layer.
    LoRA and quantization, which would bypass the masks, are refused.
    """
    namespace = {name: MaskedWeight(name) for name in names}
    namespace.update(__module__=cls.__module__, __qualname__=cls.__qualname__,
                     _keras_lottery_view_of=cls, enable_lora=_refuse("enable LoRA"),
                     quantize=_refuse("be quantized"))
    return type(cls.__name__, (cls,), namespace)


class MaskedLayer:
    """Mixin for a Keras layer whose prunable weights are multiplied by masks.

    A masked twin lists its prunable weights in `prunable_weights`,
    `{attribute path: kind}`, and comes first in the bases:

        @keras.saving.register_keras_serializable(package="my_package")
        class MaskedConv2DTranspose(MaskedLayer, keras.layers.Conv2DTranspose):
            prunable_weights = {"kernel": "conv"}

    That is all: after the Keras layer's own `build`, one non-trainable
    `<path>_mask` variable per weight is created (dots in the path become
    underscores), and every read of the weight in `call` sees `weight * mask`.
    A path may go through sublayers (`"cell.kernel"`); the layer holding the
    weight then reads it masked too. Your own layers follow the same protocol:
    create the weight with `add_weight` in `build` (or `__init__`), read it as
    `self.<attribute>` in `call`, and declare it. A twin whose weights depend
    on its configuration overrides `prunable_weight_paths()` instead.
    """

    prunable_weights: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if getattr(cls, "_keras_lottery_in_place", False):
            return  # Masked in place (`in_place.py`): built already, nothing declared.
        declared = cls.__dict__.get("prunable_weights", {})
        _check_declaration(cls, declared)
        for path in declared:
            if "." not in path:
                setattr(cls, path, MaskedWeight(path))
        # Masks are made right after the Keras twin's own build, whichever
        # class in the hierarchy defines it. `wraps` keeps its signature,
        # which Keras inspects to record the build shapes for loading.
        build = getattr(cls, "build", None)  # None in a mixin of mixins
        if _keras.has_default_build(cls):
            # Keras marks a layer without `build` built at construction, so
            # there would be no moment after its weights exist to mask them.
            raise TypeError(
                f"Expected {cls.__name__} to implement `build()`, a MaskedLayer makes "
                "its masks right after it. Received a layer without one: define "
                "`build(self, input_shape)` creating the weights (or building the "
                "sublayers) that `prunable_weights` names; it may do nothing if "
                "`__init__` already made them."
            )
        if build is not None and not getattr(build, "_keras_lottery_builds_masks", False):
            @functools.wraps(build)
            def build_then_mask(self, *args, **kwargs):
                self._check_maskable()
                build(self, *args, **kwargs)
                self._build_masks()

            build_then_mask._keras_lottery_builds_masks = True
            cls.build = build_then_mask

    def prunable_weight_paths(self) -> dict:
        """`{attribute path: kind}` of this layer's prunable weights."""
        return dict(self.prunable_weights)

    def _check_maskable(self):
        # A LoRA delta or a quantized kernel would bypass the mask; refuse both
        # before the Keras build makes them.
        if getattr(self, "lora_rank", None):
            raise ValueError(
                f"{type(self).__name__} does not support LoRA. Expected "
                f"`lora_rank=None`. Received: lora_rank={self.lora_rank}"
            )
        if getattr(self, "quantization_mode", None):
            raise ValueError(
                f"{type(self).__name__} cannot be quantized while masked. Expected a "
                f"float dtype policy. Received: dtype={self.dtype_policy.name!r}; "
                "quantize the plain model that `keras_lottery.strip(model)` returns."
            )

    def _build_masks(self):
        paths = self.prunable_weight_paths()
        _check_declaration(type(self), paths)
        own = {id(v) for v in self.weights}
        for path in paths:
            owner, attribute = self._owner_of(path)
            name = mask_name(path)
            if self.__dict__.get(name) is not None and (
                    owner.__dict__.get(_MASKS, {}).get(attribute) is self.__dict__[name]):
                continue  # Made by the build of a class this one extends.
            try:
                variable = stored_variable(owner, attribute)
            except AttributeError:
                variable = None
            problem = (
                "missing" if variable is None
                else f"a {type(variable).__name__}" if not isinstance(variable, keras.Variable)
                else "a variable of another layer" if id(variable) not in own
                else "masked already" if attribute in owner.__dict__.get(_MASKS, {})
                else f"to get a mask named {name!r}, a name the layer already uses"
                if name in self.__dict__
                else None
            )
            if problem:
                raise ValueError(
                    f"Expected `prunable_weights` of {type(self).__name__} to name "
                    f"variables of layer {self.name!r}, created with `add_weight`. "
                    f"Received {path!r}, which after build is {problem}."
                )
            mask = self.add_weight(
                name=name, shape=variable.shape, initializer="ones",
                dtype=variable.dtype, trainable=False,
            )
            lay_out_like(mask, variable)  # Sharded as the weight is (keras.distribution).
            setattr(self, name, mask)
            owner.__dict__.setdefault(_MASKS, {})[attribute] = mask
            if owner is self and not isinstance(getattr(type(self), attribute, None), MaskedWeight):
                raise TypeError(
                    f"Expected {type(self).__name__} to declare {path!r} in its class's "
                    "`prunable_weights`: a weight of the layer itself is masked where the "
                    "class reads it. Received it from `prunable_weight_paths()` only."
                )
            if owner is not self and not isinstance(getattr(type(owner), attribute, None),
                                                    MaskedWeight):
                # A layer inside this one: make its reads of the weight masked.
                base = getattr(type(owner), "_keras_lottery_view_of", type(owner))
                names = tuple(sorted(owner.__dict__[_MASKS]))
                owner.__class__ = _masked_view(base, names)

    def _owner_of(self, path):
        *inner, attribute = path.split(".")
        owner = self
        for name in inner:
            owner = getattr(owner, name, None)
            if not isinstance(owner, keras.layers.Layer):
                raise ValueError(
                    f"Expected `prunable_weights` of {type(self).__name__} to go "
                    f"through sublayers. Received {path!r}, but {name!r} is "
                    f"{type(owner).__name__} in layer {self.name!r}."
                )
        return owner, attribute

    def get_prunable_weights(self) -> list:
        """`[PrunableWeight(weight, mask, kind), ...]`, one per prunable weight.

        The protocol `keras_lottery` uses to find what it may prune (named as
        in tfmot). Empty until the layer is built.
        """
        if not self.built:
            return []
        # A twin masked in place inside an attention layer of another class
        # (a KerasHub decoder's projections) takes that layer's kind.
        kinds = self.__dict__.get(_KINDS, {})
        found = []
        for path, kind in self.prunable_weight_paths().items():
            owner, attribute = self._owner_of(path)
            found.append(PrunableWeight(stored_variable(owner, attribute),
                                        getattr(self, mask_name(path)), kinds.get(path, kind)))
        return found

    @contextlib.contextmanager
    def masked_once(self):
        """Within this block, reads of the weights reuse one `weight * mask`.

        For layers that read a weight many times per call: a recurrent layer
        reads its kernels at every time step.
        """
        products = {id(p.weight): ops.multiply(p.weight, p.mask)
                    for p in self.get_prunable_weights()}
        outer = getattr(_computed, "products", None)
        _computed.products = {**(outer or {}), **products}
        try:
            yield
        finally:
            _computed.products = outer

    def last_read(self) -> int:
        """Stamp of the last read of a masked weight (0: never read); orders calls."""
        return max((self._owner_of(path)[0].__dict__.get(_READ, 0)
                    for path in self.prunable_weight_paths()), default=0)

    # Keras' Dense/Conv/Embedding override saving to handle quantization and
    # LoRA and would drop the mask; the base `Layer` version saves every
    # variable in tracking order, masks included, which is what we want.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def quantize(self, mode=None, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} cannot be quantized while masked. "
            "Call `keras_lottery.strip(model)` first, then quantize the "
            "plain Keras model it returns."
        )

    def enable_lora(self, rank, *args, **kwargs):
        # Also what `lora_rank=` gets, when the Keras layer's build calls this.
        raise NotImplementedError(
            f"{type(self).__name__} does not support LoRA (rank {rank}): the "
            "low-rank update would bypass the mask. Call `keras_lottery.strip(model)` "
            "first, then enable LoRA on the plain Keras model."
        )


def _check_declaration(cls, paths):
    """Refuses, when the class is defined, declarations that cannot work."""
    if not isinstance(paths, dict):
        raise TypeError(
            f"Expected `prunable_weights` of {cls.__name__} to be a dict "
            f"{{attribute path: kind}}. Received: {paths!r}"
        )
    names = {}
    for path, kind in paths.items():
        if kind not in WEIGHT_KINDS:
            raise ValueError(
                f"Expected the kinds in `prunable_weights` of {cls.__name__} among "
                f"{WEIGHT_KINDS}. Received {path!r}: {kind!r}"
            )
        name = mask_name(path)
        if name in names:
            raise ValueError(
                f"Expected `prunable_weights` of {cls.__name__} to give each weight its "
                f"own mask name. Received {names[name]!r} and {path!r}, both {name!r}."
            )
        names[name] = path
        if "." in path:
            continue
        inherited = next((base.__dict__[path] for base in cls.__mro__[1:]
                          if path in base.__dict__), None)
        # Keras' own `kernel`/`embeddings` properties return the stored
        # variable (LoRA and quantization aside, both refused); a property or
        # method of yours computes something the mask would silently replace.
        keras_property = isinstance(inherited, property) and inherited.fget.__module__.startswith(
            "keras.")
        if inherited is not None and not keras_property and not isinstance(inherited, MaskedWeight):
            raise TypeError(
                f"Expected `prunable_weights` of {cls.__name__} to name attributes that "
                f"hold variables. Received {path!r}, a {type(inherited).__name__} of "
                f"{cls.__name__}'s bases: declare the attribute that stores the variable, "
                "and read that one in `call`."
            )


def mask_name(path: str) -> str:
    """`"cell.kernel"` -> `"cell_kernel_mask"`, `"_query_dense.kernel"` -> `"query_dense_kernel_mask"`."""
    return "_".join(part.lstrip("_") for part in path.split(".")) + "_mask"

