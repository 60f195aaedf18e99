"""Pruning as pure functions: `{variable_path: weights}` in, `{variable_path: mask}` out.

Nothing here touches Keras. Masks are boolean numpy arrays (True = kept).

Counting rule, used everywhere: a rate is a fraction of the weights that
*remain* in a layer (or, for global pruning, across the chosen layers), so
masks only shrink. The number pruned is `prune_count(remaining, rate)`:
`rate * remaining` rounded half up (after rounding the product to 9 decimals
so that float noise such as `0.3 * 5 = 1.4999999999999998` counts as 1.5).
Ties in magnitude are broken by position: among equal magnitudes the weight
that comes first in row-major (C) order is pruned first; for global pruning
layers are ordered by path, then by position.
"""

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from keras_lottery import checks
from keras_lottery.pruning.criteria import random_scores

__all__ = [
    "RATE_KINDS", "WEIGHT_KINDS", "PruneRates", "WeightInfo", "density", "erk_densities",
    "global_magnitude_prune", "global_score_prune", "keep_count", "lowest", "magnitude_prune",
    "prune_count", "random_masks_like", "random_prune", "rates_for_densities", "score_prune",
    "validate_masks",
]

# What a prunable weight does; masked layers declare theirs (recurrent
# layers: the input kernel and the recurrent kernel, so rates can differ).
WEIGHT_KINDS = ("conv", "dense", "embedding", "attention", "recurrent_input", "recurrent")
# Kinds a rate can be given for: the weight kinds, plus "output" for the
# layers that produce the model's outputs (the paper prunes them at half rate).
RATE_KINDS = WEIGHT_KINDS + ("output",)


def prune_count(remaining: int, rate: float) -> int:
    """How many of `remaining` weights a `rate` prunes: rounded half up.

    Example:

    >>> prune_count(5, 0.3), prune_count(10, 0.25), prune_count(0, 0.5)
    (2, 3, 0)
    """
    rate = _check_rate(rate, "rate")
    return min(remaining, math.floor(round(rate * remaining, 9) + 0.5))


def magnitude_prune(
    weights: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray] | None = None,
    rate: float | Mapping[str, float] = 0.2,
) -> dict[str, np.ndarray]:
    """Layer-wise magnitude pruning: prune the smallest surviving |w| per layer.

    Args:
        weights: `{path: array}` of trained weights to rank.
        masks: `{path: binary array}` of current masks, same keys and shapes;
            pruned weights stay pruned. Defaults to all ones.
        rate: fraction of each layer's *remaining* weights to prune, in
            [0, 1); one number for all, or `{path: rate}` for every path
            (see `PruneRates.resolve`).

    Returns:
        New boolean masks, `{path: array}`, each a subset of the old one with
        exactly `prune_count(remaining, rate)` fewer ones.
    """
    weights, masks = _checked(weights, masks)
    return score_prune({p: np.abs(w) for p, w in weights.items()}, masks, rate)


def score_prune(
    scores: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray] | None = None,
    rate: float | Mapping[str, float] = 0.2,
) -> dict[str, np.ndarray]:
    """Layer-wise pruning by any score: prune the lowest-scoring survivors per layer.

    `magnitude_prune(w)` is `score_prune(|w|)`; the criteria of
    `keras_lottery.pruning.criteria` give other scores (higher is kept).

    Args:
        scores: `{path: array}`, higher is kept.
        masks, rate: as for `magnitude_prune`.
    """
    scores, masks = _checked(scores, masks, "scores")
    rates = _rates_per_path(rate, scores)
    return {
        path: _prune_smallest(scores[path], masks[path], rates[path]) for path in scores
    }


def global_magnitude_prune(
    weights: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray] | None = None,
    rate: float = 0.2,
) -> dict[str, np.ndarray]:
    """Global magnitude pruning: rank all surviving |w| of all given layers.

    Prunes `prune_count(total remaining, rate)` weights in all, wherever they
    are smallest; layers not in `weights` are not touched (leave out a layer to
    exclude it, as the paper does for VGG and ResNet's output layer).

    Args:
        weights: `{path: array}` of trained weights to rank.
        masks: current masks, same keys and shapes. Defaults to all ones.
        rate: fraction of all remaining weights to prune, in [0, 1).

    Returns:
        New boolean masks, `{path: array}`.
    """
    weights, masks = _checked(weights, masks)
    return global_score_prune({p: np.abs(w) for p, w in weights.items()}, masks, rate)


