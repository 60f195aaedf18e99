"""What a ticket search measured: one record per trained network, as data.

`SearchResult` round-trips through JSON and writes a flat CSV, one row per
record, for plotting the paper's figures (accuracy and early-stop iteration
against density, curves over iterations).
"""

import csv
import dataclasses
import io
import json

# New kinds go at the end: a training's seed is drawn from its kind's position
# (see `training.seed_for`).
RECORD_KINDS = ("ticket", "random_reinit", "random_pruning", "inverted", "signed_constant")


@dataclasses.dataclass
class RoundRecord:
    """One trained network of a search: a ticket round or a control."""

    round: int  # 0 is the dense network.
    kind: str  # One of RECORD_KINDS.
    density: float  # Fraction of prunable weights remaining, overall.
    layer_densities: dict  # {weight path: density}.
    iterations: int  # Optimizer steps trained.
    final: dict  # Metrics at the end: val_/test_ loss and accuracy, train logs.
    early_stop: dict  # {"iteration", val_/test_ loss and accuracy} at min val loss; {} if untracked.
    curves: dict  # {"iteration": [...], "val_loss": [...], ...}; {} if untracked.
    wall_time: float  # Seconds, training and evaluation of this record.

    @property
    def early_stop_iteration(self):
        return self.early_stop.get("iteration")


@dataclasses.dataclass
class InstabilityRecord:
    """The instability of one start: two copies trained from it with different
    noise, and the straight line between them (`keras_lottery.instability`).

    `curves` holds the line: `{"alpha": [...], "loss": [...], <metric>: [...]}`
    evaluated at `len(curves["alpha"])` points; `barriers` the paper's barrier
    of each (`search.linear_path.barriers`: the worst point minus the ends'
    mean, as an error for accuracy-like metrics). `instability` is the error
    barrier of `error_quantity` (the accuracy), or the loss barrier for a
    model without an accuracy metric.
    """

    round: int  # The search round whose masks the copies carried (0: dense).
    start_iteration: int  # Iterations of the dense run the copies started from (0: θ0).
    network: str  # "ticket": the round's ticket; "dense" / "pruned": a rewind candidate.
    density: float  # Fraction of prunable weights the copies kept.
    seeds: list  # The copies' noise seeds (data order, dropout).
    iterations: list  # Optimizer steps each copy trained.
    normalization: str  # "recompute" or "interpolate" (see `search.linear_path`).
    evaluated_on: str  # "test", "validation" or "data": what the line was evaluated on.
    curves: dict
    barriers: dict
    error_quantity: str | None
    instability: float
    wall_time: float = 0.0  # Seconds: training the copies and evaluating the line.

    def stable(self, tolerance: float = 0.02) -> bool:
        """Whether the barrier is within `tolerance` (2 points of error by default)."""
        return self.instability <= tolerance

    @property
    def error_barrier(self):
        """The error barrier (of the accuracy), or None for a model without one."""
        return None if self.error_quantity is None else self.barriers[self.error_quantity]

    @property
    def loss_barrier(self) -> float:
        return self.barriers["loss"]


class RecordLookup:
    """Finding records by round and kind, for `SearchResult` and `AggregateResult`."""

    def tickets(self) -> list:
        """The ticket rounds (no controls), by round."""
        return [r for r in self.records if r.kind == "ticket"]

    def controls(self, kind: str) -> list:
        """The records of one control (`"random_reinit"`, `"random_pruning"`, ...)."""
        return [r for r in self.records if r.kind == kind]

    def record(self, round: int, kind: str = "ticket"):  # noqa: A002 - as RoundRecord.round
        for record in self.records:
            if record.round == round and record.kind == kind:
                return record
        raise KeyError(f"No {kind} record for round {round}.")


def headline_quantity(names):
    """What a table or figure leads with: test, else validation, accuracy, else
    bits per character (a language model), else the loss (a regression model);
    None if `names` has none of them."""
    for key in ("test_accuracy", "val_accuracy", "test_bits_per_character",
                "val_bits_per_character", "test_loss", "val_loss"):
        if key in names:
            return key
    return None


