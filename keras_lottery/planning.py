"""Which masks each round of a search trains: the paper's ladder, as pure functions.

Iterative pruning brings each layer to `start_density * (1 - rate) ** round`
of its full size (exactly, to the weight), pruning the smallest trained
magnitudes of what the previous round kept; one-shot pruning brings the
dense round's weights straight to each target. `start_density` is the
layer's density before the search: an already-pruned model goes on down
from where it is. Nothing here touches Keras.
"""

from collections.abc import Mapping

import numpy as np

from keras_lottery import pruning


def densities(masks: Mapping[str, np.ndarray]) -> dict[str, float]:
    """`{path: fraction of ones}`: where each layer starts its ladder."""
    return {path: float(np.count_nonzero(mask)) / mask.size for path, mask in masks.items()}


def iterative_masks(previous, trained, rates, start, round_, global_rate=None):
    """Round `round_`'s masks, pruned by magnitude from round `round_ - 1`'s.

    Args:
        previous: the previous round's masks `{path: bool array}`.
        trained: that round's trained weights `{path: array}`.
        rates: `{path: rate}`, the fraction of a layer's remaining weights a
            round prunes (0 leaves a layer alone).
        start: `{path: density}` before the search (`densities(initial masks)`).
        round_: the round, from 1.
        global_rate: the one nonzero rate, to rank weights across layers; None
            prunes each layer on its own.
    """
    if global_rate is not None:
        chosen = [p for p, rate in rates.items() if rate > 0]
        sizes = {p: previous[p].size for p in chosen}
        at_start = sum(start[p] * sizes[p] for p in chosen) / sum(sizes.values())
        return global_masks(trained, previous, rates, at_start * (1 - global_rate) ** round_)
    targets = {p: start[p] * (1 - rate) ** round_ for p, rate in rates.items()}
    return pruning.magnitude_prune(trained, previous, pruning.rates_for_densities(previous, targets))


def one_shot_masks(dense, trained, rates, target, global_pruning=False):
    """Masks at overall density `target`, pruned once from the dense round's weights.

    Layer-wise, each layer gets the density it would have after r rounds of
    the iterative ladder, r chosen so that the overall density is `target`;
    globally, layers with a nonzero rate share what `target` leaves.
    """
    sizes = {p: m.size for p, m in dense.items()}
    total = sum(sizes.values())
    if global_pruning:
        # `target` is over all prunable weights; excluded layers keep theirs.
        excluded = sum(sizes[p] for p, rate in rates.items() if rate == 0)
        return global_masks(trained, dense, rates, (target * total - excluded) / (total - excluded))
    targets = densities_at(rates, sizes, target)
    return pruning.magnitude_prune(trained, dense, pruning.rates_for_densities(dense, targets))


def global_masks(trained, masks, rates, target_density):
    """Global magnitude pruning of the layers with a nonzero rate to `target_density`."""
    chosen = [p for p, rate in rates.items() if rate > 0]
    total = sum(masks[p].size for p in chosen)
    remaining = sum(int(masks[p].sum()) for p in chosen)
    keep = max(1, min(remaining, pruning.keep_count(total, target_density)))
    rate = (remaining - keep) / remaining
    new = pruning.global_magnitude_prune(
        {p: trained[p] for p in chosen}, {p: masks[p] for p in chosen}, rate
    )
    return {p: new.get(p, masks[p]) for p in masks}


def densities_at(rates, sizes, target):
    """Per-layer densities `(1 - rate) ** r`, r chosen so the overall density is `target`."""
    def overall(r):
        return sum(sizes[p] * (1 - rate) ** r for p, rate in rates.items()) / sum(sizes.values())

    low, high = 0.0, 1.0
    while overall(high) > target:
        high *= 2
    for _ in range(60):  # bisection: overall() decreases in r
        middle = (low + high) / 2
        low, high = (middle, high) if overall(middle) > target else (low, middle)
    return {p: (1 - rate) ** high for p, rate in rates.items()}


def global_rate(rates) -> float:
    """The one nonzero rate of a global search (0 excludes a layer)."""
    chosen = {rate for rate in rates.values() if rate > 0}
    if len(chosen) != 1:
        raise ValueError(
            "Expected one nonzero rate for global pruning (0 excludes a layer). "
            f"Received rates {sorted(set(rates.values()))}"
        )
    return chosen.pop()


def one_shot_floor(rates, sizes) -> float:
    """The lowest overall density one-shot pruning can reach: the share of
    weights in layers with rate 0, which it never prunes."""
    return sum(sizes[p] for p, rate in rates.items() if rate == 0) / sum(sizes.values())
