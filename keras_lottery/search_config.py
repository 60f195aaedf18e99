"""What a ticket search is asked to do: its settings, checked before any work.

`SearchConfig` holds everything that decides a search's masks and records;
a resumed search must match it. `check_settings` refuses bad input with the
argument's name, what was expected and what was received.
"""

import dataclasses
import hashlib
import json

import numpy as np

from keras_lottery.criteria import Criterion, as_criterion
from keras_lottery.planning import BUDGETS
from keras_lottery.pruning import PruneRates
from keras_lottery.results import RECORD_KINDS
from keras_lottery.structures import Structure, as_structures, is_unstructured
from keras_lottery.transfer import as_mask_sets, check_alone

CONTROLS = RECORD_KINDS[1:]
PAPER_RATES = PruneRates(0.2, by_kind={"output": 0.1})
DEFAULT_ROUNDS = 5
MODES = ("auto", "min", "max")
INITIAL_WEIGHTS = (None, "current")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Everything that decides a search's masks and records; a resume must match it."""

    rounds: int = 5  # Pruned rounds after the dense round 0 (iterative), at most.
    target_density: float | None = None  # Stop once overall density <= this.
    prune_rates: PruneRates = PAPER_RATES  # Rate per round, per layer.
    budget: str = "uniform"  # How layers share a density: uniform, global or erk.
    criterion: Criterion = Criterion()  # What a round keeps: the largest trained |w|.
    # Weights, whole units or a pattern (`keras_lottery.Structure`), or {layer: one}.
    structure: Structure | dict = Structure()
    one_shot: tuple | None = None  # Densities to prune straight to from the dense run.
    # Mask sets found elsewhere, one round each: their density and hash (`transfer.fingerprint`).
    transfer: tuple | None = None
    rewind_step: int = 0  # Iteration of the dense run survivors rewind to.
    eval_every: int | None = None  # Iterations between evaluations; None: each epoch.
    monitor: str = "val_loss"  # The early-stop criterion's quantity.
    mode: str = "auto"  # Whether `monitor` is best at its "min" or "max"; "auto" guesses.
    test_curves: bool = False  # Test set at every point too (a resume may change it).
    seed: int = 0  # Seeds every training (data order, dropout) and the controls.
    fit: dict = dataclasses.field(default_factory=dict)  # epochs, batch_size, ...

    def to_json(self) -> dict:
        """The configuration as it reads back from a JSON file."""
        return json_roundtrip(dataclasses.asdict(self))

    @property
    def global_pruning(self) -> bool:
        return self.budget == "global"

    @property
    def best(self):
        """`np.argmin` or `np.argmax`: the early-stop point of a `monitor` curve."""
        return best_function(self.monitor, self.mode)


def best_function(monitor: str, mode: str = "auto"):
    """`np.argmin` or `np.argmax`: the best point of a `monitor` curve in `mode`."""
    if mode == "auto":  # As Keras' EarlyStopping guesses: accuracy-like is maxed.
        mode = "max" if any(k in monitor for k in ("acc", "auc", "precision",
                                                   "recall")) else "min"
    return np.argmax if mode == "max" else np.argmin


