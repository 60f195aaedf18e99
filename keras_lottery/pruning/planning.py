"""Which masks each round of a search trains: the ladder and the layer budgets, as pure functions.

Iterative pruning brings the network down by a fixed rate per round,
pruning the lowest scores (by default the smallest trained magnitudes) of
what the previous round kept; one-shot pruning brings the dense network
straight to each target. How a density is shared among layers is the
*budget*:

- `"uniform"` (the paper's): each layer at its own rate, so each layer is at
  `start_density * (1 - rate) ** round` of its full size (exactly, to the
  weight);
- `"global"`: the layers with a nonzero rate share one ranking of scores;
- `"erk"`: Erdős-Rényi-Kernel densities (Evci et al. 2020), denser small
  layers and sparser big ones, each layer pruned by its own scores.

`start_density` is a layer's density before the search: an already-pruned
model goes on down from where it is. Nothing here touches Keras.
"""

from collections.abc import Mapping

import numpy as np

from keras_lottery import checks
from keras_lottery.pruning import rules as pruning

BUDGETS = ("uniform", "global", "erk")


def densities(masks: Mapping[str, np.ndarray]) -> dict[str, float]:
    """`{path: fraction of ones}`: where each layer starts its ladder."""
    return {path: float(np.count_nonzero(mask)) / mask.size for path, mask in masks.items()}


def iterative_masks(previous, scores, rates, start, round_, budget="uniform"):
    """Round `round_`'s masks, pruned by `scores` from round `round_ - 1`'s.

    Args:
        previous: the previous round's masks `{path: bool array}`.
        scores: `{path: array}` to rank, higher kept (`|trained weights|`
            for the paper's criterion).
        rates: `{path: rate}`, the fraction of a layer's remaining weights a
            round prunes (0 leaves a layer alone). The "global" and "erk"
            budgets take their one nonzero rate for the whole network.
        start: `{path: density}` before the search (`densities(initial masks)`).
        round_: the round, from 1.
        budget: one of `BUDGETS`.
    """
    budget = checks.choice("budget", budget, BUDGETS)
    if budget == "uniform":
        targets = {p: start[p] * (1 - rate) ** round_ for p, rate in rates.items()}
        return pruning.score_prune(scores, previous,
                                   pruning.rates_for_densities(previous, targets))
    chosen = [p for p, rate in rates.items() if rate > 0]
    sizes = {p: previous[p].size for p in chosen}
    at_start = sum(start[p] * sizes[p] for p in chosen) / sum(sizes.values())
    return chosen_at(scores, previous, rates,
                     at_start * (1 - global_rate(rates, budget)) ** round_, budget)


def one_shot_masks(dense, scores, rates, target, budget="uniform"):
    """Masks at overall density `target`, pruned once from the dense round's masks.

    Uniform: each layer gets the density it would have after r rounds of
    the iterative ladder from where it is, r chosen so that the overall
    density is `target`.
    Global and ERK: the layers with a nonzero rate share what `target`
    leaves once the others are counted.
    """
    budget = checks.choice("budget", budget, BUDGETS)
    sizes = {p: m.size for p, m in dense.items()}
    if budget == "uniform":
        targets = densities_at(rates, sizes, target, densities(dense))
        return pruning.score_prune(scores, dense, pruning.rates_for_densities(dense, targets))
    total = sum(sizes.values())
    kept_excluded = sum(int(np.count_nonzero(dense[p])) for p, rate in rates.items() if rate == 0)
    chosen_size = sum(sizes[p] for p, rate in rates.items() if rate > 0)
    return chosen_at(scores, dense, rates, (target * total - kept_excluded) / chosen_size, budget)


