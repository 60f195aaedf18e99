"""The lottery-ticket search: train, prune by magnitude, rewind, repeat, through `model.fit`.

`TicketSearch(model, ...).run(x, y, ...)` trains the dense network (round 0),
then each round prunes the weights just trained, rewinds the survivors to θ0
(or to iteration k), and trains again with a fresh optimizer of the model's
compiled configuration. Controls (random reinitialization, random pruning)
train beside each round. With `directory=`, every finished training is on
disk and a rerun with the same directory resumes after it.
"""

import dataclasses
import json
import time
from collections.abc import Sequence

import keras
import numpy as np

from keras_lottery import pruning, state
from keras_lottery.callbacks import CaptureState, IterationCounter, PeriodicEvaluation, Reseed
from keras_lottery.conversion import prunable
from keras_lottery.evaluation import evaluate
from keras_lottery.masks import (
    apply_masks,
    get_masks,
    masked_layers,
    prunable_variables,
    rates_for,
)
from keras_lottery.pruning import PruneRates
from keras_lottery.results import RECORD_KINDS, RoundRecord, SearchResult
from keras_lottery.run_directory import RunDirectory
from keras_lottery.sparsity import warn_unmasked

CONTROLS = RECORD_KINDS[1:]
_REINIT_OFFSET = 1_000_003
PAPER_RATES = PruneRates(0.2, by_kind={"output": 0.1})


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Everything that decides a search's masks; a resume must match it."""

    rounds: int = 5  # Pruned rounds after the dense round 0 (iterative), at most.
    target_density: float | None = None  # Stop once overall density <= this.
    prune_rates: PruneRates = PAPER_RATES  # Rate per round, per layer.
    global_pruning: bool = False  # Rank weights across layers instead of per layer.
    one_shot: tuple | None = None  # Densities to prune straight to from the dense run.
    rewind_step: int = 0  # Iteration of the dense run survivors rewind to.
    eval_every: int | None = None  # Iterations between evaluations; None: each epoch.
    seed: int = 0  # Seeds every training (data order, dropout) and the controls.
    fit: dict = dataclasses.field(default_factory=dict)  # epochs, batch_size, ...

    def to_json(self) -> dict:
        """The configuration as it reads back from a JSON file."""
        return json_roundtrip(dataclasses.asdict(self))


