"""What shape a ticket's pruning takes: single weights, whole units, or a pattern.

`Structure` names it: `"unstructured"` (the paper's), units that a shrunk
model loses for real (`"neurons"` of Dense layers, `"filters"` of
convolutions, both as `"units"`, attention `"heads"`), or a sparsity pattern
kept in the kernel (`"2:4"`: N of every M consecutive inputs; `"blocks:4x4"`:
blocks of inputs x outputs). `StructurePlan` says, for one model, which
weights each structure prunes and how: it is checked before any training.
"""

import dataclasses
import re

import keras

from keras_lottery import checks
from keras_lottery.layers import MaskedLayer
from keras_lottery.layers.masked_layer import stored_variable
from keras_lottery.structured.unit_groups import FILTER_CONVOLUTIONS, UnitGroup, unit_groups

UNIT_STRUCTURES = {"neurons": ("neurons",), "filters": ("filters",),
                   "units": ("neurons", "filters"), "heads": ("heads",)}
SCORES = ("l1", "l2", "bn_gamma")
_FORMS = ('"unstructured", "neurons", "filters", "units", "heads", "N:M" such as "2:4", '
          'or "blocks:RxC" such as "blocks:4x4"')


@dataclasses.dataclass(frozen=True)
class Structure:
    """A pruning structure and how its units are scored.

    Args:
        kind: `"unstructured"`, `"neurons"`, `"filters"`, `"units"`,
            `"heads"`, `"n:m"` or `"blocks"`.
        n, m: for `"n:m"`: rounds prune each run of `m` consecutive
            inputs alike, down to `n` kept of every `m`.
        block: for `"blocks"`: `(inputs, outputs)` of a block.
        score: how a unit or block is scored from its weights' scores:
            `"l1"` (sum of magnitudes, the default), `"l2"`, or `"bn_gamma"`:
            |gamma| of the BatchNormalization layers after a unit (network
            slimming), the L1 norm where there is none.
    """

    kind: str = "unstructured"
    n: int | None = None
    m: int | None = None
    block: tuple | None = None
    score: str = "l1"

    def __post_init__(self):
        checks.choice("score", self.score, SCORES)
        # Frozen: `object.__setattr__` is how a dataclass normalizes a field.
        if self.kind == "n:m":
            n, m = checks.integer("n", self.n), checks.integer("m", self.m)
            if not 1 <= n < m:
                raise ValueError(
                    f"Expected N:M with 1 <= N < M. Received: {n}:{m} "
                    "(N of every M inputs are kept: N >= M would prune nothing)")
            object.__setattr__(self, "n", n)
            object.__setattr__(self, "m", m)
        elif self.kind == "blocks":
            try:
                block = checks.integers("block", self.block, 1)
            except ValueError:
                block = None
            if block is None or len(block) != 2 or block == (1, 1):
                raise ValueError(f"Expected blocks of (inputs, outputs) positive integers, not "
                                 f"1x1. Received: block={self.block!r}")
            object.__setattr__(self, "block", block)
        elif self.kind not in ("unstructured", *UNIT_STRUCTURES):
            raise ValueError(f"Expected a structure among {_FORMS}. Received: {self.kind!r}")

    @property
    def units(self) -> tuple:
        """The unit-group kinds it prunes (empty for unstructured and patterns)."""
        return UNIT_STRUCTURES.get(self.kind, ())

    @property
    def is_pattern(self) -> bool:
        return self.kind in ("n:m", "blocks")

    def __str__(self):
        name = {"n:m": f"{self.n}:{self.m}",
                "blocks": f"blocks:{self.block[0]}x{self.block[1]}" if self.block else "blocks"
                }.get(self.kind, self.kind)
        return name if self.score == "l1" or self.kind == "unstructured" else (
            f"{name} ({self.score})")

    def to_json(self):
        return {"kind": self.kind, "n": self.n, "m": self.m,
                "block": list(self.block) if self.block else None, "score": self.score}


