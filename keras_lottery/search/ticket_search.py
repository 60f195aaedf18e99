"""The lottery-ticket search: train, prune by magnitude, rewind, repeat, through `model.fit`.

`TicketSearch(model, ...).run(x, y, ...)` trains the dense network (round 0),
then each round prunes the weights just trained, rewinds the survivors to θ0
(or to iteration k), and trains again with a fresh optimizer of the model's
compiled configuration. Another criterion (`keras_lottery.criteria`) may
choose the weights, among them pruning at initialization (SNIP, GraSP,
SynFlow, one-shot). Controls (random reinitialization, random pruning, the
inverted criterion, signed-constant reinitialization) train beside each
round. Every finished training is kept (in `directory=`
on disk, else in memory), and running again resumes after it.

The jobs live in their own modules: the settings, each declared once with
its check (`settings`), the checks that need the model or the data
(`preflight`), which masks each round trains (`pruning.planning`), one
training (`training`), what is kept and whether it may be resumed
(`run_directory`, `resume`), what is printed (`progress`).
"""

import contextlib
import dataclasses
from collections.abc import Sequence

import keras

from keras_lottery.pruning import criteria, planning, saliency

from keras_lottery.runtime import distribution

from keras_lottery.search import stability, state
from keras_lottery.structured import unit_masks as structured_pruning, structures
from keras_lottery.search import preflight as checks
from keras_lottery.search import transfer as mask_transfer
from keras_lottery.search.callbacks import CaptureState
from keras_lottery.search.export import write_model_config
from keras_lottery.search.joint import NEEDS as JOINT_NEEDS, SAVED, JointTrainer, serve_jointly
from keras_lottery.masking.masks import apply_masks, get_masks, rates_for
from keras_lottery.search.progress import Progress
from keras_lottery.pruning.rules import PruneRates, random_masks_like
from keras_lottery.search.resume import fingerprint
from keras_lottery.search.results import SearchResult
from keras_lottery.search.run_directory import (
    REWIND_CHOICE,
    MemoryDirectory,
    RunDirectory,
    SearchStore,
    candidate_name,
    candidate_state_name,
    instability_records,
    masks_name,
    rewind_choice,
    stability_name,
    trained_name,
)
from keras_lottery.search import settings
from keras_lottery.search.settings import PAPER_RATES, SearchConfig
from keras_lottery.search.training import REINIT_OFFSET, FreshOptimizer, Trainer, seed_for