class TicketSearch:
    """Finds winning tickets by iterative (or one-shot) magnitude pruning.

    Args:
        model: a compiled, built model with masked layers, or a Sequential or
            Functional one that `keras_lottery.prunable` converts (the search
            then works on the converted copy, `search.model`). Each training
            starts from a fresh optimizer: the compiled one, reset to its
            state before any step (an optimizer that already stepped is
            replaced by a new one from `model.get_compile_config()`).
        x, y: training data, as for `model.fit`; may instead go to `run`.
        rounds: pruned rounds after the dense round 0. Defaults to 5.
        target_density: stop after the round whose overall density is at or
            below this. Defaults to None (run all `rounds`).
        prune_rates: a `PruneRates` or one rate for all layers: the fraction of
            remaining weights pruned per round. Defaults to the paper's: 0.2,
            output layer 0.1.
        global_pruning: rank weights across all layers with a nonzero rate
            (which must then share one rate). Defaults to False.
        one_shot: densities to prune straight to from the dense run, one
            training each, instead of iterating. Defaults to None.
        rewind_step: rewind to the weights after this many iterations of the
            dense run (0: θ0, the initialization). Defaults to 0.
        controls: any of `"random_reinit"` (the round's masks on a fresh
            initialization) and `"random_pruning"` (random masks of the same
            per-layer densities, rewound like the ticket). Defaults to none.
        eval_every: evaluate on `validation_data` (and `test_data`) every this
            many iterations; the paper uses 100. None evaluates at each epoch
            end. Requires `validation_data`.
        validation_data: `(x, y)` or a dataset, for the early-stop criterion
            (iteration of minimum validation loss).
        test_data: `(x, y)` or a dataset, evaluated at the same points.
        directory: where to write each finished training; rerunning with the
            same directory resumes. Defaults to None (nothing written).
        seed: seeds each training's data order and dropout, and the controls.
        verbose: 0 silent, 1 Keras progress bars and a line per training,
            2 one line per epoch and per training. Defaults to 1.
        **fit_kwargs: `epochs`, `batch_size`, `callbacks`, ... as for `fit`.

    Example:

    >>> search = TicketSearch(model, x, y, rounds=3, epochs=2, batch_size=60,
    ...                       validation_data=(xv, yv), controls=["random_reinit"])
    >>> result = search.run()
    >>> print(result.summary())
    """

    def __init__(self, model, x=None, y=None, *, rounds: int = 5,
                 target_density: float | None = None,
                 prune_rates: PruneRates | float = PAPER_RATES,
                 global_pruning: bool = False, one_shot: Sequence[float] | None = None,
                 rewind_step: int = 0, controls: Sequence[str] = (),
                 eval_every: int | None = None, validation_data=None, test_data=None,
                 directory=None, seed: int = 0, verbose: int = 1, **fit_kwargs):
        self.model, self.compile_config = _prepared(model)
        if not isinstance(prune_rates, PruneRates):
            prune_rates = PruneRates(prune_rates)
        _check_int("rounds", rounds, 1)
        _check_int("rewind_step", rewind_step, 0)
        if eval_every is not None:
            _check_int("eval_every", eval_every, 1)
        if target_density is not None and not 0 < target_density < 1:
            raise ValueError(
                f"Expected `target_density` in (0, 1). Received: target_density={target_density!r}"
            )
        if one_shot is not None:
            one_shot = tuple(one_shot)
            if not one_shot or not all(isinstance(d, (int, float)) and 0 < d < 1 for d in one_shot):
                raise ValueError(
                    f"Expected `one_shot` densities in (0, 1). Received: one_shot={one_shot!r}"
                )
        controls = tuple(controls)
        unknown = [c for c in controls if c not in CONTROLS]
        if unknown:
            raise ValueError(f"Expected `controls` among {CONTROLS}. Received: {unknown}")
        self.rates = rates_for(self.model, prune_rates)
        if global_pruning:
            _global_rate(self.rates)
        if one_shot:
            sizes = {p: int(np.prod(v[0].shape)) for p, v in prunable_variables(self.model).items()}
            floor = sum(sizes[p] for p, rate in self.rates.items() if rate == 0) / sum(
                sizes.values())
            if min(one_shot) <= floor:
                raise ValueError(
                    f"Expected `one_shot` densities above {floor:.4f}, the share of weights "
                    f"in layers with rate 0. Received: one_shot={one_shot!r}"
                )
        steps = self.compile_config.get("steps_per_execution") or 1
        if eval_every and eval_every % steps:
            raise ValueError(
                f"Expected `eval_every` to be a multiple of steps_per_execution={steps}. "
                f"Received: eval_every={eval_every}"
            )
        self.callbacks = list(fit_kwargs.pop("callbacks", None) or [])
        fit_kwargs = _fit_settings(fit_kwargs)
        self.config = SearchConfig(
            rounds=rounds, target_density=target_density, prune_rates=prune_rates,
            global_pruning=global_pruning, one_shot=one_shot, rewind_step=rewind_step,
            eval_every=eval_every, seed=seed, fit=fit_kwargs,
        )
        self.controls = controls
        self.x, self.y = x, y
        self.validation_data, self.test_data = validation_data, test_data
        self.directory = RunDirectory(directory) if directory is not None else None
        self.verbose = verbose
        # θ0, taken before any training: every variable but the masks.
        self.theta0 = state.snapshot(self.model)
        self.initial_masks = get_masks(self.model)
        self.rewind_state = self.theta0 if rewind_step == 0 else None
        if "random_reinit" in controls:
            self._check_fresh_initialization()
        self._optimizer_state0 = None  # (optimizer, its values before any step)
        self._reset_optimizer()  # Builds it now, once.
        self._masks = {}  # {(round, kind): masks}
        self._trained = {}  # {round: trained state of that ticket round}

    # -- public -------------------------------------------------------------

    @classmethod
    def from_preset(cls, name: str, *, data_dir=None, limit=None, **overrides) -> "TicketSearch":
        """A search of the paper's experiment `name` (see `keras_lottery.presets`).

        Args:
            name: a preset, e.g. `"lenet_300_100_mnist"`.
            data_dir: a local copy of the data set; defaults to the
                `KERAS_LOTTERY_DATA` environment variable, then `tfds.load`.
            limit: train on the first `limit` examples only (quick runs).
            **overrides: preset fields (`learning_rate`, `rounds`, ...) and
                `TicketSearch` arguments (`controls`, `directory`, ...).

        Example:

        >>> result = TicketSearch.from_preset("lenet_300_100_mnist").run()
        """
        from keras_lottery import presets

        return presets.build_search(cls, name, data_dir=data_dir, limit=limit, **overrides)

    def run(self, x=None, y=None, *, validation_data=None, test_data=None, callbacks=None,
            **fit_kwargs) -> SearchResult:
        """Runs (or resumes) the search; arguments override the constructor's.

        Args:
            x, y: training data, as for `model.fit`.
            validation_data, test_data: see the class.
            callbacks: Keras callbacks added to every training.
            **fit_kwargs: `epochs`, `batch_size`, ... as for `model.fit`.

        Returns:
            A `SearchResult` with one record per training, resumed ones included.
        """
        if x is not None:
            self.x, self.y = x, y
        if self.x is None:
            raise ValueError(
                "Expected training data. Received none: pass `x` (and `y`) to "
                "`TicketSearch(...)` or to `run()`."
            )
        if validation_data is not None:
            self.validation_data = validation_data
        if test_data is not None:
            self.test_data = test_data
        if callbacks is not None:
            self.callbacks = list(callbacks)
        if "verbose" in fit_kwargs:
            self.verbose = fit_kwargs.pop("verbose")
        if fit_kwargs:
            fit = {**self.config.fit, **_fit_settings(fit_kwargs)}
            self.config = dataclasses.replace(self.config, fit=fit)
        if self.validation_data is not None or self.test_data is not None:
            _check_single_loss(self.model)
        if self.config.eval_every and self.validation_data is None:
            raise ValueError(
                "Expected `validation_data` with `eval_every`: the early-stop "
                f"iteration needs it. Received: eval_every={self.config.eval_every}, "
                "validation_data=None"
            )
        self._check_rewind_step()
        records = self._resume()
        done = {(r.round, r.kind) for r in records}
        for round_, masks in self._plan(records):
            if (round_, "ticket") not in done:
                records.append(self._train_ticket(round_, masks))
                self._save_result(records)
            for kind in self.controls if round_ > 0 else ():
                if (round_, kind) not in done:
                    records.append(self._train_control(round_, kind))
                    self._save_result(records)
        return SearchResult(records, self._result_config())

    def ticket(self, round: int):  # noqa: A002 - mirrors RoundRecord.round
        """The model set to round `round`'s ticket: its masks on the rewind
        weights, freshly compiled, ready to train. This is `search.model`."""
        if self.directory is not None:
            self._resume()  # θ0 and the rewind point of a saved search
        masks = self._masks_of(round, "ticket")
        if self.rewind_state is None:
            raise ValueError("The rewind point is not known yet: run round 0 first.")
        self._set(self.rewind_state, masks)
        self.model.compile_from_config(self.compile_config)
        return self.model

    # -- the plan -----------------------------------------------------------

    def _plan(self, records):
        """Yields `(round, masks)` in order; masks are computed lazily."""
        yield 0, (self._masks_of(0, "ticket") if self._exists(0, "ticket")
                  else self.initial_masks)
        if self.config.one_shot:
            for i, target in enumerate(self.config.one_shot, start=1):
                yield i, self._ticket_masks(i, lambda t=target: self._one_shot_masks(t))
            return
        for round_ in range(1, self.config.rounds + 1):
            previous = self._record_of(records, round_ - 1)
            if self.config.target_density and previous.density <= self.config.target_density:
                return
            yield round_, self._ticket_masks(round_, lambda r=round_: self._iterative_masks(r))

    def _ticket_masks(self, round_, compute):
        """Round `round_`'s masks: those already known (memory, disk), else `compute()`."""
        if (round_, "ticket") in self._masks or self._exists(round_, "ticket"):
            return self._masks_of(round_, "ticket")
        return compute()

    def _iterative_masks(self, round_):
        previous = self._masks_of(round_ - 1, "ticket")
        trained = self._trained_weights(round_ - 1)
        if self.config.global_pruning:
            return self._global_masks(trained, previous, (1 - _global_rate(self.rates)) ** round_)
        densities = {p: (1 - rate) ** round_ for p, rate in self.rates.items()}
        return pruning.magnitude_prune(
            trained, previous, pruning.rates_for_densities(previous, densities)
        )

    def _one_shot_masks(self, target):
        dense = self._masks_of(0, "ticket")
        trained = self._trained_weights(0)
        sizes = {p: m.size for p, m in dense.items()}
        if self.config.global_pruning:
            # `target` is over all prunable weights; excluded layers keep theirs.
            excluded = sum(sizes[p] for p, rate in self.rates.items() if rate == 0)
            chosen = sum(sizes.values()) - excluded
            return self._global_masks(trained, dense, (target * sum(sizes.values()) - excluded) / chosen)
        # Per-layer densities as after r rounds, r such that the overall density
        # is `target`: the per-kind ratios of the iterative search.
        densities = _densities_at(self.rates, sizes, target)
        return pruning.magnitude_prune(
            trained, dense, pruning.rates_for_densities(dense, densities)
        )

    def _global_masks(self, trained, masks, target_density):
        chosen = [p for p, rate in self.rates.items() if rate > 0]
        total = sum(masks[p].size for p in chosen)
        remaining = sum(int(masks[p].sum()) for p in chosen)
        keep = max(1, min(remaining, pruning.keep_count(total, target_density)))
        rate = (remaining - keep) / remaining
        new = pruning.global_magnitude_prune(
            {p: trained[p] for p in chosen}, {p: masks[p] for p in chosen}, rate
        )
        return {p: new.get(p, masks[p]) for p in masks}

    # -- training -----------------------------------------------------------

    def _train_ticket(self, round_, masks):
        start = self.theta0 if round_ == 0 else self.rewind_state
        capture = None
        if round_ == 0 and self.config.rewind_step > 0:
            capture = CaptureState(self.config.rewind_step)
        record = self._train(round_, "ticket", masks, start, extra=[capture] if capture else [])
        if capture is not None:
            if capture.captured is None:
                raise ValueError(
                    f"Expected `rewind_step` within the dense run. Received "
                    f"rewind_step={self.config.rewind_step}, but round 0 trained "
                    f"{record.iterations} iterations."
                )
            self.rewind_state = capture.captured
            if self.directory:
                self.directory.write_arrays("rewind.npz", self.rewind_state)
        trained = state.snapshot(self.model)
        # Only the latest ticket is pruned from next (one-shot: round 0's).
        keep = 0 if self.config.one_shot else round_
        self._trained = {r: w for r, w in self._trained.items() if r == keep}
        self._trained[round_] = {p: trained[p] for p in self.initial_masks}
        if self.directory:
            self.directory.write_arrays(f"trained/{round_:03d}.npz", trained)
        self._finish(record, masks)
        if self.directory and not self.config.one_shot and round_ > 0:
            # Only the latest ticket is pruned from next (one-shot keeps round 0).
            self.directory.remove(f"trained/{round_ - 1:03d}.npz")
        return record

    def _train_control(self, round_, kind):
        masks = self._masks_of(round_, "ticket")
        seed = _seed(self.config.seed, round_, kind)
        if kind == "random_reinit":
            # Offset from every training seed: a model built right after a
            # training (the next search in a script) would draw θ0 again.
            start = state.fresh_initialization(self.model, seed + _REINIT_OFFSET)
        else:
            masks = pruning.random_masks_like(masks, seed)
            start = self.rewind_state
        record = self._train(round_, kind, masks, start)
        self._finish(record, masks)
        return record

    def _train(self, round_, kind, masks, start, extra=()):
        self._set(start, masks)
        self._reset_optimizer()
        # Seeded twice: here for what `fit` draws up front (TensorFlow builds
        # its shuffled tf.data pipeline first), then by `Reseed` at train begin.
        seed = _seed(self.config.seed, round_, kind)
        keras.utils.set_random_seed(seed)
        if self.validation_data is not None:
            counter = PeriodicEvaluation(self.validation_data, self.test_data,
                                         every=self.config.eval_every)
        else:
            counter = IterationCounter()
        began = time.perf_counter()
        history = self.model.fit(
            self.x, self.y,
            callbacks=[Reseed(seed), counter, *extra, *self.callbacks],
            verbose=self.verbose, **self.config.fit,
        )
        final = {f"train_{k}": float(v[-1]) for k, v in history.history.items() if v}
        curves = getattr(counter, "curves", {})
        early_stop = {}
        if curves:
            final.update({k: v[-1] for k, v in curves.items() if k != "iteration"})
            best = int(np.argmin(curves["val_loss"]))
            early_stop = {k: v[best] for k, v in curves.items()}
        elif self.test_data is not None:
            scores = evaluate(self.model, self.test_data)
            final.update({f"test_{k}": v for k, v in scores.items()})
        return RoundRecord(
            round=round_, kind=kind, density=pruning.density(masks),
            layer_densities={p: float(m.mean()) for p, m in masks.items()},
            iterations=counter.iteration, final=final, early_stop=early_stop,
            curves=curves, wall_time=time.perf_counter() - began,
        )

    def _check_fresh_initialization(self):
        """Fails now, not rounds later, if random_reinit cannot draw new weights."""
        fresh = state.fresh_initialization(self.model, _REINIT_OFFSET)
        if any(np.array_equal(fresh[p], self.theta0[p]) for p in self.initial_masks):
            raise ValueError(
                "Expected random_reinit to draw new weights. Received θ0 again: the "
                "layers' initializers have fixed seeds; use unseeded initializers."
            )

    def _check_rewind_step(self):
        """With array data the dense run's length is known: check `rewind_step` fits."""
        k = self.config.rewind_step
        steps = _steps_per_epoch(self.x, self.config.fit)
        if not k or steps is None:
            return
        epochs = self.config.fit.get("epochs", 1)
        per_execution = self.compile_config.get("steps_per_execution") or 1
        if k > epochs * steps:
            raise ValueError(
                f"Expected `rewind_step` within the dense run of {epochs * steps} "
                f"iterations. Received: rewind_step={k}"
            )
        ends = {e * steps + min(j, steps) for e in range(epochs)
                for j in range(per_execution, steps + per_execution, per_execution)}
        if k not in ends:
            raise ValueError(
                f"Expected `rewind_step` at the end of an execution of "
                f"steps_per_execution={per_execution} steps ({steps} steps an epoch). "
                f"Received: rewind_step={k}; the nearest are "
                f"{sorted(ends, key=lambda e: abs(e - k))[:2]}"
            )

    def _reset_optimizer(self):
        """Puts the optimizer back to its state before any step: a fresh optimizer.

        Assigning the initial values (step count, moments, learning rate)
        instead of compiling a new optimizer keeps the compiled train step, so
        the whole search traces it once rather than once per round.
        """
        optimizer = self.model.optimizer
        if self._optimizer_state0 is None or self._optimizer_state0[0] is not optimizer:
            if not optimizer.built:
                optimizer.build(self.model.trainable_variables)
            initial = [np.array(keras.ops.convert_to_numpy(v)) for v in optimizer.variables]
            self._optimizer_state0 = (optimizer, initial)
        for variable, value in zip(optimizer.variables, self._optimizer_state0[1]):
            variable.assign(value)

    def _set(self, start, masks):
        state.restore(self.model, start)
        apply_masks(self.model, masks)

    def _finish(self, record, masks):
        self._masks[(record.round, record.kind)] = masks
        if self.directory:
            name = f"rounds/{record.round:03d}_{record.kind}"
            self.directory.write_arrays(f"{name}_masks.npz", masks)
            self.directory.write_json(f"{name}.json", dataclasses.asdict(record))
        if self.verbose:
            stop = record.early_stop_iteration
            accuracy = record.early_stop.get("test_accuracy", record.final.get("test_accuracy"))
            print(
                f"[keras-lottery] round {record.round} {record.kind}: density "
                f"{record.density:.2%}"
                + (f", early stop at iteration {stop}" if stop is not None else "")
                + (f", test accuracy {accuracy:.4f}" if accuracy is not None else "")
                + f", {record.wall_time:.1f}s"
            )

    # -- persistence --------------------------------------------------------

    def _resume(self):
        if self.directory is None:
            return []
        fingerprint = json_roundtrip({
            "config": self.config.to_json(),
            "weights": {p: list(v[0].shape) for p, v in prunable_variables(self.model).items()},
        })
        if not self.directory.exists("search.json"):
            # θ0 first: search.json marks a complete start.
            self.directory.write_arrays("theta0.npz", self.theta0)
            self.directory.write_json("search.json", fingerprint)
            return []
        saved = self.directory.read_json("search.json")
        if saved != fingerprint:
            differences = sorted(
                key for key in set(saved["config"]) | set(fingerprint["config"])
                if saved["config"].get(key) != fingerprint["config"].get(key)
            ) or ["weights"]
            raise ValueError(
                f"Expected the configuration saved in {self.directory.path} to resume. "
                f"Received a different one (differs in {differences}): use a new "
                "directory, or the same settings."
            )
        self.theta0 = self.directory.read_arrays("theta0.npz")
        if self.config.rewind_step == 0:
            self.rewind_state = self.theta0
        elif self.directory.exists("rewind.npz"):
            self.rewind_state = self.directory.read_arrays("rewind.npz")
        records = [RoundRecord(**self.directory.read_json(f"rounds/{name}"))
                   for name in self.directory.list("rounds", ".json")]
        records.sort(key=lambda r: (r.round, RECORD_KINDS.index(r.kind)))
        if records and self.verbose:
            print(f"[keras-lottery] resuming {self.directory.path}: "
                  f"{len(records)} trainings already done.")
        return records

    def _exists(self, round_, kind):
        return self.directory is not None and self.directory.exists(
            f"rounds/{round_:03d}_{kind}.json")

    def _masks_of(self, round_, kind):
        if (round_, kind) not in self._masks:
            if not self._exists(round_, kind):
                raise KeyError(f"Round {round_} has no {kind} yet.")
            self._masks[(round_, kind)] = self.directory.read_arrays(
                f"rounds/{round_:03d}_{kind}_masks.npz")
        return self._masks[(round_, kind)]

    def _trained_weights(self, round_):
        if round_ not in self._trained:
            trained = self.directory.read_arrays(f"trained/{round_:03d}.npz")
            self._trained[round_] = {p: trained[p] for p in prunable_variables(self.model)}
        return self._trained[round_]

    def _record_of(self, records, round_):
        return next(r for r in records if r.round == round_ and r.kind == "ticket")

    def _result_config(self):
        # The backend too: the same seed gives the same numbers on one backend only.
        return {**self.config.to_json(), "backend": keras.backend.backend()}

    def _save_result(self, records):
        if self.directory:
            self.directory.write_json("result.json", {
                "config": self._result_config(),
                "records": [dataclasses.asdict(r) for r in records],
            })


