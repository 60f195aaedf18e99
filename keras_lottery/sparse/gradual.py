"""Gradual pruning inside one `fit` (Zhu & Gupta 2017; tfmot's pruning callback)."""

from collections.abc import Mapping

import keras
import numpy as np

from keras_lottery import checks
from keras_lottery.pruning import criteria, planning
from keras_lottery.sparse.mask_updates import MaskUpdate, warn_short
from keras_lottery.sparse.schedules import as_schedule
from keras_lottery.structured import structures, unit_masks
from keras_lottery.masking.masks import get_weights


class GradualPruning(MaskUpdate):
    """Prunes a masked model as it trains, on a schedule: one training that ends sparse.

    At every step its schedule prunes at, the chosen layers are brought down
    to the schedule's sparsity (masks only shrink), the lowest-scoring
    weights first. Pruned weights are exactly zero from then on, their
    optimizer state too. See `keras_lottery.sparse.mask_updates` for exactly
    when masks update with `steps_per_execution > 1` and across a resumed
    training. The pruned layers' sparsity is added to each epoch's logs
    as `"sparsity"` (for `CSVLogger`, `TensorBoard`, ... listed after it).

    Args:
        schedule: a `ConstantSparsity` or `PolynomialDecay` (or any
            `PruningSchedule`), or `{layer name: schedule}` for a schedule
            per layer (`budget="uniform"` only; other layers not pruned).
        criterion: a criterion scored after training (`Criterion` or a name
            in `keras_lottery.criteria.AFTER_TRAINING`): `"large_final"`
            (magnitude, the default, as tfmot), `"movement"`,
            `"magnitude_increase"`, `"large_init"` (these three compare with
            the weights as training began, or `initial_weights`), `"random"`.
        budget: `"uniform"` (each layer at the schedule's sparsity, as
            tfmot), `"global"` (one ranking across the layers) or `"erk"`.
            Defaults to "uniform".
        structure: what is pruned, as for `TicketSearch`: `"unstructured"`,
            `"neurons"`, `"filters"`, `"units"`, `"heads"`, `"2:4"`,
            `"blocks:RxC"`, a `Structure`, or `{layer name: structure}`.
            Units are pruned until the chosen layers' density is at most the
            schedule's. Defaults to "unstructured".
        layers: the masked layers to prune; defaults to all.
        initial_weights: `{path: array}` the criteria comparing with a start
            use (`keras_lottery.get_weights(model)` before training). Defaults
            to the weights as this callback's first training began; pass them
            to resume such a training in a new process.
        seed: seed of the `"random"` criterion (drawn anew at each update).
        verbose: 1 prints each update. Defaults to 0.

    Example:

        model = keras_lottery.prunable(model)
        model.compile(...)
        schedule = keras_lottery.PolynomialDecay(0.5, 0.9, begin_step=2000, end_step=8000)
        model.fit(x, y, epochs=10, callbacks=[keras_lottery.GradualPruning(schedule)])
        plain = keras_lottery.strip(model)

    Reference:
        Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of
        pruning for model compression", 2017.
    """

    def __init__(self, schedule, criterion="large_final", budget: str = "uniform",
                 structure="unstructured", layers=None, initial_weights=None, seed: int = 0,
                 verbose: int = 0):
        if isinstance(schedule, Mapping):
            if not schedule:
                raise ValueError("Expected `schedule` a schedule or a non-empty {layer name: "
                                 "schedule}. Received: {}")
            if layers is not None:
                raise ValueError("Expected `layers` None with a schedule per layer: its keys "
                                 f"are the layers. Received: layers={layers!r}")
            self.schedules = {str(k): as_schedule(f"schedule[{k!r}]", v)
                              for k, v in schedule.items()}
            layers = tuple(self.schedules)
        else:
            self.schedules = as_schedule("schedule", schedule)
        super().__init__(layers, verbose)
        self.criterion = criteria.as_criterion(criterion)
        if self.criterion.at_initialization:
            raise ValueError(
                f"Expected a criterion scored after training, among {criteria.AFTER_TRAINING}. "
                f"Received: criterion={self.criterion.name!r}; prune at initialization with "
                "`keras_lottery.prune_at_initialization` before training instead.")
        self.budget = checks.choice("budget", budget, planning.BUDGETS)
        if isinstance(schedule, Mapping) and self.budget != "uniform":
            raise ValueError(f"Expected budget='uniform' with a schedule per layer: the other "
                             f"budgets share one sparsity. Received: budget={budget!r}")
        self.structure = structures.as_structures(structure)
        self.initial_weights = None if initial_weights is None else dict(initial_weights)
        self.seed = checks.integer("seed", seed, 0)

    def _schedule_of(self, path):
        if isinstance(self.schedules, dict):
            return self.schedules[self._labels[path]]
        return self.schedules

    def _all_schedules(self):
        return list(self.schedules.values()) if isinstance(self.schedules, dict) else [
            self.schedules]

    def due(self, step):
        return any(s(step)[0] for s in self._all_schedules())

    def check_training(self, model, steps):
        names = {"large_init", "magnitude_increase", "movement"}
        if self.initial_weights is None and self.criterion.name in names:
            if self._optimizer_step(model) > 0:
                raise ValueError(
                    f"Expected `initial_weights` for criterion {self.criterion.name!r} when "
                    "training resumes (the optimizer has taken steps): the weights as training "
                    "first began, `keras_lottery.get_weights(model)` then. Received none.")
            self.initial_weights = get_weights(model)
        if self.initial_weights is not None:
            missing = sorted(set(self.paths) - set(self.initial_weights))
            if missing:
                raise ValueError(f"Expected `initial_weights` for every pruned weight. "
                                 f"Received none for {missing}")
        self.plan = None
        if not structures.is_unstructured(self.structure):
            if self.budget != "uniform":
                raise ValueError(
                    f"Expected budget='uniform' with a structure: units are pruned to the "
                    f"schedule's density across the pruned layers. Received: "
                    f"budget={self.budget!r}")
            rates = {p: (0.2 if p in self.paths else 0.0) for p in self._prunables}
            self.plan = structures.plan(model, self.structure, rates)
        if steps is not None:
            for schedule in self._all_schedules():
                last = schedule.last_pruning_step(steps)
                target = schedule.final_sparsity
                if last is None:
                    warn_short(repr(schedule), 0.0, schedule.begin_step, target, steps)
                elif schedule(last)[1] < target - 1e-9:
                    warn_short(repr(schedule), schedule(last)[1], last, target, steps)

    def new_masks(self, step, weights, masks):
        if self.criterion.name == "large_final":
            # |w| in the weights' own dtype: the same ranking as the criterion's float64
            # copy (an absolute value is exact), at half the cost, at every update.
            scores = {p: np.abs(w) for p, w in weights.items()}
        else:
            scores = criteria.after_training_scores(
                self.criterion.name, weights, self.initial_weights or weights,
                seed=self.seed * 1_000_003 + step)
        if isinstance(self.schedules, dict):
            # Each layer as its own schedule's last due step in this execution asks.
            targets = {}
            for path in self.paths:
                schedule = self._schedule_of(path)
                due = [t for t in getattr(self, "window", (step,)) if schedule(t)[0]]
                if due:
                    targets[path] = 1.0 - schedule(due[-1])[1]
            return planning.pruned_to(scores, masks, targets, "uniform", targets), None
        density = 1.0 - self.schedules(step)[1]
        if self.plan is None:
            return planning.pruned_to(scores, masks, density, self.budget), None
        return self._structured(scores, masks, density), None

    def _structured(self, scores, masks, density):
        """Units pruned until the chosen layers are at most at `density`."""
        every = {p: np.asarray(m) for p, m in masks.items()}
        others = {p: keras.ops.convert_to_numpy(self._prunables[p].mask) != 0
                  for p in self._prunables if p not in every}
        everything = {**every, **others}
        all_scores = {**scores, **{p: np.ones(m.shape) for p, m in others.items()}}
        rates = {p: (0.2 if p in every else 0.0) for p in everything}
        chosen = sum(m.size for m in every.values())
        total = sum(m.size for m in everything.values())
        kept_others = sum(int(np.count_nonzero(m)) for m in others.values())
        current = sum(int(np.count_nonzero(m)) for m in every.values()) / chosen
        if current <= density:
            return every
        gammas = None
        if self.plan.gammas:
            model = self.model
            values = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
            gammas = {group: [values[p] for p in paths]
                      for group, paths in self.plan.gammas.items()}
        target = (density * chosen + kept_others) / total
        new = unit_masks.one_shot_structured(self.plan, everything, all_scores, rates, target,
                                             gammas)
        return {p: new[p] for p in every}