@dataclasses.dataclass
class SearchResult(RecordLookup):
    """All records of a search, in the order they were trained."""

    records: list = dataclasses.field(default_factory=list)
    config: dict = dataclasses.field(default_factory=dict)
    # The rounds' tickets measured (`instability=True`), by round.
    instability: list = dataclasses.field(default_factory=list)
    # With `rewind_candidates`: {"chosen": k, "tolerance": ..., "network": ...,
    # "candidates": [InstabilityRecord of each measured candidate]}; else None.
    rewind_choice: dict | None = None

    @staticmethod
    def aggregate(results):
        """An `AggregateResult`: mean and spread (std, min, max) per round and kind over searches that
        differ only in their seed: see `keras_lottery.search.aggregate.aggregate`.

        >>> seeds = SearchResult.aggregate([load_result(f"runs/seed_{s}") for s in range(5)])
        >>> print(seeds.summary())
        """
        from keras_lottery.search.aggregate import aggregate

        return aggregate(results)

    def to_json(self) -> str:
        return json.dumps(
            {"config": self.config, "records": [dataclasses.asdict(r) for r in self.records],
             "instability": [dataclasses.asdict(r) for r in self.instability],
             "rewind_choice": choice_to_json(self.rewind_choice)},
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> "SearchResult":
        data = json.loads(text)
        return cls([RoundRecord(**r) for r in data["records"]], data.get("config", {}),
                    [InstabilityRecord(**r) for r in data.get("instability") or []],
                    choice_from_json(data.get("rewind_choice")))

    def stability_summary(self) -> str:
        """A table of the instability measured: the rewind candidates, then each round's ticket."""
        lines = [f"{'start':>6}  {'network':<8} {'round':>5} {'density':>8}  "
                 f"{'error barrier':>13}  {'loss barrier':>12}"]
        candidates = (self.rewind_choice or {}).get("candidates", [])
        for r in [*candidates, *self.instability]:
            lines.append(f"{r.start_iteration:>6}  {r.network:<8} {r.round:>5} "
                         f"{r.density:>8.2%}  {_fmt(r.error_barrier):>13}  "
                         f"{_fmt(r.loss_barrier):>12}")
        if self.rewind_choice and self.rewind_choice.get("chosen") is not None:
            choice = self.rewind_choice
            lines.append(f"rewind step chosen: {choice['chosen']} (the earliest candidate "
                         f"with an instability <= {choice['tolerance']}"
                         f"{'' if choice['stable'] else '; none was: the least unstable'})")
        return "\n".join(lines)

    def to_csv(self) -> str:
        """One row per record: round, kind, density, iterations, wall time, and
        every final and early-stop metric (`final_*`, `early_stop_*`)."""
        rows = []
        for r in self.records:
            row = {"round": r.round, "kind": r.kind, "density": r.density,
                   "iterations": r.iterations, "wall_time": r.wall_time}
            row.update({f"final_{k}": v for k, v in r.final.items()})
            row.update({f"early_stop_{k}": v for k, v in r.early_stop.items()})
            rows.append(row)
        return csv_text(rows)

    def summary(self) -> str:
        """A table: one line per record, of accuracy (bits per character for a
        language model): validation at the end, test at the early stop."""
        names = {k for r in self.records for k in (*r.final, *r.early_stop)}
        quantity, short = "accuracy", "acc"
        if "test_accuracy" not in names and "val_accuracy" not in names and (
                {"test_bits_per_character", "val_bits_per_character"} & names):
            quantity, short = "bits_per_character", "bpc"
        lines = [f"{'round':>5}  {'kind':<16} {'density':>8}  {'val ' + short:>7}  "
                 f"{'test ' + short:>8}  {'early stop':>10}  {'time':>7}"]
        for r in self.records:
            test = r.early_stop.get(f"test_{quantity}", r.final.get(f"test_{quantity}"))
            lines.append(
                f"{r.round:>5}  {r.kind:<16} {r.density:>8.2%}  "
                f"{_fmt(r.final.get(f'val_{quantity}')):>7}  {_fmt(test):>8}  "
                f"{str(r.early_stop_iteration or '-'):>10}  {r.wall_time:>6.1f}s"
            )
        return "\n".join(lines)


def choice_to_json(choice):
    if choice is None:
        return None
    return {**choice, "candidates": [dataclasses.asdict(r) for r in choice["candidates"]]}


def choice_from_json(data):
    if data is None:
        return None
    return {**data, "candidates": [InstabilityRecord(**r) for r in data["candidates"]]}


def csv_text(rows) -> str:
    """`rows` (dicts) as CSV: every key any row has is a column, in first-seen order."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _fmt(value):
    return "-" if value is None else f"{value:.4f}"