def _prepared(model):
    """The masked, compiled, built model to search, and its compile config."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"Expected a Keras model. Received: {type(model).__name__}")
    if not model.built:
        raise ValueError(
            "Expected a built model. Received an unbuilt one: give it an `Input` "
            "or call it on a batch, so θ0 exists before training."
        )
    config = model.get_compile_config()
    if not config:
        raise ValueError(
            "Expected a compiled model. Received an uncompiled one: call "
            "`model.compile(optimizer, loss, metrics)` first; each round "
            "trains with a fresh optimizer of that configuration."
        )
    if not masked_layers(model):
        try:
            model = prunable(model)  # Warns of layers it leaves unmasked.
        except ValueError as error:
            raise ValueError(
                f"Expected a model with prunable layers. Received none that can be "
                f"converted: {error}"
            ) from None
        model.compile_from_config(config)
        if not masked_layers(model):
            raise ValueError(
                "Expected a model with prunable layers (those with a twin in "
                "`keras_lottery.layers.MASKED_TWINS`). Received a model with none."
            )
    else:
        warn_unmasked(model)
    prunable_variables(model)  # Checks built masks and unique paths.
    optimizer = model.optimizer
    if optimizer.built and int(keras.ops.convert_to_numpy(optimizer.iterations)):
        model.compile_from_config(config)  # Already trained: start from a new one.
    return model, config


def _steps_per_epoch(x, fit):
    """Optimizer steps per epoch of `fit(x, ...)`, or None when the data does not say."""
    if fit.get("steps_per_epoch"):
        return fit["steps_per_epoch"]
    if isinstance(x, keras.utils.PyDataset):
        return len(x)
    if hasattr(x, "shape") and hasattr(x, "__len__"):  # numpy and backend arrays
        return -(-len(x) // (fit.get("batch_size") or 32))
    return None


def _densities_at(rates, sizes, target):
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


def _fit_settings(kwargs):
    """The `fit` arguments a search passes on; the ones it owns are refused."""
    owned = {
        "x": "the search's `x`", "y": "the search's `y`",
        "validation_data": "`validation_data` of the search (evaluated every `eval_every`)",
        "validation_split": "`validation_data` of the search",
        "initial_epoch": "nothing: every round trains from epoch 0",
    }
    for key in kwargs:
        if key in owned:
            raise ValueError(
                f"Expected `fit` arguments the search passes on. Received `{key}`: use "
                f"{owned[key]} instead."
            )
    return dict(kwargs)


def _check_single_loss(model):
    """Evaluation computes one loss on one output, as the paper's classifiers have."""
    loss = model.loss
    outputs = getattr(model, "outputs", None) or [None]  # None: a subclassed model
    if len(outputs) != 1 or isinstance(loss, (list, tuple, dict)):
        raise ValueError(
            "Expected a single-output model with one loss for `validation_data` and "
            f"`test_data`. Received {len(outputs)} outputs and loss={loss!r}."
        )


def _global_rate(rates):
    chosen = {rate for rate in rates.values() if rate > 0}
    if len(chosen) != 1:
        raise ValueError(
            "Expected one nonzero rate for global pruning (0 excludes a layer). "
            f"Received rates {sorted(set(rates.values()))}"
        )
    return chosen.pop()


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Expected `{name}` an integer >= {minimum}. Received: {name}={value!r}")


def _seed(seed, round_, kind):
    return int(seed) * 7919 + round_ * len(RECORD_KINDS) + RECORD_KINDS.index(kind)


def json_roundtrip(data):
    """`data` as it reads back from a JSON file."""
    return json.loads(json.dumps(data, default=repr))