def as_structure(value, score=None, name="structure") -> Structure:
    """A `Structure` from one, from a name (`"filters"`, `"2:4"`, `"blocks:4x4"`) or None."""
    if value is None:
        value = "unstructured"
    if isinstance(value, Structure):
        return value if score is None else dataclasses.replace(value, score=score)
    if not isinstance(value, str):
        raise ValueError(f"Expected `{name}` one of {_FORMS}, a keras_lottery.Structure, or "
                         f"{{layer name: structure}}. Received: {name}={value!r}")
    text = value.strip().lower()
    score = "l1" if score is None else score
    found = re.fullmatch(r"(\d+):(\d+)", text)
    if found:
        return Structure("n:m", n=int(found[1]), m=int(found[2]), score=score)
    found = re.fullmatch(r"blocks?:(\d+)x(\d+)", text)
    if found:
        return Structure("blocks", block=(int(found[1]), int(found[2])), score=score)
    if text in ("unstructured", *UNIT_STRUCTURES):
        return Structure(text, score=score)
    raise ValueError(f"Expected `{name}` one of {_FORMS}. Received: {name}={value!r}")


def as_structures(value):
    """A `Structure`, or `{layer name: Structure}` for a per-layer choice."""
    if isinstance(value, dict):
        if not value:
            raise ValueError("Expected `structure` a structure or a non-empty "
                             "{layer name: structure}. Received: {}")
        return {str(layer): as_structure(spec, name=f"structure[{layer!r}]")
                for layer, spec in value.items()}
    return as_structure(value)


def structures_json(structures):
    if isinstance(structures, dict):
        return {layer: spec.to_json() for layer, spec in sorted(structures.items())}
    return structures.to_json()


def is_unstructured(structures) -> bool:
    return not isinstance(structures, dict) and structures.kind == "unstructured"


@dataclasses.dataclass
class StructurePlan:
    """Which weights of one model each structure prunes.

    `groups`: `[(UnitGroup, rate, Structure)]` pruned unit by unit;
    `patterns`: `{path: (Structure, input axis, layer name)}`; every other
    weight is pruned weight by weight (`unstructured`), as without a
    structure. `left` says which layers a structure asked for could not take
    it, and why (they are pruned weight by weight).
    """

    groups: list
    patterns: dict
    structured_paths: set  # Producers and patterns: not pruned weight by weight.
    left: dict
    gammas: dict  # {group name: [BatchNormalization gamma paths]} for "bn_gamma".


