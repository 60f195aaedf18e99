"""The lottery-ticket search: train, prune by magnitude, rewind, repeat, through `model.fit`.

`TicketSearch(model, ...).run(x, y, ...)` trains the dense network (round 0),
then each round prunes the weights just trained, rewinds the survivors to θ0
(or to iteration k), and trains again with a fresh optimizer of the model's
compiled configuration. Controls (random reinitialization, random pruning)
train beside each round. Every finished training is kept (in `directory=`
on disk, else in memory), and running again resumes after it.

The jobs live in their own modules: settings (`search_config`), which masks
each round trains (`planning`), one training (`training`), what is kept
and whether it may be resumed (`run_directory`, `resume`).
"""

import dataclasses
import time
from collections.abc import Sequence

import keras
import numpy as np

from keras_lottery import planning, state
from keras_lottery.callbacks import CaptureState
from keras_lottery.conversion import prunable
from keras_lottery.evaluation import batches, evaluate
from keras_lottery.masks import apply_masks, get_masks, masked_layers, prunable_variables, rates_for
from keras_lottery.pruning import PruneRates, random_masks_like
from keras_lottery.resume import fingerprint
from keras_lottery.results import SearchResult
from keras_lottery.run_directory import MemoryDirectory, RunDirectory, SearchStore
from keras_lottery.search_config import (
    PAPER_RATES,
    SearchConfig,
    check_settings,
    fit_settings,
)
from keras_lottery.sparsity import warn_unmasked
from keras_lottery.training import REINIT_OFFSET, FreshOptimizer, Trainer, seed_for