class TicketSearch:
    """Finds winning tickets by iterative (or one-shot) magnitude pruning, or another criterion.

    Args:
        model: a compiled, built model with masked layers, or a Sequential or
            Functional one that `keras_lottery.prunable` converts (the search
            then works on the converted copy, `search.model`). Its weights
            are θ0, so it must not have trained (see `initial_weights`). Each
            training starts from a fresh optimizer of its compiled
            configuration. A model already pruned goes on down the ladder
            from its density.
        x, y: training data, as for `model.fit`; may instead go to `run`.
        rounds: pruned rounds after the dense round 0. Defaults to 5 (with
            `transfer`, which it may not be given with: one per mask set).
        target_density: stop after the round whose overall density is at or
            below this. Defaults to None (run all `rounds`).
        prune_rates: a `PruneRates` or one rate for all layers: the fraction of
            remaining weights pruned per round. Defaults to the paper's: 0.2,
            output layer 0.1.
        budget: how layers share a density: `"uniform"` (each layer at its
            own rate, the paper's), `"global"` (one ranking across the layers
            with a nonzero rate) or `"erk"` (Erdős-Rényi-Kernel layer
            densities); the last two take one nonzero rate for the network.
            Defaults to `"uniform"`.
        criterion: which weights a round keeps, a name or a
            `keras_lottery.pruning.criteria.Criterion`: after training `"large_final"`
            (the paper's, the default), `"large_init"`, `"magnitude_increase"`,
            `"movement"`, `"random"`; at initialization (with `one_shot`)
            `"snip"`, `"grasp"`, `"synflow"`, scored on the rewind weights
            (θ0) before any pruned training.
        one_shot: densities to prune straight to from the dense run, one
            training each, instead of iterating. Defaults to None.
        transfer: masks found on another task (a `{path: array}` dict, or a
            list of them, e.g. another search's `masks(round)`), one round
            each after the dense round, trained from this search's rewind
            weights instead of pruning (so without `rounds`, `prune_rates`,
            `budget`, `one_shot`, `target_density` or a criterion). A set may
            leave out weights (a new head): those keep the model's masks.
            `random_pruning` then compares against random masks of each
            set's per-layer densities. See `keras_lottery.transfer`.
            Defaults to None.
        structure: what a round prunes: `"unstructured"` (single weights,
            the paper's, the default); whole units a shrunk model loses
            (`keras_lottery.shrink`): `"neurons"` of Dense layers, `"filters"`
            of convolutions, `"units"` (both), attention `"heads"`; or a
            pattern kept in each kernel: `"2:4"` (any N:M along the inputs)
            or `"blocks:4x4"` (inputs x outputs). A `keras_lottery.Structure`,
            or `{layer name: structure}` to choose per layer (the others:
            unstructured). A unit's removal also prunes its inputs in every
            layer that reads it (across residual additions: a group), so the
            masked model computes exactly what the shrunk one does. Layers
            the structure does not cover, or whose units feed the outputs,
            are pruned weight by weight at their rates. Takes the uniform
            budget and a criterion that scores trained weights; not with
            `transfer`. See `keras_lottery.Structure`.
        rewind_step: rewind to the weights after this many iterations of the
            dense run (0: θ0, the initialization). Defaults to 0.
        rewind_candidates: instead of `rewind_step`, iterations of the dense
            run to choose the rewind step among, by measurement: from each,
            two copies train with different noise (see
            `keras_lottery.instability`), and the search rewinds to the
            earliest whose instability is at most `stability_tolerance` (if
            none is, the least unstable, said in the progress output). Every
            candidate is measured (two trainings each); the choice and the
            measurements are kept with the run (`result.rewind_choice`).
            Defaults to None.
        stability_tolerance: the instability (error barrier, as a fraction;
            the loss barrier for a model without an accuracy metric) at or
            below which a candidate is stable. Defaults to 0.02.
        stability_network: what the candidates are measured on: `"dense"`
            (the dense network) or `"pruned"` (the first pruned round's masks).
            Defaults to "dense".
        instability: measure each round's ticket's instability (round 0: the
            dense network's): a second copy trained from the round's start
            with other noise, and the line between it and the round's own
            training evaluated on `test_data` (else `validation_data`). One
            more training per round; kept with the run (`result.instability`),
            resumable, and may be turned on when resuming a finished search.
            Defaults to False.
        path_points: points on the line between two copies, both ends
            included (at least 3). Defaults to 30.
        path_normalization: BatchNormalization statistics on the line:
            `"recompute"` (measured afresh at each point on training batches,
            the default) or `"interpolate"` (see docs/stability.md).
        controls: any of `"random_reinit"` (the round's masks on a fresh
            initialization), `"random_pruning"` (random masks of the same
            per-layer densities, rewound like the ticket: the ticket's mask
            shuffled within each layer), `"inverted"` (the round's pruning
            with the criterion's scores negated) and `"signed_constant"` (the
            ticket's masks, each kept weight set to the sign of its rewind
            value times its layer's standard deviation). Defaults to none.
        data_order: `"per_training"` (each training draws its own data
            order from the seed, its round and its kind: the default),
            `"per_round"` (a round's controls read its ticket's batches in
            its order: a paired comparison, and what lets `joint` train
            them as one) or `"shared"` (as `"per_round"`, and every seed's
            round reads the same batches, those of seed 0's: seeds then
            differ only in their starts and masks, and `run_together` trains
            their rounds as one). Starts, masks and reinitializations stay
            each one's own.
        joint: train each pruned round's ticket and controls side by side
            as one compiled program (`keras_lottery.search.joint`): with
            `data_order` `"per_round"` or `"shared"`, a model Keras can
            copy, no callbacks of your own and no `instability`. Every
            number is what one training at a time gives; where they cannot
            share a program (or do not fit in memory together), they train
            one at a time, said once.
            Defaults to False.
        eval_every: evaluate on `validation_data` (and `test_data`) every this
            many iterations; the paper uses 100. None evaluates at each epoch
            end. Requires `validation_data`.
        validation_data: `(x, y)` or a dataset, for the early-stop criterion.
            Its loss and every compiled metric are recorded, and with callbacks
            they are in each epoch's `logs` as `val_loss`, `val_<metric>`.
        test_data: `(x, y)` or a dataset, evaluated where the paper reports
            it: at the early-stop point and at the end of each training (the
            state at the best validation point is kept in memory for it).
        test_curves: evaluate `test_data` at every point too, for test
            curves (the paper's Figure 1); with MNIST's 5,000 validation and
            10,000 test images that triples the evaluation work. The
            early-stop and final values are the same either way. Defaults
            to False.
        monitor: the early-stop criterion, `"val_loss"` (the paper's) or
            `"val_<metric>"` of a compiled metric. Defaults to `"val_loss"`.
        mode: `"min"`, `"max"`, or `"auto"` (max for accuracy-like names).
        initial_weights: None (the model has not trained: its weights are θ0;
            a model whose optimizer has stepped is refused) or `"current"`
            (its current weights are θ0 on purpose: tickets of a pretrained
            network, rewound to the pretrained weights). Defaults to None.
        vocabulary: the `keras_lottery.data.text.Vocabulary` of text data (the
            presets pass it): kept with the run, so that resuming on a text of
            another vocabulary is refused, naming the characters that differ.
            Defaults to None.
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

    def __init__(self, model, x=None, y=None, *, rounds: int | None = None,
                 target_density: float | None = None,
                 prune_rates: PruneRates | float = PAPER_RATES, budget: str = "uniform",
                 criterion="large_final", one_shot: Sequence[float] | None = None,
                 transfer=None, structure="unstructured", rewind_step: int = 0,
                 rewind_candidates: Sequence[int] | None = None,
                 stability_tolerance: float = 0.02, stability_network: str = "dense",
                 instability: bool = False, path_points: int = 30,
                 path_normalization: str = "recompute", controls: Sequence[str] = (),
                 data_order: str = "per_training", joint: bool = False,
                 eval_every: int | None = None,
                 validation_data=None, test_data=None, monitor: str = "val_loss",
                 mode: str = "auto", test_curves: bool = False, initial_weights=None,
                 vocabulary=None, directory=None, seed: int = 0, verbose: int = 1,
                 **fit_kwargs):
        # Every setting is declared, with its check, in `settings.SETTINGS`.
        given = dict(
            rounds=rounds, target_density=target_density, prune_rates=prune_rates,
            budget=budget, criterion=criterion, one_shot=one_shot, transfer=transfer,
            structure=structure, rewind_step=rewind_step,
            rewind_candidates=rewind_candidates, stability_tolerance=stability_tolerance,
            stability_network=stability_network, instability=instability,
            path_points=path_points, path_normalization=path_normalization, controls=controls,
            data_order=data_order, joint=joint, eval_every=eval_every, monitor=monitor,
            mode=mode, test_curves=test_curves,
            initial_weights=initial_weights, vocabulary=vocabulary, directory=directory,
            seed=seed, verbose=verbose)
        kept = settings.check_settings(given)
        fit = settings.fit_settings(fit_kwargs, model)  # A typo is refused before any work.
        distribution.check_supported()
        self.model, self.compile_config = checks.prepared_model(model, initial_weights)
        self.rates = rates_for(self.model, kept["prune_rates"])
        self.initial_masks = get_masks(self.model)
        checks.check_plan(self.rates, self.initial_masks, kept["budget"], kept["one_shot"],
                          kept["target_density"])
        # Which weights each structure prunes, checked against the model before any work.
        self.structure_plan = None if structures.is_unstructured(kept["structure"]) else (
            structures.plan(self.model, kept["structure"], self.rates))
        if self.structure_plan is not None:
            checks.check_structured_plan(self.structure_plan, self.rates, self.initial_masks,
                                         kept["one_shot"], kept["target_density"])
        # Each set completed with the model's own masks where it says nothing.
        self.transfer = (mask_transfer.full_mask_sets(kept["transfer"], self.initial_masks)
                         if kept["transfer"] is not None else None)
        checks.check_eval_every(kept["eval_every"], self.compile_config)
        self.callbacks = list(fit.pop("callbacks", None) or [])
        self.config = SearchConfig.from_settings(
            kept, mask_transfer.fingerprint(self.transfer) if self.transfer else None, fit)
        controls, directory = kept["controls"], kept["directory"]
        self.controls = controls
        self.joint = kept["joint"]
        # Why this run's rounds train one at a time: None until asked, "" if they need not.
        self._joint_refusal = None
        self.vocabulary = kept["vocabulary"]
        self.x, self.y = x, y
        self.validation_data, self.test_data = validation_data, test_data
        self.verbose = kept["verbose"]
        self.store = SearchStore(RunDirectory(directory) if directory is not None
                                 else MemoryDirectory())
        # θ0, taken before any training: every variable but the masks.
        self.theta0 = state.snapshot(self.model)
        self.rewind_state = self.theta0 if self._rewinds_to_theta0() else None
        if "random_reinit" in controls:
            checks.check_fresh_initialization(self.model, self.theta0, self.initial_masks)
        self.optimizer = FreshOptimizer(self.model, self.compile_config)
        self._records = None  # Once opened: every finished training, in order.
        # Called once `run` has accepted its arguments, before any training.
        self._when_accepted = None
        self._joint = None  # While a run goes: its `JointTrainer`, if offered any.

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
        # One process at a time per directory (with several JAX processes, the first).
        claim = (self.store.directory.claimed() if distribution.process_index() == 0
                 else contextlib.nullcontext())
        with claim:
            return self._run(x, y, validation_data, test_data, callbacks, verbose, fit_kwargs)

    def _run(self, x, y, validation_data, test_data, callbacks, verbose, fit_kwargs):
        before = self._take(x, y, validation_data, test_data, callbacks, verbose, fit_kwargs)
        try:
            steps = self._start()
        except ValueError:  # A resume of other settings leaves the search as it was.
            self._untake(before)
            raise
        answer = None
        try:
            while True:
                try:
                    offer = steps.send(answer)
                except StopIteration as done:
                    return done.value
                answer = None if offer is SAVED else serve_jointly([offer])[0]
        finally:  # Interrupted: its programs go now, not when collected.
            steps.close()

    def _take(self, x, y, validation_data, test_data, callbacks, verbose, fit_kwargs):
        """Takes `run`'s arguments, refusing bad ones before any work (and
        leaving the search as it was)."""
        before = {name: getattr(self, name) for name in self._RUN_ARGUMENTS}
        try:
            self._take_run_arguments(x, y, validation_data, test_data, callbacks, verbose,
                                     fit_kwargs)
        except ValueError:
            self._untake(before)
            raise
        return before

    def _untake(self, before):
        for name, value in before.items():
            setattr(self, name, value)

    def _start(self, together=False, accepted=True):
        """Opens the run directory (refusing a resume of other settings
        before any work), then returns the search's trainings as a
        generator. Where trainings may train as one program it yields
        `(joint, round_, [(kind, start, masks)])` and is sent back what
        `serve_jointly` answers; once it has saved what it was sent, it
        yields `SAVED` and is sent None; it returns the `SearchResult`.
        `together`: its searches train beside others' (`run_together`), so a
        lone training (a dense round, a ticket without controls) is offered
        too. `accepted`: tell `_when_accepted` now (else the caller does)."""
        records = self._open()
        trainer = Trainer(self.model, self.optimizer, self.config, (self.x, self.y),
                          self.validation_data, self.test_data, self.callbacks, self.verbose)
        progress = Progress(self._planned_trainings(), len(records), self.verbose)
        self._joint = (JointTrainer(trainer, self.compile_config) if self.joint or together
                       else None)
        # Asked again each run: its callbacks and data may differ from the last.
        self._joint_refusal = None
        if accepted and self._when_accepted is not None:  # The CLI keeps its command now.
            self._when_accepted()
        return self._trainings(trainer, records, progress, 1 if together else 2)

    def _trainings(self, trainer, records, progress, fewest):
        """The search's trainings in order (see `_start`); `fewest`: how many
        trainings a round needs to be offered as one program."""

        def keep(record):
            records.append(record)
            self._save(records, progress)

        joint = self._joint
        try:
            for round_ in self._rounds(records):
                masks = self._masks_for(round_)
                pending = self._offerable(round_)
                if "ticket" in pending and self._trains_jointly(pending, fewest):
                    # The ticket with its controls; each saved as it would be alone.
                    yield from self._train_jointly(trainer, round_, masks, pending, keep)
                    continue
                if not self._has(round_, "ticket"):
                    keep(self._train_ticket(trainer, round_, masks))
                if round_ == 0 and self.config.rewind_candidates and self.rewind_state is None:
                    self._choose_rewind(trainer)
                    self._save(records, None)
                if self.config.instability:
                    self._measure_round(trainer, round_, masks)
                    self._save(records, None)
                pending = [kind for kind in self.controls if round_ > 0
                           and not self._has(round_, kind)]
                if self._trains_jointly(pending, fewest):
                    yield from self._train_jointly(trainer, round_, masks, pending, keep)
                    continue
                for kind in pending:
                    keep(self._train_control(trainer, round_, kind, masks))
            return self._result(records)
        finally:  # Its programs (copies, slots, compiled steps) go with the run.
            if joint is not None:
                joint.release()
            if self._joint is joint:  # Not a later run's.
                self._joint = None

    def _offerable(self, round_) -> list:
        """The trainings of round `round_` still to train that may be offered
        as one program: a pruned round's ticket and controls, or the dense
        round's ticket where nothing is captured along it."""
        if round_ == 0:
            plain = not (self.config.rewind_step or self.config.rewind_candidates
                         or self.config.instability)
            return ["ticket"] if plain and not self._has(0, "ticket") else []
        return [kind for kind in ("ticket", *self.controls) if not self._has(round_, kind)]

    def instability(self, round: int = 0):  # noqa: A002 - mirrors RoundRecord.round
        """The instability of round `round`'s ticket: an `InstabilityRecord`.

        Measured now if it is not on file (`instability=True` measures every
        round as the search runs): the round's own training retrained from
        its start (the same seed gives the same training) and a copy with
        other noise, the line between them evaluated on `test_data` (else
        `validation_data`), kept with the run. Needs the search's data, given
        to the constructor or an earlier `run()`.
        """
        claim = (self.store.directory.claimed() if distribution.process_index() == 0
                 else contextlib.nullcontext())
        with claim:
            self._take_run_arguments(None, None, None, None, None, None, {})
            if self.test_data is None and self.validation_data is None:
                raise ValueError(
                    "Expected `test_data` or `validation_data` (to the constructor or an "
                    "earlier `run()`): the line between two copies is evaluated on it. "
                    "Received neither.")
            self._open()
            if not self._has(round, "ticket"):
                raise ValueError(
                    f"Expected a trained round. Received round={round}, which has no ticket "
                    "record yet: run the search first.")
            trainer = Trainer(self.model, self.optimizer, self.config, (self.x, self.y),
                              None, None, self.callbacks, self.verbose)
            return self._measure_round(trainer, round, self.masks(round))

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
        if self._set_rounds():
            yield from range(1, self._set_rounds() + 1)
            return
        for round_ in range(1, self.config.rounds + 1):
            previous = next(r for r in records if r.round == round_ - 1 and r.kind == "ticket")
            if self.config.target_density and previous.density <= self.config.target_density:
                return
            yield round_

    def _masks_for(self, round_, invert=False):
        """Round `round_`'s masks: those on file, else the transferred set, else
        pruned by the criterion.

        `invert` gives the inverted control's: the criterion's scores negated,
        iterated down its own ladder (its previous round's masks and weights).
        """
        # Masks are written before the record that finishes a training: on
        # file without it (a kill, a damaged record deleted), they are reused.
        if not invert and (self._has(round_, "ticket") or self.store.exists(
                masks_name(round_))):
            return self.store.masks(round_, "ticket")
        if round_ == 0:
            return self.initial_masks
        if self.transfer is not None:
            return self.transfer[round_ - 1]
        config, criterion = self.config, self.config.criterion
        if criterion.at_initialization:
            return self._pruned_at_initialization(config.one_shot[round_ - 1], invert)
        pruned_from = 0 if config.one_shot else round_ - 1
        lineage = "inverted" if invert and pruned_from > 0 else "ticket"
        if invert and not self.store.exists(trained_name(pruned_from, lineage)):
            raise ValueError(
                f"Expected the inverted control from the first round of an iterative search. "
                f"Received controls={list(self.controls)} for a search whose round "
                f"{pruned_from} weights are gone: run it in a new directory."
            )
        start = self.theta0 if pruned_from == 0 else self.rewind_state
        scores = criteria.after_training_scores(
            criterion.name, self._trained(pruned_from, lineage),
            {p: start[p] for p in self.initial_masks},
            seed_for(config.seed, round_, "ticket"))
        if invert:
            scores = criteria.inverted(scores)
        if self.structure_plan is not None:
            return self._structured_masks(round_, pruned_from, lineage, scores, invert)
        if config.one_shot:
            return planning.one_shot_masks(self.store.masks(0, "ticket"), scores, self.rates,
                                           config.one_shot[round_ - 1], config.budget)
        return planning.iterative_masks(
            self.store.masks(pruned_from, lineage), scores, self.rates,
            planning.densities(self.initial_masks), round_, config.budget)

    def _structured_masks(self, round_, pruned_from, lineage, scores, invert):
        plan, config = self.structure_plan, self.config
        gammas = self._gammas(pruned_from, lineage)
        if invert and gammas:  # The inverted control ranks units by gamma the other way too.
            gammas = {group: [-abs(g) for g in found] for group, found in gammas.items()}
        if config.one_shot:
            return structured_pruning.one_shot_structured(
                plan, self.store.masks(0, "ticket"), scores, self.rates,
                config.one_shot[round_ - 1], gammas)
        return structured_pruning.structured_masks(
            plan, self.store.masks(pruned_from, lineage), scores, self.rates,
            planning.densities(self.initial_masks),
            structured_pruning.start_units(plan, self.initial_masks), round_, gammas)

    def _gammas(self, round_, kind):
        """`{group: [trained BatchNormalization gammas]}` for the "bn_gamma" score."""
        if not self.structure_plan.gammas:
            return None
        trained = self.store.read(trained_name(round_, kind))
        return {group: [trained[path] for path in paths]
                for group, paths in self.structure_plan.gammas.items()}

    def _kept_weights(self, masks, trained):
        """What a training keeps to prune from: of its trained state (a
        `state.snapshot`), its prunable weights (and gammas)."""
        extra = [p for paths in (self.structure_plan.gammas if self.structure_plan else {}
                                 ).values() for p in paths]
        return {p: trained[p] for p in [*masks, *extra]}

    def _pruned_at_initialization(self, density, invert):
        """SNIP, GraSP or SynFlow masks of the rewind weights (θ0) at `density`."""
        state.restore(self.model, self.rewind_state)
        return saliency.prune_at_initialization(
            self.model, self.config.criterion, density, self.rates, self._training_data(),
            self.config.budget, self.initial_masks, invert=invert)

    def _training_data(self):
        return self.x if self.y is None else (self.x, self.y)

    def _train_ticket(self, trainer, round_, masks):
        start = self.theta0 if round_ == 0 else self.rewind_state
        config = self.config
        name = "rewind_step" if config.rewind_step else "rewind_candidates"
        steps = ([config.rewind_step] if config.rewind_step
                 else [k for k in config.rewind_candidates or () if k])
        capture = CaptureState(steps, name) if round_ == 0 and steps else None
        record = trainer.train(round_, "ticket", start, masks, extra=[capture] if capture else [])
        if config.instability:  # The round's own training is the first copy.
            self._measurement(trainer).keep_copy(stability_name(round_), 1, record.iterations)
        if capture is not None:
            if capture.missing():
                raise ValueError(
                    f"Expected `{name}` within the dense run. Received {name}="
                    f"{capture.missing() if config.rewind_candidates else steps[0]}, but "
                    f"round 0 trained {record.iterations} iterations."
                )
            if config.rewind_step:
                self.rewind_state = capture.captured[config.rewind_step]
                self.store.write("rewind.npz", self.rewind_state)
            for step, captured in capture.captured.items():  # Before the round's record.
                if config.rewind_candidates:
                    self.store.write(candidate_state_name(step), captured)
        self._save_ticket(record, masks, state.snapshot(self.model))
        return record

    def _save_ticket(self, record, masks, trained):
        round_ = record.round
        # Only the latest ticket is pruned from next (one-shot: round 0's);
        # the inverted control's first round prunes from round 0's too.
        first_inverted = round_ == 1 and "inverted" in self.controls
        stale = () if self._set_rounds() or round_ == 0 or first_inverted else (
            trained_name(round_ - 1),)
        # A transfer search never prunes: it keeps no trained weights, and takes no copy.
        kept = None if self.transfer is not None else self._kept_weights(masks, trained)
        self.store.save_training(record, masks, kept, stale)

    def _train_control(self, trainer, round_, kind, ticket_masks):
        start, masks = self._control(round_, kind, ticket_masks)
        record = trainer.train(round_, kind, start, masks)
        self._save_control(record, masks, state.snapshot(self.model))
        return record

    def _control(self, round_, kind, ticket_masks):
        """`(start, masks)` of round `round_`'s control `kind`."""
        seed = seed_for(self.config.seed, round_, kind)
        masks, start = ticket_masks, self.rewind_state
        if kind in ("random_pruning", "inverted") and self.store.exists(
                masks_name(round_, kind)):
            masks = self.store.masks(round_, kind)  # A training whose record was lost.
        elif kind == "random_pruning" and self.structure_plan is not None:
            masks = structured_pruning.random_structured_like(
                self.structure_plan, ticket_masks, self.initial_masks, seed)
        elif kind == "random_pruning":
            masks = random_masks_like(ticket_masks, seed)
        elif kind == "inverted":
            masks = self._masks_for(round_, invert=True)
        if kind == "random_reinit":
            start = state.fresh_initialization(self.model, seed + REINIT_OFFSET)
        elif kind == "signed_constant":
            start = {**start, **criteria.signed_constant(masks, start)}
        return start, masks

    def _save_control(self, record, masks, trained):
        round_, kind = record.round, record.kind
        if kind == "inverted" and not self.config.one_shot:
            # Its next round prunes from these weights, as the ticket's does.
            self.store.save_training(record, masks, self._kept_weights(masks, trained),
                                     (trained_name(round_ - 1, kind if round_ > 1 else "ticket"),))
        else:
            self.store.save_training(record, masks)

    # -- trainings side by side --------------------------------------------------

    def _trains_jointly(self, kinds, fewest=2) -> bool:
        """Whether `kinds` (at least `fewest`) may train as one; the first
        time they cannot, says why, once."""
        if self._joint is None or len(kinds) < fewest:
            return False
        if self._joint_refusal is None:
            self._joint_refusal = self._joint.why_not() or ""
            if self._joint_refusal and self.verbose:
                print(f"[keras-lottery] joint: each training trains on its own: "
                      f"{self._joint_refusal}. A round trains as one with {JOINT_NEEDS}.",
                      flush=True)
        return not self._joint_refusal

    def _train_jointly(self, trainer, round_, masks, kinds, keep):
        """Round `round_`'s `kinds` offered as one program (yielded, see
        `_start`); each record then saved as its own training saves it, or
        each trained alone if `serve_jointly` answers why not (a sentence:
        said, and no round of this run is offered again) or None. A member
        answered with an error raises it once those before it are saved, as
        its training alone would have."""
        start = self.theta0 if round_ == 0 else self.rewind_state
        members = [(kind, start, masks) if kind == "ticket"
                   else (kind, *self._control(round_, kind, masks)) for kind in kinds]
        trained = yield (self._joint, round_, members)
        if not isinstance(trained, list):
            if trained is not None:
                self._joint_refusal = trained
                if self.verbose:
                    print(f"[keras-lottery] joint: {trained}; each training trains on its "
                          "own from now on.", flush=True)
            for kind in kinds:
                keep(self._train_ticket(trainer, round_, masks) if kind == "ticket"
                     else self._train_control(trainer, round_, kind, masks))
            return
        for (kind, _, member_masks), result in zip(members, trained):
            if isinstance(result, Exception):
                raise result
            record, state_after = result
            if kind == "ticket":
                self._save_ticket(record, masks, state_after)
            else:
                self._save_control(record, member_masks, state_after)
            keep(record)
        # Saved: a driver of several searches sends each its answer before
        # any goes on (`run_together`).
        yield SAVED

    # -- instability -----------------------------------------------------------

    def _measurement(self, trainer):
        evaluated_on = "test" if self.test_data is not None else "validation"
        return stability.Measurement(
            self.model, trainer, self.store,
            self.test_data if self.test_data is not None else self.validation_data,
            evaluated_on, self._training_data(), points=self.config.path_points,
            normalization=self.config.path_normalization,
            batch_size=self.config.fit.get("batch_size") or 32, verbose=self.verbose)

    def _measure_round(self, trainer, round_, masks):
        """Round `round_`'s ticket's instability, from the start it trained from."""
        return self._measurement(trainer).measure(
            stability_name(round_), round_=round_, network="ticket",
            start_iteration=0 if round_ == 0 else self._rewind_step(),
            start=self.theta0 if round_ == 0 else self.rewind_state, masks=masks,
            seeds=stability.round_seeds(trainer.data_seed(round_, "ticket"), self.config.seed,
                                        round_))

    def _choose_rewind(self, trainer):
        """Measures every rewind candidate and rewinds to the earliest stable one."""
        config, measurement = self.config, self._measurement(trainer)
        network, found = config.stability_network, []
        for step in config.rewind_candidates:
            start = self.theta0 if step == 0 else self.store.read(candidate_state_name(step))
            masks = self.initial_masks
            if network == "pruned":  # Round 1's masks (pruned at initialization: at `start`).
                self.rewind_state = start
                masks = self._masks_for(1)
                self.rewind_state = None
            found.append(measurement.measure(
                candidate_name(step, network), round_=0 if network == "dense" else 1,
                network=network, start_iteration=step, start=start, masks=masks,
                seeds=stability.candidate_seeds(config.seed, step)))
        choice = stability.choose_rewind(found, config.stability_tolerance, network)
        chosen = choice["chosen"]
        self.rewind_state = (self.theta0 if chosen == 0
                             else self.store.read(candidate_state_name(chosen)))
        self.store.write("rewind.npz", self.rewind_state)  # Before the choice that marks it.
        self.store.directory.write_json(REWIND_CHOICE, {
            **choice, "candidates": [r.start_iteration for r in found]})
        if self.verbose:
            print(f"[keras-lottery] rewind step {chosen}: the earliest candidate with an "
                  f"instability <= {config.stability_tolerance}" if choice["stable"] else
                  f"[keras-lottery] rewind step {chosen}: no candidate had an instability <= "
                  f"{config.stability_tolerance}; this one the least", flush=True)

    def _rewind_step(self) -> int:
        """The iteration rounds after the first rewind to (chosen or set)."""
        if self.config.rewind_candidates:
            return int(self.store.directory.read_json(REWIND_CHOICE)["chosen"])
        return self.config.rewind_step

    def _rewinds_to_theta0(self) -> bool:
        return self.config.rewind_step == 0 and not self.config.rewind_candidates

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
                        state.state_variables(self.model), data, self.vocabulary),
            self.theta0, read_only=read_only)
        self.theta0 = self.store.read("theta0.npz")
        if self._rewinds_to_theta0():
            self.rewind_state = self.theta0
        elif self.store.exists("rewind.npz") and (
                not self.config.rewind_candidates or self.store.exists(REWIND_CHOICE)):
            self.rewind_state = self.store.read("rewind.npz")
        if records and first_time and self.verbose:
            print(f"[keras-lottery] resuming {self.store.directory.path}: "
                  f"{len(records)} trainings already done.", flush=True)
        if not read_only:  # Never left stale.
            self.store.save_result(self._within_plan(records), self._result_config())
            # So that `export.load_ticket` rebuilds the tickets without this code.
            write_model_config(self.store.directory, self.model)
        self._records = records
        return records

    def _save(self, records, progress):
        self.store.save_result(self._within_plan(records), self._result_config())
        if progress is not None:
            progress.report(records[-1])

    def _result(self, records):
        directory = self.store.directory
        last = {r.round for r in self._within_plan(records)}
        return SearchResult(self._within_plan(records), self._result_config(),
                            [r for r in instability_records(directory) if r.round in last],
                            rewind_choice(directory))

    def _within_plan(self, records):
        """The records of the rounds these settings reach: a rerun with fewer
        rounds or a higher target keeps the others on file, not in its result."""
        last = self._set_rounds() or self.config.rounds
        if not self._set_rounds() and self.config.target_density:
            reached = [r.round for r in records if r.kind == "ticket"
                       and r.density <= self.config.target_density]
            last = min([last, *reached])
        return [r for r in records if r.round <= last]

    def _has(self, round_, kind):
        return self.store.has(round_, kind)

    def _trained(self, round_, kind="ticket"):
        trained = self.store.read(trained_name(round_, kind))
        return {p: trained[p] for p in self.initial_masks}

    def _result_config(self):
        # The backend too: the same seed gives the same numbers on one backend only.
        return {**self.config.to_json(), "backend": keras.backend.backend()}

    # -- arguments ------------------------------------------------------------

    # What `run()` may change, restored if it is refused.
    _RUN_ARGUMENTS = ("config", "x", "y", "validation_data", "test_data", "callbacks",
                      "verbose")

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
        checks.check_data("x", self.x, self.y)
        distribution.check_supported()
        distribution.check_batches(self.x, self.config.fit)
        checks.check_labels(self.model, "y", self.y)
        for name, data in (("validation_data", self.validation_data),
                           ("test_data", self.test_data)):
            if isinstance(data, (tuple, list)) and len(data) in (2, 3):
                checks.check_data(name, data[0], data[1], *data[2:])
                checks.check_labels(self.model, name, data[1])
        if callbacks is not None:
            self.callbacks = list(callbacks)
        if verbose is not None:
            self.verbose = settings.BY_NAME["verbose"].checked(verbose)
        if fit_kwargs:
            self.config = dataclasses.replace(
                self.config, fit={**self.config.fit, **settings.fit_settings(fit_kwargs,
                                                                             self.model)})
        if self.config.eval_every and self.validation_data is None:
            raise ValueError(
                "Expected `validation_data` with `eval_every`: the early-stop "
                f"iteration needs it. Received: eval_every={self.config.eval_every}, "
                "validation_data=None"
            )
        if self.validation_data is not None:
            checks.check_monitor(self.model, self.validation_data, self.config.monitor)
        elif self.config.monitor != "val_loss":
            raise ValueError(
                "Expected `validation_data` with `monitor`: the early-stop criterion is "
                f"measured on it. Received: monitor={self.config.monitor!r}, "
                "validation_data=None"
            )
        if self.config.criterion.needs_data:  # Its batch, read now rather than after round 0.
            saliency.scoring_batch(self._training_data(), self.config.criterion)
        checks.check_rewind_step(self.config.rewind_step, self.x, self.config.fit,
                                 self.compile_config)
        for step in self.config.rewind_candidates or ():
            checks.check_rewind_step(step, self.x, self.config.fit, self.compile_config,
                                     "rewind_candidates")
        if (self.config.instability or self.config.rewind_candidates) and (
                self.test_data is None and self.validation_data is None):
            raise ValueError(
                "Expected `test_data` or `validation_data` with `instability` or "
                "`rewind_candidates`: the line between two copies is evaluated on it. "
                "Received neither.")

    def _planned_trainings(self):
        rounds = self._set_rounds() or self.config.rounds
        return 1 + rounds * (1 + len(self.controls))

    def _set_rounds(self):
        """The number of rounds fixed in advance (one-shot densities, each pruned
        from the dense run; transferred mask sets); None when iterating."""
        fixed = self.config.one_shot or self.config.transfer
        return len(fixed) if fixed else None
