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
            {"config": self.config, "records": [dataclasses.asdict(r) for r in self.records]},
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> "SearchResult":
        data = json.loads(text)
        return cls([RoundRecord(**r) for r in data["records"]], data.get("config", {}))

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