def chosen_at(scores, masks, rates, target_density, budget):
    """The layers with a nonzero rate pruned to overall `target_density` among
    themselves, by one global ranking ("global") or ERK layer densities ("erk")."""
    budget = checks.choice("budget", budget, ("global", "erk"))
    chosen = [p for p, rate in rates.items() if rate > 0]
    if budget == "global":
        total = sum(masks[p].size for p in chosen)
        remaining = sum(int(masks[p].sum()) for p in chosen)
        keep = max(1, min(remaining, pruning.keep_count(total, target_density)))
        rate = (remaining - keep) / remaining
        new = pruning.global_score_prune(
            {p: scores[p] for p in chosen}, {p: masks[p] for p in chosen}, rate
        )
    else:
        part = {p: masks[p] for p in chosen}
        # A layer already below its ERK share cannot grow: the others take up the rest.
        targets = pruning.erk_densities({p: masks[p].shape for p in chosen}, target_density,
                                        caps=densities(part))
        new = pruning.score_prune({p: scores[p] for p in chosen}, part,
                                  pruning.rates_for_densities(part, targets))
    return {p: new.get(p, masks[p]) for p in masks}


def densities_at(rates, sizes, target, start=None):
    """Per-layer densities `start * (1 - rate) ** r`, r chosen so the overall density is `target`.

    `start` is `{path: density}` before pruning (an already-pruned model);
    defaults to dense layers.
    """
    start = start or {p: 1.0 for p in rates}

    def overall(r):
        return sum(sizes[p] * start[p] * (1 - rate) ** r
                   for p, rate in rates.items()) / sum(sizes.values())

    low, high = 0.0, 1.0
    while overall(high) > target:
        high *= 2
    for _ in range(60):  # bisection: overall() decreases in r
        middle = (low + high) / 2
        low, high = (middle, high) if overall(middle) > target else (low, middle)
    return {p: start[p] * (1 - rate) ** high for p, rate in rates.items()}


def global_rate(rates, budget="global") -> float:
    """The one nonzero rate of a global or ERK search (0 excludes a layer)."""
    chosen = {rate for rate in rates.values() if rate > 0}
    if len(chosen) != 1:
        raise ValueError(
            f"Expected one nonzero rate for budget={budget!r}, which shares one density "
            "among the layers (rate 0 excludes a layer). Received rates "
            f"{sorted(set(rates.values()))}: pass `prune_rates=0.2`, say."
        )
    return chosen.pop()


def one_shot_floor(rates, sizes, start=None) -> float:
    """The lowest overall density pruning can reach: the share of weights
    kept in layers with rate 0 (`start` density, default 1), never pruned."""
    start = start or {p: 1.0 for p in rates}
    return sum(sizes[p] * start[p] for p, rate in rates.items() if rate == 0) / sum(
        sizes.values())


def pruned_to(scores, masks, density, budget="uniform", chosen=None):
    """Masks with the `chosen` layers brought down to `density` from `masks`,
    the lowest `scores` pruned first, never growing back: what pruning during
    training (`keras_lottery.sparse.GradualPruning`) does at each update.

    Args:
        scores: `{path: array}`, higher kept.
        masks: the current masks `{path: bool array}`.
        density: the chosen layers' density, a fraction of their full size:
            one number, or (`"uniform"` only) `{path: density}` per layer.
        budget: `"uniform"`: each chosen layer at `density` of its own size;
            `"global"`: one ranking across the chosen layers; `"erk"`: ERK
            densities, a layer already below its share staying where it is.
        chosen: the paths to prune; defaults to all. The others stay as they are.
    """
    budget = checks.choice("budget", budget, BUDGETS)
    chosen = list(masks) if chosen is None else [p for p in masks if p in set(chosen)]
    if budget == "uniform":
        targets = density if isinstance(density, Mapping) else {p: density for p in chosen}
        part = {p: masks[p] for p in chosen}
        new = pruning.score_prune({p: scores[p] for p in chosen}, part,
                                  pruning.rates_for_densities(part, targets))
        return {p: new.get(p, masks[p]) for p in masks}
    live = sum(int(np.count_nonzero(masks[p])) for p in chosen)
    if live <= pruning.keep_count(sum(masks[p].size for p in chosen), density):
        return dict(masks)  # There already (ERK's rounding may leave it just below).
    rates = {p: (0.5 if p in chosen else 0.0) for p in masks}
    return chosen_at(scores, masks, rates, density, budget)