class TicketSearch:
    """Finds winning tickets by iterative (or one-shot) magnitude pruning.

    Args:
        model: a compiled, built model with masked layers, or a Sequential or
            Functional one that `keras_lottery.prunable` converts (the search
            then works on the converted copy, `search.model`). Its weights
            are θ0, so it must not have trained (see `initial_weights`). Each
            training starts from a fresh optimizer of its compiled
            configuration. A model already pruned goes on down the ladder
            from its density.
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
        validation_data: `(x, y)` or a dataset, for the early-stop criterion.
            Its loss and every compiled metric are recorded, and with callbacks
            they are in each epoch's `logs` as `val_loss`, `val_<metric>`.
        test_data: `(x, y)` or a dataset, evaluated at the same points.
        monitor: the early-stop criterion, `"val_loss"` (the paper's) or
            `"val_<metric>"` of a compiled metric. Defaults to `"val_loss"`.
        mode: `"min"`, `"max"`, or `"auto"` (max for accuracy-like names).
        initial_weights: None (the model has not trained: its weights are θ0;
            a model whose optimizer has stepped is refused) or `"current"`
            (its current weights are θ0 on purpose: tickets of a pretrained
            network, rewound to the pretrained weights). Defaults to None.
        directory: where to keep each finished training; rerunning with the
            same directory resumes. Defaults to None (kept in memory: calling
            `run()` again resumes there).
        seed: seeds each training's data order and dropout, and the controls.
        verbose: 0 silent; 1 one line per finished training (round, kind,
            density, accuracy, time, time left); 2 also Keras' line per
            epoch. Defaults to 1.
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
                 monitor: str = "val_loss", mode: str = "auto", initial_weights=None,
                 directory=None, seed: int = 0, verbose: int = 1, **fit_kwargs):
        one_shot, controls = check_settings(
            rounds=rounds, target_density=target_density, one_shot=one_shot,
            rewind_step=rewind_step, controls=controls, eval_every=eval_every, monitor=monitor,
            mode=mode, seed=seed, verbose=verbose, initial_weights=initial_weights)
        self.model, self.compile_config = _prepared(model, initial_weights)
        if not isinstance(prune_rates, PruneRates):
            prune_rates = PruneRates(prune_rates)
        self.rates = rates_for(self.model, prune_rates)
        self.initial_masks = get_masks(self.model)
        self._check_plan(global_pruning, one_shot, target_density)
        steps = self.compile_config.get("steps_per_execution") or 1
        if eval_every and eval_every % steps:
            raise ValueError(
                f"Expected `eval_every` to be a multiple of steps_per_execution={steps}. "
                f"Received: eval_every={eval_every}"
            )
        self.callbacks = list(fit_kwargs.pop("callbacks", None) or [])
        self.config = SearchConfig(
            rounds=rounds, target_density=target_density, prune_rates=prune_rates,
            global_pruning=global_pruning, one_shot=one_shot, rewind_step=rewind_step,
            eval_every=eval_every, monitor=monitor, mode=mode, seed=seed,
            fit=fit_settings(fit_kwargs),
        )
        self.controls = controls
        self.x, self.y = x, y
        self.validation_data, self.test_data = validation_data, test_data
        self.verbose = verbose
        self.store = SearchStore(RunDirectory(directory) if directory is not None
                                 else MemoryDirectory())
        # θ0, taken before any training: every variable but the masks.
        self.theta0 = state.snapshot(self.model)
        self.rewind_state = self.theta0 if rewind_step == 0 else None
        if "random_reinit" in controls:
            self._check_fresh_initialization()
        self.optimizer = FreshOptimizer(self.model, self.compile_config)
        self._records = None  # Once opened: every finished training, in order.

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
            verbose=None, **fit_kwargs) -> SearchResult:
        """Runs (or resumes) the search; arguments override the constructor's.

        Calling it again resumes after the last finished training: with the
        same settings it trains nothing more and returns the same result.

        Args:
            x, y: training data, as for `model.fit`.
            validation_data, test_data: see the class.
            callbacks: Keras callbacks added to every training.
            verbose: see the class.
            **fit_kwargs: `epochs`, `batch_size`, ... as for `model.fit`.

        Returns:
            A `SearchResult` with one record per training, resumed ones included.
        """
        before = self.config
        self._take_run_arguments(x, y, validation_data, test_data, callbacks, verbose,
                                 fit_kwargs)
        try:
            records = self._open()
        except ValueError:
            self.config = before  # A refused change leaves the search as it was.
            raise
        trainer = Trainer(self.model, self.optimizer, self.config, (self.x, self.y),
                          self.validation_data, self.test_data, self.callbacks, self.verbose)
        progress = _Progress(self._planned_trainings(), len(records), self.verbose)
        for round_ in self._rounds(records):
            masks = self._masks_for(round_)
            if not self._has(round_, "ticket"):
                records.append(self._train_ticket(trainer, round_, masks))
                self._save(records, progress)
            for kind in self.controls if round_ > 0 else ():
                if not self._has(round_, kind):
                    records.append(self._train_control(trainer, round_, kind, masks))
                    self._save(records, progress)
        return SearchResult(list(records), self._result_config())

    def ticket(self, round: int):  # noqa: A002 - mirrors RoundRecord.round
        """The model set to round `round`'s ticket: its masks on the rewind
        weights and a fresh optimizer, ready to train. This is `search.model`;
        a later `run()` is not disturbed by what you do with it."""
        self._open(read_only=True)
        if self.rewind_state is None:
            raise ValueError("The rewind point is not known yet: run round 0 first.")
        state.restore(self.model, self.rewind_state)
        apply_masks(self.model, self.masks(round))
        self.optimizer.reset()
        return self.model

    def masks(self, round: int, kind: str = "ticket") -> dict:  # noqa: A002
        """`{path: bool array}`: the masks round `round`'s `kind` trained with."""
        if self._records is None:
            self._open(read_only=True)
        if not self._has(round, kind):
            raise KeyError(f"Round {round} has no {kind} yet.")
        return self.store.masks(round, kind)

    # -- the algorithm ------------------------------------------------------

    def _rounds(self, records):
        """The rounds to train, in order; the next is planned once the last is done."""
        yield 0
        if self.config.one_shot:
            yield from range(1, len(self.config.one_shot) + 1)
            return
        for round_ in range(1, self.config.rounds + 1):
            previous = next(r for r in records if r.round == round_ - 1 and r.kind == "ticket")
            if self.config.target_density and previous.density <= self.config.target_density:
                return
            yield round_

    def _masks_for(self, round_):
        """Round `round_`'s masks: those on file, else pruned from the last ticket."""
        if self._has(round_, "ticket"):
            return self.store.masks(round_, "ticket")
        if round_ == 0:
            return self.initial_masks
        if self.config.one_shot:
            target = self.config.one_shot[round_ - 1]
            return planning.one_shot_masks(self.store.masks(0, "ticket"), self._trained(0),
                                           self.rates, target, self.config.global_pruning)
        return planning.iterative_masks(
            self.store.masks(round_ - 1, "ticket"), self._trained(round_ - 1), self.rates,
            planning.densities(self.initial_masks), round_,
            planning.global_rate(self.rates) if self.config.global_pruning else None)

    def _train_ticket(self, trainer, round_, masks):
        start = self.theta0 if round_ == 0 else self.rewind_state
        capture = CaptureState(self.config.rewind_step) if (
            round_ == 0 and self.config.rewind_step) else None
        record = trainer.train(round_, "ticket", start, masks, extra=[capture] if capture else [])
        if capture is not None:
            if capture.captured is None:
                raise ValueError(
                    f"Expected `rewind_step` within the dense run. Received "
                    f"rewind_step={self.config.rewind_step}, but round 0 trained "
                    f"{record.iterations} iterations."
                )
            self.rewind_state = capture.captured
            self.store.write("rewind.npz", self.rewind_state)
        trained = state.snapshot(self.model)
        # Only the latest ticket is pruned from next (one-shot: round 0's).
        stale = None if self.config.one_shot or round_ == 0 else f"trained/{round_ - 1:03d}.npz"
        self.store.save_training(record, masks, {p: trained[p] for p in masks}, stale)
        return record

    def _train_control(self, trainer, round_, kind, ticket_masks):
        seed = seed_for(self.config.seed, round_, kind)
        if kind == "random_reinit":
            masks, start = ticket_masks, state.fresh_initialization(self.model, seed + REINIT_OFFSET)
        else:
            masks, start = random_masks_like(ticket_masks, seed), self.rewind_state
        record = trainer.train(round_, kind, start, masks)
        self.store.save_training(record, masks)
        return record

    # -- keeping what is done -----------------------------------------------

    def _open(self, read_only=False):
        """Opens (or resumes) the store; returns the records so far, in order.

        Opened again at every `run()`, so that changed settings are caught.
        `read_only` (for `ticket` and `masks`) neither starts a search nor
        compares the data, which a search reopened for its tickets may lack.
        """
        data = {"x": self.x, "y": self.y, "validation": self.validation_data,
                "test": self.test_data}
        first_time = self._records is None
        records = self.store.open(
            fingerprint(self.model, self.config, self.compile_config,
                        state.state_variables(self.model), data),
            self.theta0, read_only=read_only)
        self.theta0 = self.store.read("theta0.npz")
        if self.config.rewind_step == 0:
            self.rewind_state = self.theta0
        elif self.store.exists("rewind.npz"):
            self.rewind_state = self.store.read("rewind.npz")
        if records and first_time and self.verbose:
            print(f"[keras-lottery] resuming {self.store.directory.path}: "
                  f"{len(records)} trainings already done.", flush=True)
        if not read_only:
            self.store.save_result(records, self._result_config())  # Never left stale.
        self._records = records
        return records

    def _save(self, records, progress):
        self.store.save_result(records, self._result_config())
        progress.report(records[-1])

    def _has(self, round_, kind):
        return self.store.has(round_, kind)

    def _trained(self, round_):
        trained = self.store.read(f"trained/{round_:03d}.npz")
        return {p: trained[p] for p in self.initial_masks}

    def _result_config(self):
        # The backend too: the same seed gives the same numbers on one backend only.
        return {**self.config.to_json(), "backend": keras.backend.backend()}

    # -- checks, all before any training --------------------------------------

    def _take_run_arguments(self, x, y, validation_data, test_data, callbacks, verbose,
                            fit_kwargs):
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
        if verbose is not None:
            check_settings(rounds=1, target_density=None, one_shot=None, rewind_step=0,
                           controls=(), eval_every=None, monitor="val_loss", mode="auto",
                           seed=0, verbose=verbose, initial_weights=None)
            self.verbose = verbose
        if fit_kwargs:
            self.config = dataclasses.replace(
                self.config, fit={**self.config.fit, **fit_settings(fit_kwargs)})
        if self.config.eval_every and self.validation_data is None:
            raise ValueError(
                "Expected `validation_data` with `eval_every`: the early-stop "
                f"iteration needs it. Received: eval_every={self.config.eval_every}, "
                "validation_data=None"
            )
        if self.validation_data is not None:
            self._check_monitor()
        self._check_rewind_step()

    def _check_monitor(self):
        """Evaluates one batch of the validation data: it fits the model, and
        `monitor` is among the quantities recorded."""
        first = next(batches(self.validation_data, 32), None)
        if first is None:
            raise ValueError("Expected `validation_data` with at least one example. Received none.")
        try:
            names = evaluate(self.model, first[:2] if first[2] is None else first)
        except Exception as error:
            raise ValueError(
                f"Expected `validation_data` the model can be evaluated on. Received data "
                f"whose first batch fails: {type(error).__name__}: {error}"
            ) from error
        known = sorted(f"val_{name}" for name in names)
        if self.config.monitor not in known:
            raise ValueError(
                f"Expected `monitor` among the recorded quantities {known}. "
                f"Received: monitor={self.config.monitor!r}"
            )

    def _check_plan(self, global_pruning, one_shot, target_density):
        if global_pruning:
            planning.global_rate(self.rates)
        start = planning.densities(self.initial_masks)
        sizes = {p: m.size for p, m in self.initial_masks.items()}
        overall = sum(start[p] * sizes[p] for p in sizes) / sum(sizes.values())
        if one_shot:
            floor = planning.one_shot_floor(self.rates, sizes)
            if min(one_shot) <= floor:
                raise ValueError(
                    f"Expected `one_shot` densities above {floor:.4f}, the share of weights "
                    f"in layers with rate 0. Received: one_shot={one_shot!r}"
                )
            if max(one_shot) >= overall:
                raise ValueError(
                    f"Expected `one_shot` densities below the model's density, {overall:.4f}. "
                    f"Received: one_shot={one_shot!r}"
                )
        if target_density is not None and target_density >= overall:
            raise ValueError(
                f"Expected `target_density` below the model's density, {overall:.4f}. "
                f"Received: target_density={target_density!r}"
            )

    def _check_fresh_initialization(self):
        """Fails now, not rounds later, if random_reinit cannot draw new weights."""
        fresh = state.fresh_initialization(self.model, REINIT_OFFSET)
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

    def _planned_trainings(self):
        rounds = len(self.config.one_shot) if self.config.one_shot else self.config.rounds
        return 1 + rounds * (1 + len(self.controls))