def check_settings(*, rounds, target_density, one_shot, rewind_step, controls, eval_every,
                   monitor, mode, seed, verbose, initial_weights, criterion="large_final",
                   budget="uniform", global_pruning=False, test_curves=False, transfer=None,
                   prune_rates=None, structure=None, structure_score=None):
    """Refuses bad settings; returns `one_shot`, `controls`, the `Criterion`, the budget,
    the transferred mask sets (a tuple of dicts, or None) and the structure(s)."""
    if rounds is not None:
        check_int("rounds", rounds, 1)
    check_int("rewind_step", rewind_step, 0)
    check_int("seed", seed, 0)
    if eval_every is not None:
        check_int("eval_every", eval_every, 1)
    check_verbose(verbose)
    if target_density is not None and not (
            isinstance(target_density, (int, float)) and 0 < target_density < 1):
        raise ValueError(
            f"Expected `target_density` in (0, 1). Received: target_density={target_density!r}"
        )
    if one_shot is not None:
        one_shot = tuple(one_shot)
        if not one_shot or not all(isinstance(d, (int, float)) and 0 < d < 1 for d in one_shot):
            raise ValueError(
                f"Expected `one_shot` densities in (0, 1). Received: one_shot={one_shot!r}"
            )
        if len(set(one_shot)) != len(one_shot):
            raise ValueError(
                f"Expected distinct `one_shot` densities. Received: one_shot={one_shot!r}"
            )
    controls = (controls,) if isinstance(controls, str) else tuple(controls)
    unknown = [c for c in controls if c not in CONTROLS]
    if unknown:
        raise ValueError(f"Expected `controls` among {CONTROLS}. Received: {unknown}")
    if not isinstance(monitor, str) or not monitor.startswith("val_"):
        raise ValueError(
            "Expected `monitor` to name a validation quantity, `val_loss` or `val_<metric>` "
            f"of a compiled metric. Received: monitor={monitor!r}"
        )
    if not isinstance(test_curves, bool):
        raise ValueError(f"Expected `test_curves` True or False. Received: "
                         f"test_curves={test_curves!r}")
    if mode not in MODES:
        raise ValueError(f"Expected `mode` among {MODES}. Received: mode={mode!r}")
    criterion = as_criterion(criterion)
    if budget not in BUDGETS:
        raise ValueError(f"Expected `budget` among {BUDGETS}. Received: budget={budget!r}")
    if global_pruning:
        if budget not in ("uniform", "global"):
            raise ValueError(
                "Expected either `global_pruning=True` or a `budget`. Received: "
                f"global_pruning=True, budget={budget!r}"
            )
        budget = "global"
    if criterion.at_initialization and one_shot is None:
        raise ValueError(
            f"Expected `one_shot` densities with criterion {criterion.name!r}: it prunes at "
            "initialization, once per density, before any training. Received: one_shot=None"
        )
    if initial_weights not in INITIAL_WEIGHTS:
        raise ValueError(
            "Expected `initial_weights` None (the model is untrained: its weights are θ0) or "
            f"'current' (its current weights, pretrained, are θ0). Received: "
            f"initial_weights={initial_weights!r}"
        )
    structures = as_structures(structure, structure_score)
    if not is_unstructured(structures):
        if budget != "uniform":
            raise ValueError(
                f"Expected budget='uniform' with a structure: each layer (each unit group) "
                f"goes down its own ladder. Received: budget={budget!r}, "
                f"structure={structure!r}")
        if criterion.at_initialization:
            raise ValueError(
                f"Expected a criterion scoring trained weights with a structure. Received: "
                f"criterion={criterion.name!r}, which prunes at initialization, weight by "
                f"weight, with structure={structure!r}")
    transfer = as_mask_sets(transfer)
    if transfer is not None:
        # The masks are given: nothing decides them, and nothing else may claim to.
        if prune_rates is not None and not isinstance(prune_rates, PruneRates):
            prune_rates = PruneRates(prune_rates)
        check_alone({
            "rounds": rounds, "one_shot": one_shot, "target_density": target_density,
            "criterion": None if criterion == Criterion() else criterion,
            "prune_rates": None if prune_rates in (None, PAPER_RATES) else prune_rates,
            "budget": None if budget == "uniform" else budget,
            "structure": None if is_unstructured(structures) else structure,
        }, controls)
    return one_shot, controls, criterion, budget, transfer, structures


def check_verbose(verbose):
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"Expected `verbose` 0, 1 or 2. Received: verbose={verbose!r}")


def fit_settings(kwargs):
    """The `fit` arguments a search passes on; the ones it owns are refused."""
    owned = {
        "x": "the search's `x`", "y": "the search's `y`",
        "validation_data": "`validation_data` of the search (evaluated every `eval_every`)",
        "validation_split": "`validation_data` of the search",
        "initial_epoch": "nothing: every round trains from epoch 0",
        "verbose": "`verbose` of the search",
    }
    for key in kwargs:
        if key in owned:
            raise ValueError(
                f"Expected `fit` arguments the search passes on. Received `{key}`: use "
                f"{owned[key]} instead."
            )
    for key in ("epochs", "batch_size", "steps_per_epoch"):
        if kwargs.get(key) is not None:
            check_int(key, kwargs[key], 1)
    return dict(kwargs)


def check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Expected `{name}` an integer >= {minimum}. Received: {name}={value!r}")


def json_roundtrip(data):
    """`data` as it reads back from a JSON file; arrays (a `sample_weight` given
    to `fit`) as their shape, dtype and a hash of their bytes."""
    return json.loads(json.dumps(data, default=_jsonable))


def _jsonable(value):
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        array = np.ascontiguousarray(np.asarray(value))
        return {"shape": list(array.shape), "dtype": str(array.dtype),
                "sha256": hashlib.sha256(array.tobytes()).hexdigest()}
    return repr(value)
