"""Every setting of a ticket search, declared once.

Each `Setting` in `SETTINGS` says its name, default, meaning, how it is
checked, whether it decides the masks, and its `keras-lottery run` flag.
`TicketSearch` checks its arguments with `check_settings`, the presets take
the same names as overrides, and the CLI builds its flags and help from the
same lines (`tests/test_settings.py` holds `TicketSearch`'s signature and
docstring to them). What excludes what is `check_together`, the one rule:
a setting is *given* when it differs from its default (`Setting.given`).

`SearchConfig` is what a search keeps of its settings: everything that
decides its masks and records, which a resumed search must match.
"""

import dataclasses
import difflib
import hashlib
import inspect
import json
from collections.abc import Callable

import numpy as np

from keras_lottery import checks
from keras_lottery.pruning.criteria import CRITERIA, Criterion, as_criterion
from keras_lottery.pruning.planning import BUDGETS
from keras_lottery.pruning.rules import PruneRates
from keras_lottery.search.results import RECORD_KINDS
from keras_lottery.search.transfer import as_mask_sets
from keras_lottery.structured.structures import Structure, as_structures, is_unstructured

CONTROLS = RECORD_KINDS[1:]
PAPER_RATES = PruneRates(0.2, by_kind={"output": 0.1})
DEFAULT_ROUNDS = 5
MODES = ("auto", "min", "max")
STABILITY_NETWORKS = ("dense", "pruned")
NORMALIZATION = ("recompute", "interpolate")
INITIAL_WEIGHTS = (None, "current")
DATA_ORDERS = ("per_training", "per_round", "shared")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One search setting: its name, default, meaning and check.

    Attributes:
        name: the `TicketSearch` argument.
        default: its value when not given.
        help: what it means, in one line (the CLI's help).
        check: `check(name, value)` refuses a bad value (ValueError naming it)
            and returns the value as the search keeps it.
        decides_masks: whether it chooses the masks or the rounds, which
            transferred masks (`transfer`) decide alone.
        flag: `argparse` keywords of its `keras-lottery run` flag
            (`--name-with-dashes`), or None where the command line spells it
            otherwise (`--rate` for `prune_rates`) or cannot give it.
    """

    name: str
    default: object
    help: str
    check: Callable
    decides_masks: bool = False
    flag: dict | None = None

    def checked(self, value):
        return self.check(self.name, value)

    def given(self, value, kept=None) -> bool:
        """Whether `value` asks for something other than the default; `kept`,
        where the caller has it, is `value` already checked."""
        if value is None:
            return False
        kept = self.checked(value) if kept is None else kept
        default = None if self.default is None else self.checked(self.default)
        return not _equal(kept, default)


def _equal(a, b):
    try:
        return bool(a == b)
    except (ValueError, TypeError):  # Arrays (transferred masks): never the default.
        return False


# -- checks of single settings: each returns the value as the search keeps it --


def _optional(check):
    def optional(name, value):
        return None if value is None else check(name, value)
    return optional


def _positive_integer(name, value):
    return checks.integer(name, value, 1)


def _density(name, value):
    return checks.fraction(name, value)


def _prune_rates(name, value):
    return value if isinstance(value, PruneRates) else PruneRates(value)


def _budget(name, value):
    return checks.choice(name, value, BUDGETS)


def _criterion(name, value):
    return as_criterion(value)


def _one_shot(name, value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"Expected `{name}` a list of densities in (0, 1). "
                         f"Received: {name}={value!r}")
    try:
        densities = tuple(checks.fraction(name, d) for d in value)
    except ValueError:
        densities = ()
    if not densities or len(densities) != len(list(value)):
        raise ValueError(f"Expected `{name}` densities in (0, 1). Received: {name}={value!r}")
    if len(set(densities)) != len(densities):
        raise ValueError(f"Expected distinct `{name}` densities. Received: {name}={value!r}")
    return densities


def _transfer(name, value):
    return as_mask_sets(value)


def _structure(name, value):
    return as_structures(value)


def _step(name, value):
    return checks.integer(name, value, 0)


def _steps(name, value):
    steps = checks.integers(name, value, 0)
    if len(set(steps)) != len(steps):
        raise ValueError(f"Expected distinct `{name}`. Received: {name}={value!r}")
    return tuple(sorted(steps))


def _tolerance(name, value):
    return checks.number(name, value, 0, 1, low_open=True, high_open=True)


def _path_points(name, value):
    return checks.integer(name, value, 3)


def _stability_network(name, value):
    return checks.choice(name, value, STABILITY_NETWORKS)


def _normalization(name, value):
    return checks.choice(name, value, NORMALIZATION)


def _data_order(name, value):
    return checks.choice(name, value, DATA_ORDERS)


def _controls(name, value):
    return checks.choices(name, value, CONTROLS)


def _monitor(name, value):
    if not isinstance(value, str) or not value.startswith("val_"):
        raise ValueError(
            f"Expected `{name}` to name a validation quantity, `val_loss` or `val_<metric>` "
            f"of a compiled metric. Received: {name}={value!r}")
    return value


def _mode(name, value):
    return checks.choice(name, value, MODES)


def _initial_weights(name, value):
    if not (value is None or (isinstance(value, str) and value == "current")):
        raise ValueError(
            f"Expected `{name}` None (the model is untrained: its weights are θ0) or "
            f"'current' (its current weights, pretrained, are θ0). Received: {name}={value!r}")
    return value


def _vocabulary(name, value):
    from keras_lottery.data.text import Vocabulary

    if not isinstance(value, Vocabulary):
        raise ValueError(f"Expected `{name}` a keras_lottery.text.Vocabulary or None. "
                         f"Received: {name}={value!r}")
    return value


def _path(name, value):
    return checks.path(name, value)


def _seed(name, value):
    return checks.integer(name, value, 0)


def _verbose(name, value):
    return checks.verbose(value, name)


def _boolean(name, value):
    return checks.boolean(name, value)


SETTINGS = (
    Setting("rounds", None, "pruned rounds after the dense round 0 (default 5; with "
            "transfer, one per mask set)", _optional(_positive_integer), decides_masks=True,
            flag=dict(type=int)),
    Setting("target_density", None, "stop after the round whose overall density is at or "
            "below this", _optional(_density), decides_masks=True, flag=dict(type=float)),
    Setting("prune_rates", PAPER_RATES, "fraction of remaining weights pruned per round, per "
            "layer (a PruneRates or one rate)", _prune_rates, decides_masks=True),
    Setting("budget", "uniform", "how layers share a density: uniform (each at its own "
            "rate), global (one ranking) or erk", _budget, decides_masks=True,
            flag=dict(choices=BUDGETS)),
    Setting("criterion", "large_final", "which weights a round keeps; snip, grasp and "
            "synflow prune at initialization and need one_shot", _criterion,
            decides_masks=True, flag=dict(choices=CRITERIA)),
    Setting("one_shot", None, "densities to prune straight to from the dense run, one "
            "training each, instead of iterating", _optional(_one_shot), decides_masks=True,
            flag=dict(type=float, nargs="+", metavar="DENSITY")),
    Setting("transfer", None, "mask sets found elsewhere, trained one round each instead of "
            "pruning", _optional(_transfer)),
    Setting("structure", "unstructured", "what a round prunes: unstructured, neurons, "
            "filters, units (both), heads, N:M such as 2:4, or blocks:RxC", _structure,
            decides_masks=True, flag=dict(type=str)),
    Setting("rewind_step", 0, "rewind survivors to the weights after this many iterations "
            "of the dense run (0: θ0)", _step, flag=dict(type=int)),
    Setting("rewind_candidates", None, "rewind to the earliest of these iterations of the "
            "dense run at which training is stable (measured: see instability)",
            _optional(_steps), flag=dict(type=int, nargs="+", metavar="ITERATION")),
    Setting("stability_tolerance", 0.02, "the instability (error barrier) at or below which "
            "a rewind candidate is stable", _tolerance, flag=dict(type=float)),
    Setting("stability_network", "dense", "what rewind candidates are measured on: the dense "
            "network, or the first pruned round's masks", _stability_network,
            flag=dict(choices=STABILITY_NETWORKS)),
    Setting("instability", False, "measure each round's ticket's instability: a second copy "
            "trained with other noise, the error barrier on the line between them", _boolean,
            flag=dict(action="store_true")),
    Setting("path_points", 30, "evenly spaced points evaluated on the line between two "
            "copies (both ends included)", _path_points, flag=dict(type=int)),
    Setting("path_normalization", "recompute", "BatchNormalization statistics along the "
            "line: recompute them at each point, or interpolate them", _normalization,
            flag=dict(choices=NORMALIZATION)),
    Setting("controls", (), "controls trained beside each round", _controls,
            flag=dict(nargs="+", choices=CONTROLS)),
    Setting("data_order", "per_training", "per_training: each training its own data order, "
            "seeded by round and kind; per_round: a round's controls read its ticket's batches "
            "in its order (paired, and what joint needs); shared: every seed's round reads "
            "the same batches (what lets several seeds train as one)", _data_order,
            flag=dict(choices=DATA_ORDERS)),
    Setting("joint", False, "train a round's ticket and controls as one compiled program "
            "where they share a data order (data_order per_round or shared; with shared and "
            "--seeds, the seeds' rounds too); the numbers are those of one at a time",
            _boolean, flag=dict(action="store_true")),
    Setting("eval_every", None, "iterations between evaluations (default: each epoch's end)",
            _optional(_positive_integer), flag=dict(type=int)),
    Setting("monitor", "val_loss", "the early-stop quantity: val_loss or val_<metric>",
            _monitor, flag=dict(type=str)),
    Setting("mode", "auto", "whether monitor is best at its min or max (auto: max for "
            "accuracy-like names)", _mode, flag=dict(choices=MODES)),
    Setting("test_curves", False, "evaluate the test set at every point too (test curves); "
            "by default only at the early-stop point and the end", _boolean,
            flag=dict(action="store_true")),
    Setting("initial_weights", None, "None: the model is untrained (θ0); 'current': its "
            "current weights are θ0 (a pretrained network)", _initial_weights),
    Setting("vocabulary", None, "the text's Vocabulary, kept with the run so that a resume "
            "on another text is refused", _optional(_vocabulary)),
    Setting("directory", None, "where each finished training is kept; rerun to resume",
            _optional(_path)),
    Setting("seed", 0, "seeds each training's data order and dropout, and the controls",
            _seed, flag=dict(type=int)),
    Setting("verbose", 1, "0 silent, 1 a line per training, 2 also Keras' line per epoch",
            _verbose, flag=dict(type=int, choices=(0, 1, 2), default=2)),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}
# The settings of `keras-lottery run` whose flag is spelled as the argument.
FLAGGED = tuple(setting for setting in SETTINGS if setting.flag is not None)
# What rules out what: besides `transfer`, which rules out every setting
# that decides masks (`Setting.decides_masks`).
EXCLUSIVE = {"one_shot": ("rounds", "target_density"), "rewind_candidates": ("rewind_step",)}
WHY_EXCLUSIVE = {"one_shot": "its densities are the rounds, each pruned from the dense run",
                 "rewind_candidates": "the rewind step is chosen among them by measurement"}


def check_settings(values: dict) -> dict:
    """`{name: value}` checked one by one, then together; returns them as kept.

    Names missing from `values` take their defaults.
    """
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise ValueError(f"Expected search settings among {sorted(BY_NAME)}. "
                         f"Received: {unknown}")
    kept = {s.name: s.checked(values.get(s.name, s.default)) for s in SETTINGS}
    check_together(values, kept)
    return kept


def check_together(values: dict, kept: dict) -> None:
    """The one rule of what excludes or needs what; `values` as given, `kept` as checked."""
    given = {s.name for s in SETTINGS if s.given(values.get(s.name), kept[s.name])}
    if "transfer" in given:
        # The masks are given: nothing decides them, and nothing else may claim to.
        for name in (s.name for s in SETTINGS if s.decides_masks):
            if name in given:
                raise ValueError(
                    f"Expected `transfer` alone to decide the masks and rounds. Received "
                    f"`{name}`={values[name]!r} with it: drop `{name}` (each transferred mask "
                    "set trains one round, nothing is pruned).")
        if "inverted" in kept["controls"]:
            raise ValueError(
                "Expected `controls` without 'inverted' with `transfer`: the inverted control "
                "negates a criterion's scores, and transferred masks have none. Received: "
                f"controls={list(kept['controls'])}")
    for setting, excluded in EXCLUSIVE.items():
        for name in excluded:
            if setting in given and name in given:
                raise ValueError(
                    f"Expected `{setting}` or `{name}`, not both: {WHY_EXCLUSIVE[setting]}. "
                    f"Received: {setting}={values[setting]!r}, {name}={values[name]!r}")
    criterion, structure, budget = kept["criterion"], kept["structure"], kept["budget"]
    if criterion.at_initialization and kept["one_shot"] is None:
        raise ValueError(
            f"Expected `one_shot` densities with criterion {criterion.name!r}: it prunes at "
            "initialization, once per density, before any training. Received: one_shot=None")
    if not is_unstructured(structure):
        if budget != "uniform":
            raise ValueError(
                f"Expected budget='uniform' with a structure: each layer (each unit group) "
                f"goes down its own ladder. Received: budget={budget!r}, "
                f"structure={values.get('structure')!r}")
        if criterion.at_initialization:
            raise ValueError(
                f"Expected a criterion scoring trained weights with a structure. Received: "
                f"criterion={criterion.name!r}, which prunes at initialization, weight by "
                f"weight, with structure={values.get('structure')!r}")


# -- what is passed on to `fit` ------------------------------------------------

# `fit` arguments the search owns, and what to use instead.
OWNED_BY_SEARCH = {
    "x": "the search's `x`", "y": "the search's `y`",
    "validation_data": "`validation_data` of the search (evaluated every `eval_every`)",
    "validation_split": "`validation_data` of the search",
    "initial_epoch": "nothing: every round trains from epoch 0",
    "verbose": "`verbose` of the search",
}


# Settings that were aliases of others, and what to write instead.
REMOVED = {
    "global_pruning": 'pass budget="global"',
    "structure_score": "pass structure=kl.Structure(kind, score=...)",
}


def fit_settings(kwargs: dict, model=None) -> dict:
    """The `fit` arguments a search passes on, checked before any work.

    A name that is neither an argument of `model.fit` (Keras' and, for a
    model class with its own `fit`, that one's) nor a setting is refused with
    the closest names, so that a typo (`prune_rate=`) does not train rounds
    of the wrong search.
    """
    accepted = _fit_arguments(model)
    for key in kwargs:
        if key in REMOVED:
            raise ValueError(f"Expected search settings or `fit` arguments. Received `{key}`="
                             f"{kwargs[key]!r}, which is no longer a setting: {REMOVED[key]}.")
        if key in OWNED_BY_SEARCH:
            raise ValueError(
                f"Expected `fit` arguments the search passes on. Received `{key}`: use "
                f"{OWNED_BY_SEARCH[key]} instead.")
        if key not in accepted:
            close = difflib.get_close_matches(key, [*BY_NAME, *accepted, "validation_data",
                                                    "test_data", "callbacks"], n=3)
            hint = f" Did you mean {' or '.join(f'`{c}`' for c in close)}?" if close else ""
            raise ValueError(
                f"Expected search settings or `fit` arguments ({', '.join(sorted(accepted))}). "
                f"Received an unknown argument `{key}`={kwargs[key]!r}.{hint}")
    for key in ("epochs", "batch_size", "steps_per_epoch"):
        if kwargs.get(key) is not None:
            checks.integer(key, kwargs[key], 1)
    return dict(kwargs)


def _fit_arguments(model) -> set:
    import keras

    names = set()
    for fit in (keras.Model.fit, getattr(type(model), "fit", None) if model else None):
        if fit is None:
            continue
        names |= {p.name for p in inspect.signature(fit).parameters.values()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names - {"self", *OWNED_BY_SEARCH}


# -- what a search keeps of its settings --------------------------------------


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Everything that decides a search's masks and records; a resume must match it.

    Built from the checked settings (`from_settings`); what each field means
    is its `Setting`'s help. Written to the run directory as `to_json()`.
    """

    rounds: int = DEFAULT_ROUNDS
    target_density: float | None = None
    prune_rates: PruneRates = PAPER_RATES
    budget: str = "uniform"
    criterion: Criterion = Criterion()
    structure: Structure | dict = Structure()
    one_shot: tuple | None = None
    transfer: tuple | None = None  # Each transferred set's density and hash (`fingerprint`).
    rewind_step: int = 0
    rewind_candidates: tuple | None = None
    stability_tolerance: float = 0.02
    stability_network: str = "dense"
    instability: bool = False
    path_points: int = 30
    path_normalization: str = "recompute"
    eval_every: int | None = None
    monitor: str = "val_loss"
    mode: str = "auto"
    test_curves: bool = False
    data_order: str = "per_training"
    seed: int = 0
    fit: dict = dataclasses.field(default_factory=dict)  # epochs, batch_size, ...

    @classmethod
    def from_settings(cls, kept: dict, transfer_fingerprint=None, fit=None):
        fields = {f.name for f in dataclasses.fields(cls)} - {"transfer", "fit", "rounds"}
        rounds = (len(transfer_fingerprint) if transfer_fingerprint
                  else kept["rounds"] or DEFAULT_ROUNDS)
        return cls(rounds=rounds, transfer=transfer_fingerprint, fit=dict(fit or {}),
                   **{name: kept[name] for name in fields})

    def to_json(self) -> dict:
        """The configuration as it reads back from a JSON file."""
        return json_roundtrip(dataclasses.asdict(self))

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