class _Progress:
    """One line per finished training, with an estimate of the time left."""

    def __init__(self, planned, done, verbose):
        self.planned, self.done, self.verbose = planned, done, verbose
        self.began, self.trained = time.perf_counter(), 0

    def report(self, record):
        self.trained += 1
        if not self.verbose:
            return
        accuracy = record.early_stop.get("test_accuracy", record.final.get("test_accuracy"))
        if accuracy is None:
            accuracy = record.early_stop.get("val_accuracy", record.final.get("val_accuracy"))
        left = self.planned - self.done - self.trained
        per_training = (time.perf_counter() - self.began) / self.trained
        stop = record.early_stop_iteration
        print(
            f"[keras-lottery] round {record.round} {record.kind}: density {record.density:.2%}"
            + (f", early stop at iteration {stop}" if stop is not None else "")
            + (f", accuracy {accuracy:.4f}" if accuracy is not None else "")
            + f", {record.wall_time:.1f}s"
            + (f"; at most {left} trainings left, about {_duration(left * per_training)}"
               if left > 0 else ""),
            flush=True,
        )


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _prepared(model, initial_weights):
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
    optimizer = model.optimizer
    steps = int(keras.ops.convert_to_numpy(optimizer.iterations)) if optimizer.built else 0
    if steps and initial_weights != "current":
        raise ValueError(
            "Expected an untrained model: its weights become θ0, the weights tickets "
            f"rewind to. Received a model whose optimizer has taken {steps} steps. Build "
            "and compile a new model, or pass `initial_weights='current'` to search "
            "tickets of these (pretrained) weights on purpose."
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
        if steps:
            model.compile_from_config(config)  # Pretrained: start from a new optimizer.
    prunable_variables(model)  # Checks built masks and unique paths.
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
