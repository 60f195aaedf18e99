"""Several seeds of one search as one result: mean and spread per round, the paper's error bars.

The paper averages five trials and draws the minimum and maximum as error
bars. `aggregate([result_seed0, result_seed1, ...])` pairs the records of
the same round and kind across the searches, refuses searches that differ
in anything but their seed, and gives mean, standard deviation, minimum and
maximum of every number they recorded.
"""

import dataclasses
import json
import math

import numpy as np

from keras_lottery.search.results import RecordLookup, csv_text, headline_quantity

# Settings that may differ between the searches averaged: the seed itself,
# what was recorded, and how far each has got (a seed still running).
_FREE = ("seed", "test_curves", "rounds", "target_density")


@dataclasses.dataclass
class Spread:
    """Mean, sample standard deviation (0 for one value), minimum and maximum."""

    mean: float
    std: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values) -> "Spread":
        values = np.asarray(values, dtype=float)
        return cls(float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                   float(values.min()), float(values.max()), int(len(values)))


@dataclasses.dataclass
class AggregateRecord:
    """One round and kind over the seeds that trained it.

    `final`, `early_stop` and `curves` hold the means, keyed like a
    `RoundRecord`'s (so plots draw either); `spread` holds every `Spread`:
    `"density"`, `"iterations"`, `"wall_time"`, `"final_<name>"`,
    `"early_stop_<name>"`. `curves_min`/`curves_max` bound the curves where
    every seed evaluated at the same iterations.
    """

    round: int
    kind: str
    density: float
    seeds: list
    iterations: float
    final: dict
    early_stop: dict
    spread: dict
    curves: dict
    curves_min: dict
    curves_max: dict
    wall_time: float

    @property
    def early_stop_iteration(self):
        return self.early_stop.get("iteration")


@dataclasses.dataclass
class AggregateResult(RecordLookup):
    """Records of several seeds of one search, averaged: see `aggregate`."""

    records: list
    seeds: list
    config: dict

    def to_csv(self) -> str:
        """One row per round and kind: seeds, then `<name>_mean`, `_std`, `_min`, `_max`."""
        rows = []
        for r in self.records:
            row = {"round": r.round, "kind": r.kind, "seeds": len(r.seeds)}
            for name, spread in r.spread.items():
                row.update({f"{name}_{stat}": getattr(spread, stat)
                            for stat in ("mean", "std", "min", "max")})
            rows.append(row)
        return csv_text(rows)

    def summary(self) -> str:
        """A table: one line per round and kind, mean ± std [min, max] over the seeds."""
        key = headline(self.records)
        label = key.replace("_", " ") if key else "-"
        lines = [f"{len(self.seeds)} seeds {self.seeds}; {label} at the early stop "
                 "(else the end): mean ± std [min, max]",
                 f"{'round':>5}  {'kind':<16} {'density':>8}  {'seeds':>5}  "
                 f"{label:>32}  {'early stop':>14}"]
        for r in self.records:
            spread = r.spread.get(f"early_stop_{key}") or r.spread.get(f"final_{key}")
            value = (f"{spread.mean:.4f} ± {spread.std:.4f} [{spread.min:.4f}, {spread.max:.4f}]"
                     if spread else "-")
            stop = r.spread.get("early_stop_iteration")
            stop = f"{stop.mean:.0f} ± {stop.std:.0f}" if stop else "-"
            lines.append(f"{r.round:>5}  {r.kind:<16} {r.density:>8.2%}  {len(r.seeds):>5}  "
                         f"{value:>32}  {stop:>14}")
        return "\n".join(lines)


def headline(records):
    """The quantity a table leads with (`results.headline_quantity`) among all records' numbers."""
    names = set()
    for r in records:
        names.update(r.final)
        names.update(r.early_stop)
    return headline_quantity(names)


def _shared(config: dict) -> dict:
    """The settings searches averaged together must share: all but the seed and how far."""
    return {k: v for k, v in config.items() if k not in _FREE}


def same_search_key(config: dict) -> str:
    """`_shared(config)` as one string, to group searches by."""
    return json.dumps(_shared(config), sort_keys=True, default=repr)


def aggregate(results) -> AggregateResult:
    """Mean and spread over several searches that differ only in their seed.

    Args:
        results: `SearchResult`s (each from `TicketSearch.run()` or
            `load_result(directory)`), one per seed.

    Returns:
        An `AggregateResult`: one `AggregateRecord` per round and kind that
        any of them trained, over the seeds that trained it (a seed still
        running counts where it has got to).
    """
    results = list(results)
    if not results:
        raise ValueError("Expected at least one SearchResult to aggregate. Received none.")
    seeds = [r.config.get("seed") for r in results]
    if len(set(seeds)) != len(seeds):
        raise ValueError(
            f"Expected searches of distinct seeds. Received seeds {seeds}: the same seed "
            "twice is the same search twice (on one backend), which would narrow the spread."
        )
    first = _shared(results[0].config)
    for seed, result in zip(seeds[1:], results[1:]):
        other = _shared(result.config)
        differing = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
        if differing:
            key = differing[0]
            raise ValueError(
                f"Expected searches that differ only in their seed. Received seed {seed} with "
                f"{key}={other.get(key)!r} against {first.get(key)!r} for seed {seeds[0]} "
                f"(differing: {differing})."
            )
    groups = {}
    for seed, result in zip(seeds, results):
        for record in result.records:
            groups.setdefault((record.round, record.kind), []).append((seed, record))
    order = {kind: i for i, kind in enumerate(dict.fromkeys(
        r.kind for result in results for r in result.records))}
    records = [_combined(round_, kind, pairs) for (round_, kind), pairs in
               sorted(groups.items(), key=lambda item: (item[0][0], order[item[0][1]]))]
    config = {**results[0].config, "seeds": seeds}
    config.pop("seed", None)
    return AggregateResult(records, seeds, config)


def _combined(round_, kind, pairs):
    seeds = [seed for seed, _ in pairs]
    records = [record for _, record in pairs]
    spread = {"density": Spread.of([r.density for r in records]),
              "iterations": Spread.of([r.iterations for r in records]),
              "wall_time": Spread.of([r.wall_time for r in records])}
    means = {}
    for part in ("final", "early_stop"):
        names = set.intersection(*(set(getattr(r, part)) for r in records))
        values = {name: [getattr(r, part)[name] for r in records] for name in sorted(names)}
        values = {name: v for name, v in values.items() if _numbers(v)}
        spread.update({f"{part}_{name}": Spread.of(v) for name, v in values.items()})
        means[part] = {name: spread[f"{part}_{name}"].mean for name in values}
    curves, low, high = {}, {}, {}
    grids = [r.curves.get("iteration") for r in records]
    if grids[0] and all(g == grids[0] for g in grids):
        # Seeds evaluated at the same iterations: their curves average point by point.
        for name in set.intersection(*(set(r.curves) for r in records)):
            stacked = np.asarray([r.curves[name] for r in records], dtype=float)
            curves[name] = stacked.mean(axis=0).tolist()
            low[name], high[name] = stacked.min(axis=0).tolist(), stacked.max(axis=0).tolist()
    return AggregateRecord(
        round=round_, kind=kind, density=spread["density"].mean, seeds=seeds,
        iterations=spread["iterations"].mean, final=means["final"],
        early_stop=means["early_stop"], spread=spread, curves=curves, curves_min=low,
        curves_max=high, wall_time=spread["wall_time"].mean)


def _numbers(values):
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in values)