def plan(model, structures, rates) -> StructurePlan:
    """Checks `structures` against `model` and says what each prunes.

    Raises ValueError naming the layer for a structure it cannot take: heads
    on a layer without them, neurons on a convolution, N:M on an input axis
    not divisible by M, units that feed the model's outputs (named per layer),
    ...; and for a structure that finds nothing to prune.
    """
    from keras_lottery.masking.masks import layer_labels, prunable_variables

    variables = prunable_variables(model)
    labels = layer_labels(model)
    layers = {labels[id(entry.layer)]: entry.layer for entry in variables.values()}
    per_layer = isinstance(structures, dict)
    if per_layer:
        unknown = sorted(set(structures) - set(layers))
        if unknown:
            raise ValueError(f"Expected `structure` keys among the masked layers "
                             f"{sorted(layers)}. Received unknown layers {unknown}.")
    wanted = structures if per_layer else {name: structures for name in layers}
    groups, patterns, left, gammas = [], {}, {}, {}
    found = unit_groups(model) if any(s.units for s in wanted.values()) else []
    in_groups = {}
    for group in found:
        for layer in group.layers:
            in_groups[labels[id(layer)]] = group
    for name, spec in wanted.items():
        if spec.units and name not in in_groups:
            reason = _no_units(layers[name], spec)
            if per_layer:
                raise ValueError(
                    f"Expected structure {str(spec)!r} for layer {name!r} to fit it. Received "
                    f"a {type(layers[name]).__name__}, {reason}.")
            if not reason.startswith("which has no"):
                left[name] = reason
        elif spec.units and in_groups[name].kind not in spec.units:
            if per_layer:
                raise ValueError(
                    f"Expected structure {str(spec)!r} for layer {name!r} to fit it. Received "
                    f"a {type(layers[name]).__name__}, which has no {' or '.join(spec.units)}: "
                    f"its units are {in_groups[name].kind} (pass {in_groups[name].kind!r}).")
    for group in found:
        names = [labels[id(layer)] for layer in group.layers]
        specs = {str(wanted[name]) for name in names
                 if name in wanted and group.kind in wanted[name].units}
        if not specs:
            continue
        if len(specs) > 1 or (per_layer and any(name not in wanted for name in names)):
            raise ValueError(
                f"Expected one structure for layers {names}, whose units are added together "
                f"and pruned together. Received "
                f"{ {name: str(wanted.get(name, 'unstructured')) for name in names} }.")
        spec = wanted[names[0]]
        if group.blocked:
            if per_layer:
                raise ValueError(
                    f"Expected layer {group.name!r} to be able to lose whole {group.kind}. "
                    f"Received a layer whose units cannot be removed: {group.blocked}.")
            for name in names:
                left[name] = group.blocked
            continue
        rate = min(rates[slice_.path] for slice_ in group.producers)
        if rate > 0:
            groups.append((group, rate, spec))
            if spec.score == "bn_gamma":
                gammas[group.name] = [bn.gamma.path for bn in group.per_channel
                                      if getattr(bn, "gamma", None) is not None]
    unfit = {}
    for path, entry in variables.items():
        name = labels[id(entry.layer)]
        spec = wanted.get(name)
        if spec is None or not spec.is_pattern or rates[path] == 0:
            continue
        axis = _input_axis(entry)
        if axis is None:
            if per_layer:
                raise ValueError(
                    f"Expected structure {str(spec)!r} for layer {name!r} to fit "
                    f"it. Received a {type(entry.layer).__name__}: N:M and blocks fit Dense and "
                    "convolution kernels.")
            left[name] = "N:M and blocks fit Dense and convolution kernels"
            continue
        shape = entry.weight.shape
        size = spec.m if spec.kind == "n:m" else spec.block[0]
        if shape[axis] % size or (spec.kind == "blocks" and shape[-1] % spec.block[1]):
            need = (f"an input dimension divisible by M={spec.m}" if spec.kind == "n:m" else
                    f"inputs divisible by {spec.block[0]} and outputs by {spec.block[1]}")
            unfit.setdefault(name, (spec, need, tuple(shape)))
            continue
        patterns[path] = (spec, axis, name)
    if unfit:
        name, (spec, need, shape) = next(iter(unfit.items()))
        fitting = {patterns[p][2]: str(patterns[p][0]) for p in patterns}
        raise ValueError(
            f"Expected structure {str(spec)!r} for layer {name!r} to fit its kernel: {need}. "
            f"Received a kernel of shape {shape}. Choose per layer to leave it out, e.g. "
            f"structure={fitting}.")
    asked = {s for s in wanted.values() if s.units or s.is_pattern}
    if asked and not groups and not patterns:
        spec = next(iter(asked))
        raise ValueError(
            f"Expected a model with layers that structure {str(spec)!r} can prune. Received "
            f"none it can: {left or 'no layer of that kind, or only layers with rate 0'}.")
    structured = {s.path for group, _, _ in groups for s in group.producers} | set(patterns)
    return StructurePlan(groups, patterns, structured, left, gammas)


def _no_units(layer, spec):
    """Why `layer` has no unit group that `spec` could prune."""
    if isinstance(layer, keras.layers.GroupQueryAttention) and "heads" in spec.units:
        return ("whose heads are not supported: its key and value heads are shared among "
                "query heads")
    kind = ("neurons" if isinstance(layer, keras.layers.Dense) else "filters"
            if isinstance(layer, FILTER_CONVOLUTIONS) else None)
    if kind in spec.units:
        return ("which is not in the model's own graph of layers (it is inside a nested model, "
                "or the model is subclassed): only a Sequential or Functional model's own "
                "layers lose whole units")
    return f"which has no {' or '.join(spec.units)}"


def _input_axis(entry):
    """The input axis of a Dense (0) or convolution (-2) kernel; None for other weights."""
    layer = entry.layer
    try:
        if not isinstance(layer, MaskedLayer) or entry.weight is not stored_variable(
                layer, "kernel"):
            return None
    except AttributeError:
        return None
    if isinstance(layer, keras.layers.Dense) and len(entry.weight.shape) == 2:
        return 0
    if isinstance(layer, FILTER_CONVOLUTIONS):
        return len(entry.weight.shape) - 2
    return None


__all__ = ["Structure", "StructurePlan", "UnitGroup", "as_structure", "plan"]
