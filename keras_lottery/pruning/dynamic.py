"""Dynamic sparse training as pure functions: drop the weakest live weights,
grow as many elsewhere (SET, Mocanu et al. 2018; RigL, Evci et al. 2020).

Masks are boolean numpy arrays keyed by variable path, as in
`keras_lottery.pruning.rules`. Nothing here touches Keras.
"""

import math
from collections.abc import Mapping

import numpy as np

from keras_lottery import checks
from keras_lottery.pruning.rules import keep_count, lowest, prune_count, validate_masks


def cosine_fraction(initial: float, step: int, begin: int, end: int) -> float:
    """RigL's drop fraction at `step`: `initial / 2 * (1 + cos(pi * progress))`,
    progress going from 0 at `begin` to 1 at `end` (0 from there on)."""
    if step >= end:
        return 0.0
    progress = max(0.0, (step - begin) / (end - begin))
    return initial / 2 * (1 + math.cos(math.pi * progress))


def drop_and_grow(weights: Mapping, masks: Mapping, fraction: float,
                  grow_scores: Mapping) -> tuple[dict, dict]:
    """One update of dynamic sparse training, layer by layer.

    Each layer drops `prune_count(live, fraction)` of its live weights, the
    smallest in magnitude, then grows exactly as many among the weights not
    live after the drop (a weight just dropped may come back), those with
    the highest `grow_scores`: RigL's |dense gradient|, or random numbers for
    SET. The number of live weights of every layer is unchanged; a weight
    dropped and grown back in the same update keeps its value. Ties are
    broken by position, the earlier first, so an update is deterministic.

    Args:
        weights: `{path: array}`, the weights now.
        masks: `{path: bool array}`, the live weights now.
        fraction: share of each layer's live weights to drop, in [0, 1).
        grow_scores: `{path: array}`, higher grows first.

    Returns:
        `(new masks, grown)`: `grown[path]` marks the weights grown, which
        start again from zero.
    """
    fraction = checks.fraction("fraction", fraction, zero=True)
    masks = validate_masks(masks, weights)
    new, grown = {}, {}
    for path, mask in masks.items():
        live = np.flatnonzero(mask)
        count = prune_count(live.size, fraction)
        after = mask.ravel().copy()
        magnitude = np.abs(np.asarray(weights[path], dtype=np.float64)).ravel()
        after[live[lowest(magnitude[live], count)]] = False
        free = np.flatnonzero(~after)
        # The highest scores are the lowest of the negated ones, ties by position.
        chosen = free[lowest(-np.asarray(grow_scores[path], np.float64).ravel()[free], count)]
        after[chosen] = True
        # Grown: live now, not before. A weight dropped and grown back in the same
        # update keeps its value (as the RigL paper's code does by default).
        added = after & ~mask.ravel()
        new[path], grown[path] = after.reshape(mask.shape), added.reshape(mask.shape)
    return new, grown


def random_sparse_masks(shapes: Mapping, densities: Mapping, seed: int = 0) -> dict:
    """`{path: bool array}` with `keep_count(size, densities[path])` ones at random
    places (at least one): the masks sparse training starts from."""
    rng = np.random.default_rng(seed)
    masks = {}
    for path in sorted(shapes):  # Drawn in path order: independent of dict order.
        size = int(np.prod(shapes[path]))
        kept = np.zeros(size, dtype=bool)
        kept[rng.permutation(size)[: max(1, keep_count(size, densities[path]))]] = True
        masks[path] = kept.reshape(shapes[path])
    return {path: masks[path] for path in shapes}