def global_score_prune(
    scores: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray] | None = None,
    rate: float = 0.2,
) -> dict[str, np.ndarray]:
    """Global pruning by any score (higher is kept), ranked across all given layers."""
    rate = _check_rate(rate, "rate")
    scores, masks = _checked(scores, masks, "scores")
    paths = sorted(scores)
    # Concatenate in path order so ties break by (path, position).
    flat_scores = np.concatenate([scores[p].ravel() for p in paths])
    keep = np.concatenate([masks[p].ravel() for p in paths])
    flat = _prune_smallest(flat_scores, keep, rate)
    new_masks, start = {}, 0
    for path in paths:
        size = scores[path].size
        new_masks[path] = flat[start : start + size].reshape(scores[path].shape)
        start += size
    return {path: new_masks[path] for path in scores}


def erk_densities(
    shapes: Mapping[str, tuple], density: float, dense: tuple = (),
    caps: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Erdős-Rényi-Kernel layer densities (Evci et al. 2020) at overall `density`.

    Layer `path` of shape `(k_1, ..., k_n)` gets a density proportional to
    `sum(k_i) / prod(k_i)`: small layers stay denser, big ones get sparser.
    Layers the rule would make denser than their cap (1, or `caps[path]`)
    stay at it and the others share the rest. Paths in `dense` are kept at
    their cap and count toward `density`.

    Args:
        shapes: `{path: weight shape}`.
        density: overall fraction of all weights in `shapes` to keep, in (0, 1].
        dense: paths kept at their cap.
        caps: `{path: highest density}`, e.g. a layer's current density,
            which pruning cannot raise. Defaults to 1 for every path.

    Returns:
        `{path: density}` with `sum(density * size) == density * total size`.

    Raises:
        ValueError: if the paths in `dense` alone hold more than `density` of the
            weights, or the caps less.
    """
    density = checks.fraction("density", density, one=True)
    sizes = {p: int(np.prod(shape)) for p, shape in shapes.items()}
    raw = {p: sum(shape) / sizes[p] for p, shape in shapes.items()}
    caps = {p: 1.0 for p in shapes} | dict(caps or {})
    total = sum(sizes.values())
    fixed = {p: caps[p] for p in dense}
    while True:
        free = [p for p in shapes if p not in fixed]
        budget = density * total - sum(fixed[p] * sizes[p] for p in fixed)
        if budget < -1e-9 * total or (not free and budget > 1e-9 * total):
            held = sum(fixed[p] * sizes[p] for p in fixed) / total
            raise ValueError(
                f"Expected a density the ERK budget can reach. Received density={density!r}, "
                f"but the layers at their cap hold {held:.4g} of the weights."
            )
        if not free:
            return fixed
        epsilon = budget / sum(raw[p] * sizes[p] for p in free)
        over = [p for p in free if epsilon * raw[p] > caps[p]]
        if not over:
            return {p: fixed[p] if p in fixed else epsilon * raw[p] for p in shapes}
        fixed.update({p: caps[p] for p in over})


def random_prune(
    masks: Mapping[str, np.ndarray],
    rate: float | Mapping[str, float] = 0.2,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Random pruning: prune as many weights as `magnitude_prune` would, at random.

    Each layer loses exactly `prune_count(remaining, rate)` of its surviving
    weights, chosen uniformly. The same `seed` gives the same masks.

    Args:
        masks: current masks `{path: binary array}`.
        rate: fraction of remaining weights to prune per layer, in [0, 1).
        seed: seed of the random draw.

    Returns:
        New boolean masks, `{path: array}`.
    """
    masks = validate_masks(masks)
    return score_prune(random_scores(masks, seed=seed), masks, rate)


def random_masks_like(
    masks: Mapping[str, np.ndarray], seed: int = 0
) -> dict[str, np.ndarray]:
    """Fresh random masks with the same number of ones per layer as `masks`.

    The random-pruning control of the paper: same per-layer densities,
    positions drawn uniformly (not nested in `masks`).
    """
    masks = validate_masks(masks)
    rng = np.random.default_rng(seed)
    new = {}
    for path in sorted(masks):
        mask = masks[path]
        kept = np.zeros(mask.size, dtype=bool)
        kept[rng.permutation(mask.size)[: int(mask.sum())]] = True
        new[path] = kept.reshape(mask.shape)
    return {path: new[path] for path in masks}


def rates_for_densities(
    masks: Mapping[str, np.ndarray], densities: Mapping[str, float]
) -> dict[str, float]:
    """Per-path rates that leave each layer exactly at a density of its full size.

    Layer `path` is brought to `round_half_up(size * densities[path])` weights
    (at least one, and never more than it has now), so a schedule computed from
    the full size does not accumulate rounding error round after round: with
    density `0.8 ** r`, round r keeps 0.8^r of each layer to within half a
    weight. Feed the result to `magnitude_prune` or `random_prune`.
    """
    masks = validate_masks(masks)
    rates = {}
    for path, mask in masks.items():
        target = checks.fraction(f"densities[{path!r}]", densities[path], one=True)
        remaining = int(np.count_nonzero(mask))
        keep = min(remaining, max(1, keep_count(mask.size, target)))
        rates[path] = (remaining - keep) / remaining if remaining else 0.0
    return rates


def keep_count(size: int, density: float) -> int:
    """How many of `size` weights a `density` keeps: rounded half up, like `prune_count`."""
    return math.floor(round(density * size, 9) + 0.5)


def density(masks: Mapping[str, np.ndarray]) -> float:
    """Fraction of weights remaining across all `masks` (1.0 for none)."""
    total = sum(m.size for m in masks.values())
    return float(sum(np.count_nonzero(m) for m in masks.values()) / total) if total else 1.0


@dataclasses.dataclass(frozen=True)
class WeightInfo:
    """What a rate rule needs to know of a prunable weight."""

    layer_name: str  # The owning layer's name.
    kind: str  # One of `WEIGHT_KINDS`.
    is_output: bool | None = False  # Whether the layer produces a model output; None: unknown.


@dataclasses.dataclass(frozen=True)
class PruneRates:
    """Per-layer prune rates: a default, overridden by kind, then by layer name.

    Precedence, highest first: `by_layer[layer_name]`, `by_kind["output"]`
    for output layers, `by_kind[kind]`, `default`.

    Example, the paper's Conv-2 rates:

    >>> PruneRates(0.2, by_kind={"conv": 0.1, "output": 0.1})
    """

    default: float = 0.2  # Rate for weights no rule below names.
    by_kind: Mapping[str, float] = dataclasses.field(default_factory=dict)  # Keys in RATE_KINDS.
    by_layer: Mapping[str, float] = dataclasses.field(default_factory=dict)  # Keys: layer names.

    def __post_init__(self):
        for kind in self.by_kind:
            if kind not in RATE_KINDS:
                raise ValueError(
                    f"Expected `by_kind` keys in {RATE_KINDS}. Received: {kind!r}"
                )
        # Frozen: `object.__setattr__` is how a dataclass normalizes a field.
        object.__setattr__(self, "default", _check_rate(self.default, "default"))
        object.__setattr__(self, "by_kind", {kind: _check_rate(rate, f"by_kind[{kind!r}]")
                                             for kind, rate in self.by_kind.items()})
        object.__setattr__(self, "by_layer", {name: _check_rate(rate, f"by_layer[{name!r}]")
                                              for name, rate in self.by_layer.items()})

    def resolve(self, infos: Mapping[str, WeightInfo]) -> dict[str, float]:
        """`{path: rate}` for every weight described in `infos`."""
        known = {info.layer_name for info in infos.values()}
        unknown = sorted(set(self.by_layer) - known)
        if unknown:
            raise ValueError(
                f"Expected `by_layer` to name prunable layers, one of "
                f"{sorted(known)}. Received unknown names: {unknown}"
            )
        unknown_output = any(info.is_output is None for info in infos.values())
        if "output" in self.by_kind and unknown_output and not self.by_layer:
            raise ValueError(
                "Expected to find the output layer for `by_kind['output']`. Received "
                "a model whose output layer is unknown: a subclassed model's is the "
                "masked layer it calls last, so call the model on a batch first, or "
                "give the output layer its rate by name, `by_layer={name: rate}`, "
                f"with a name among {sorted(known)}."
            )
        rates = {}
        for path, info in infos.items():
            if info.layer_name in self.by_layer:
                rates[path] = self.by_layer[info.layer_name]
            elif info.is_output and "output" in self.by_kind:
                rates[path] = self.by_kind["output"]
            else:
                rates[path] = self.by_kind.get(info.kind, self.default)
        return rates


def validate_masks(
    masks: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Checks masks are binary (and match `weights`); returns boolean copies."""
    if not isinstance(masks, Mapping):
        raise TypeError(
            "Expected `masks` to be a dict {variable_path: array}. "
            f"Received: {type(masks).__name__}"
        )
    checked = {}
    for path, mask in masks.items():
        mask = np.asarray(mask)
        if mask.dtype != bool:
            if not np.isin(mask, (0, 1)).all():
                bad = np.unique(mask[~np.isin(mask, (0, 1))])[:5]
                raise ValueError(
                    f"Expected binary masks (only 0 and 1). Received "
                    f"masks[{path!r}] containing {bad.tolist()}"
                )
            mask = mask.astype(bool)
        checked[path] = mask
    if weights is not None:
        if set(masks) != set(weights):
            raise ValueError(
                "Expected `masks` and `weights` to have the same keys. Received "
                f"missing masks for {sorted(set(weights) - set(masks))}, "
                f"masks without weights for {sorted(set(masks) - set(weights))}"
            )
        for path, mask in checked.items():
            if mask.shape != np.shape(weights[path]):
                raise ValueError(
                    f"Expected masks[{path!r}] to have the shape of its weights, "
                    f"{np.shape(weights[path])}. Received shape {mask.shape}"
                )
    return checked


def _checked(weights, masks, name="weights"):
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(
            f"Expected `{name}` to be a non-empty dict {{variable_path: array}}. "
            f"Received: {weights!r:.80}"
        )
    arrays = {}
    for path, value in weights.items():
        value = np.asarray(value)
        if not np.issubdtype(value.dtype, np.number):
            raise ValueError(
                f"Expected numeric {name}. Received {name}[{path!r}] "
                f"with dtype {value.dtype}"
            )
        bad = value.size - np.count_nonzero(np.isfinite(value))
        if bad:
            raise ValueError(
                f"Expected finite {name}. Received {name}[{path!r}] with "
                f"{bad} NaN or infinite values"
            )
        arrays[path] = value
    if masks is None:
        masks = {path: np.ones(value.shape, dtype=bool) for path, value in arrays.items()}
    return arrays, validate_masks(masks, arrays)


def _rates_per_path(rate, paths):
    if isinstance(rate, Mapping):
        missing = sorted(set(paths) - set(rate))
        if missing:
            raise ValueError(
                f"Expected a rate for every path. Received none for {missing}"
            )
        checked = {path: _check_rate(value, f"rate[{path!r}]") for path, value in rate.items()}
        return {path: checked[path] for path in paths}
    rate = _check_rate(rate, "rate")
    return {path: rate for path in paths}


def _check_rate(rate, name):
    """A rate in [0, 1), as a float: the share of remaining weights pruned."""
    return checks.fraction(name, rate, zero=True)


def _prune_smallest(scores, mask, rate):
    """Drops the `prune_count` lowest-scoring kept entries of `mask`."""
    kept = np.flatnonzero(mask)
    count = prune_count(kept.size, rate)
    new = mask.copy()
    new.ravel()[kept[lowest(scores.ravel()[kept], count)]] = False
    return new


def lowest(values: np.ndarray, count: int) -> np.ndarray:
    """Positions of the `count` smallest of the 1-D `values`, ties broken by
    position (the earlier first): the first `count` of a stable argsort, as a
    set, found in linear time (a partition), since masks are recomputed
    during training (`keras_lottery.sparse`)."""
    values = np.asarray(values)
    if count <= 0:
        return np.zeros(0, dtype=np.intp)
    if count >= values.size:
        return np.arange(values.size)
    threshold = np.partition(values, count - 1)[count - 1]
    below = np.flatnonzero(values < threshold)
    equal = np.flatnonzero(values == threshold)[: count - below.size]
    return np.concatenate([below, equal])
