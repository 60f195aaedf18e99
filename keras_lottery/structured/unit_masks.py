"""Structured pruning as pure functions over `{path: array}`, like `keras_lottery.pruning.rules`.

A unit group (`keras_lottery.structured.unit_groups`) is scored by the norm of its
producers' scores per unit (heads: of all four projections), or by |gamma|
of the BatchNormalization layers after it. Pruning a unit zeroes it in every
producer and every consumer, so the masked model computes exactly what the
shrunk one does. Patterns (N:M, blocks) stay inside one kernel.

Counting follows `keras_lottery.pruning.rules`: a round keeps
`keep_count(units at the start, (1 - rate) ** round)` units of a group (at
least one), and among equal scores the unit that comes first is pruned first.
"""

import numpy as np

from keras_lottery.pruning.rules import keep_count, rates_for_densities, score_prune

_TINY = 1e-300


def unit_view(array, axis, units):
    """`array` with `axis` last, split as `(..., repeat, units)`: unit j is `[..., j]`."""
    moved = np.moveaxis(array, axis, -1)
    return moved.reshape(*moved.shape[:-1], moved.shape[-1] // units, units)


def reduce_units(array, axis, units, reduce):
    """`reduce` (np.any, np.sum) of each unit's entries along `axis`: one value per unit."""
    view = unit_view(array, axis, units)
    return reduce(view.reshape(-1, units), axis=0)


def alive_units(group, masks) -> np.ndarray:
    """Which units of `group` some producer still keeps (consumers: for heads too)."""
    slices = group.producers or group.consumers
    alive = np.zeros(group.units, dtype=bool)
    for piece in slices:
        alive |= reduce_units(masks[piece.path], piece.axis, group.units, np.any)
    return alive


def unit_scores(group, scores, masks, score="l1", gammas=None) -> np.ndarray:
    """One number per unit, higher kept: the L1 or L2 norm of its kept weights'
    scores (with their sign: an inverted criterion ranks units the other way
    round), or the summed |gamma| of `gammas` (`[array]`, one per BatchNormalization)."""
    if score == "bn_gamma" and gammas:
        # |gamma| summed over the group's BatchNormalizations (negated ones: the inverted control).
        return np.sum(gammas, axis=0).astype(np.float64)
    pieces = group.producers + (group.consumers if group.kind == "heads" else [])
    total = np.zeros(group.units)
    squares = np.zeros(group.units)
    for piece in pieces:
        kept = np.where(masks[piece.path], scores[piece.path], 0.0).astype(np.float64)
        total += reduce_units(kept, piece.axis, group.units, np.sum)
        squares += reduce_units(kept ** 2, piece.axis, group.units, np.sum)
    return total if score != "l2" else np.sign(total) * np.sqrt(squares)


def remove_units(group, keep, masks) -> dict:
    """`masks` with the units where `keep` is False zeroed in every producer and consumer."""
    new = dict(masks)
    for piece in group.producers + group.consumers:
        mask = np.asarray(new[piece.path], dtype=bool)
        length = mask.shape[piece.axis]
        shape = [1] * mask.ndim
        shape[piece.axis] = length
        # Unit j sits at j, j + units, ... (a Flatten puts channels fastest).
        new[piece.path] = mask & np.tile(keep, length // group.units).reshape(shape)
    return new


def top_units(values, alive, count) -> np.ndarray:
    """The `count` highest `values` among `alive` (ties: the later unit kept)."""
    ranked = np.where(alive, values, -np.inf)
    order = np.argsort(ranked, kind="stable")  # Ascending; equal values keep index order.
    keep = np.zeros(len(values), dtype=bool)
    keep[order[len(values) - count:]] = True
    return keep & alive


def pattern_prune(scores, mask, spec, axis, density) -> np.ndarray:
    """An N:M or block mask at `density` of the full kernel, within `mask`.

    N:M: every run of M consecutive inputs keeps the same count,
    `max(N, keep_count(M, density))`. Blocks: the `keep_count(blocks,
    density)` blocks of highest score norm.
    """
    ranked = np.where(mask, scores, -np.inf)
    if spec.kind == "n:m":
        moved = np.moveaxis(ranked, axis, -1)
        runs = moved.reshape(*moved.shape[:-1], -1, spec.m)
        keep_each = min(spec.m, max(spec.n, keep_count(spec.m, density)))
        order = np.argsort(runs, axis=-1, kind="stable")
        ranks = np.argsort(order, axis=-1, kind="stable")
        kept = (ranks >= spec.m - keep_each).reshape(moved.shape)
        return np.moveaxis(kept, -1, axis) & mask
    rows, cols = spec.block
    moved = np.moveaxis(np.where(mask, scores, 0.0), axis, -2)
    grid = moved.reshape(*moved.shape[:-2], moved.shape[-2] // rows, rows,
                         moved.shape[-1] // cols, cols)
    reduce_axes = tuple(range(grid.ndim - 4)) + (grid.ndim - 3, grid.ndim - 1)
    norms = np.sum(grid, axis=reduce_axes) if spec.score != "l2" else np.sqrt(
        np.sum(grid ** 2, axis=reduce_axes))
    alive_grid = alive_blocks(mask, axis, spec.block)
    count = min(int(alive_grid.sum()), max(1, keep_count(norms.size, density)))
    keep = top_units(norms.ravel(), alive_grid.ravel(), count).reshape(norms.shape)
    full = np.repeat(np.repeat(keep, rows, axis=0), cols, axis=1)
    return np.moveaxis(np.broadcast_to(full, moved.shape), -2, axis) & mask


def alive_blocks(mask, axis, block):
    """Which blocks of a kernel (inputs on `axis`, outputs last) keep any weight."""
    rows, cols = block
    moved = np.moveaxis(mask, axis, -2)
    grid = moved.reshape(*moved.shape[:-2], moved.shape[-2] // rows, rows,
                         moved.shape[-1] // cols, cols)
    return np.any(grid, axis=tuple(range(grid.ndim - 4)) + (grid.ndim - 3, grid.ndim - 1))


def structured_masks(plan, base, scores, rates, start, start_units, round_, gammas=None):
    """Masks after `round_` rounds of the ladder (a real number for one-shot), from `base`.

    Args:
        plan: the model's `StructurePlan`.
        base: the masks pruned from (the previous round's, or round 0's for one-shot).
        scores: `{path: array}`, higher kept.
        rates: `{path: rate}`.
        start: `{path: density}` before the search.
        start_units: `{group name: units alive}` before the search.
        round_: how many rounds of each rate's ladder to go down.
        gammas: `{group name: [gamma arrays]}` for the "bn_gamma" score.
    """
    # Units first: what they take from a layer that reads them counts toward
    # that layer's density, then each layer goes down its own ladder.
    masks = dict(base)
    for group, rate, spec in plan.groups:
        alive = alive_units(group, base)
        count = min(int(alive.sum()), max(1, keep_count(start_units[group.name],
                                                        (1 - rate) ** round_)))
        values = unit_scores(group, scores, base, spec.score, (gammas or {}).get(group.name))
        masks = remove_units(group, top_units(values, alive, count), masks)
    others = {p: masks[p] for p in masks if p not in plan.structured_paths}
    if others:
        # Never 0 (a float underflow far down the ladder): a layer keeps one weight at least.
        targets = {p: max(start[p] * (1 - rates[p]) ** round_, _TINY) for p in others}
        masks.update(score_prune({p: scores[p] for p in others}, others,
                                 rates_for_densities(others, targets)))
    for path, (spec, axis, _) in plan.patterns.items():
        masks[path] = pattern_prune(scores[path], masks[path], spec, axis,
                                    start[path] * (1 - rates[path]) ** round_)
    return masks


def lowest_density(plan, masks, rates) -> float:
    """The lowest overall density the structure can bring `masks` to: one unit
    per group, N of every M, one block, one weight per other layer (rate 0: none)."""
    ones = {p: np.ones(m.shape) for p, m in masks.items()}
    return density_of(structured_masks(plan, masks, ones, rates, {
        p: float(np.mean(m)) for p, m in masks.items()}, start_units(plan, masks), 1e6))


def start_units(plan, masks) -> dict:
    """`{group name: units alive}` in `masks`."""
    return {group.name: int(alive_units(group, masks).sum()) for group, _, _ in plan.groups}


def density_of(masks) -> float:
    return sum(int(np.count_nonzero(m)) for m in masks.values()) / sum(
        m.size for m in masks.values())


def one_shot_structured(plan, dense, scores, rates, target, gammas=None):
    """Masks at overall density at most `target` (as close as units allow),
    pruned once from `dense`: the ladder's round r, r found by bisection."""
    begin, units = {p: float(np.mean(m)) for p, m in dense.items()}, start_units(plan, dense)

    def at(r):
        return structured_masks(plan, dense, scores, rates, begin, units, r, gammas)

    low, high = 0.0, 1.0
    while density_of(at(high)) > target and high < 1e6:  # Targets below the floor are refused.
        low, high = high, high * 2
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if density_of(at(middle)) > target else (low, middle)
    return at(high)


def random_structured_like(plan, ticket, initial, seed=0):
    """The random-pruning control of a structured ticket: in each group as many
    units as the ticket keeps, drawn at random; N:M runs and blocks drawn with
    the ticket's counts; every other weight drawn among those left, as many as
    the ticket keeps. Same seed, same masks."""
    rng = np.random.default_rng(seed)
    masks = {p: np.array(m, dtype=bool) for p, m in initial.items()}
    for group, _, _ in plan.groups:
        alive = alive_units(group, initial)
        count = int(alive_units(group, ticket).sum())
        scores = np.where(alive, rng.random(group.units), -1.0)
        masks = remove_units(group, top_units(scores, alive, count), masks)
    for path, (spec, axis, _) in plan.patterns.items():
        random = rng.random(initial[path].shape)
        density = float(np.mean(ticket[path]))
        masks[path] = pattern_prune(random, masks[path], spec, axis, density) if (
            spec.kind == "blocks") else _nm_like(random, masks[path], ticket[path], spec, axis)
    for path in masks:
        if path in plan.patterns:
            continue
        left = masks[path]
        count = int(np.count_nonzero(ticket[path]))
        if int(left.sum()) > count:
            draw = np.where(left, rng.random(left.shape), -1.0).ravel()
            keep = np.zeros(left.size, dtype=bool)
            keep[np.argsort(draw, kind="stable")[left.size - count:]] = True
            masks[path] = keep.reshape(left.shape) & left
    return masks


def _nm_like(random, mask, ticket, spec, axis):
    """Random N:M: each run of M keeps as many as the ticket's run does, at random places."""
    moved = np.moveaxis(np.where(mask, random, -np.inf), axis, -1)
    runs = moved.reshape(*moved.shape[:-1], -1, spec.m)
    counts = np.moveaxis(ticket, axis, -1).reshape(runs.shape).sum(axis=-1, keepdims=True)
    ranks = np.argsort(np.argsort(runs, axis=-1, kind="stable"), axis=-1, kind="stable")
    kept = (ranks >= spec.m - counts).reshape(moved.shape)
    return np.moveaxis(kept, -1, axis) & mask
