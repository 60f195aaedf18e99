"""Callbacks the search trains with: periodic evaluation and a state capture.

Both count *iterations* (optimizer steps) across epochs, as the paper does,
and reach the model through `self.model`, which on JAX syncs the variables
that live outside the model during `fit`.
"""

import keras
import numpy as np

from keras_lottery.search import state
from keras_lottery.runtime.evaluation import EVALUATION_BATCH, evaluate
from keras_lottery.search.settings import best_function


class Reseed(keras.callbacks.Callback):
    """Seeds Python, NumPy, TensorFlow, torch and Keras as training begins.

    Seeding here rather than before `fit` matters: a model's first `fit`
    draws one extra data permutation while it builds its metrics (JAX,
    torch), so seeding only before `fit` would give its first training
    another data order than any later one. Their order is drawn after this
    point; TensorFlow's is drawn before `fit` starts, so seed there too.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_train_begin(self, logs=None):
        keras.utils.set_random_seed(self.seed)


class IterationCounter(keras.callbacks.Callback):
    """Keeps `iteration`: the optimizer steps taken since `on_train_begin`."""

    def on_train_begin(self, logs=None):
        self.iteration = 0
        self._epoch_start = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.iteration

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the index of the last step of the execution that just
        # ran, as if it were full: with steps_per_execution > 1 the epoch's
        # last execution may be shorter, so cap at the epoch's known length.
        steps = (self.params or {}).get("steps") or batch + 1
        self.iteration = self._epoch_start + min(batch + 1, steps)


class PeriodicEvaluation(IterationCounter):
    """Evaluates every `every` iterations (or each epoch end) and at the end.

    Records `curves`: `{"iteration": [...], "val_loss": [...], "val_<metric>":
    [...]}`, one entry per evaluation point, with the model's compiled loss
    and metrics; with `test_curves=True` also `"test_loss"`, ... at every point.

    The test set is otherwise needed only where the paper reports it: at the
    early-stop point (the best `monitor` value) and at the end. Rather than
    evaluating it everywhere, the model's state is kept (a copy in memory,
    cheap next to an evaluation) at each new best point and at the end, and
    `test_at_points()` evaluates the test set on those two after training.

    With `epoch_logs=True` it also puts the `val_*` and `test_*` values at each
    epoch's end into that epoch's `logs`, where callbacks after it
    (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, CSVLogger,
    TensorBoard) find them under Keras' names. An epoch end between two
    points of the `every` grid is evaluated for the logs only: the curves stay
    on the grid, with or without callbacks.

    Args:
        validation_data: data for `keras_lottery.runtime.evaluation.evaluate`.
        test_data: optional second data set.
        every: iterations between evaluations; None evaluates at each
            epoch end. Defaults to None.
        batch_size: batch size for array data. Defaults to 1000.
        epoch_logs: fill each epoch's logs. Defaults to True.
        test_curves: evaluate `test_data` at every point too. Defaults to False.
        monitor: the quantity whose best point is kept. Defaults to "val_loss".
        mode: `"min"`, `"max"` or `"auto"` (max for accuracy-like names), as
            for the search. Defaults to "auto".
    """

    def __init__(self, validation_data, test_data=None, every=None,
                 batch_size=EVALUATION_BATCH, epoch_logs=True, test_curves=False,
                 monitor="val_loss", mode="auto"):
        super().__init__()
        self.sets = {"val": validation_data}
        if test_data is not None:
            self.sets["test"] = test_data
        self.every = every
        self.batch_size = batch_size
        self.epoch_logs = epoch_logs
        self.test_curves = test_curves
        self.monitor, self.best = monitor, best_function(monitor, mode)

    @property
    def _kept(self):
        """Whether states are kept for `test_at_points` (else test is in the curves)."""
        return "test" in self.sets and not self.test_curves

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.curves = {"iteration": []}
        self._latest = {}  # set -> (iteration, {name: value}) of its last evaluation.
        self.states = {}  # "early_stop" / "final" -> (iteration, state.snapshot).

    def on_train_batch_end(self, batch, logs=None):
        before = self.iteration
        super().on_train_batch_end(batch, logs)
        if self.every and self.iteration // self.every > before // self.every:
            self._record()

    def on_epoch_end(self, epoch, logs=None):
        if not self.every:
            self._record()
        if self.epoch_logs and logs is not None:
            logs.update(self._evaluated(tuple(self.sets)))

    def on_train_end(self, logs=None):
        if not self.curves["iteration"] or self.curves["iteration"][-1] != self.iteration:
            self._record()
        if self._kept:
            self.states["final"] = (self.iteration, state.snapshot(self.model))

    def test_at_points(self, model) -> dict:
        """`{"final": {"test_loss": ...}, "early_stop": {...}}` from the kept states.

        Call after `fit`; the model's state is put back as it was.
        """
        if not self._kept or "final" not in self.states:
            return {}
        current = state.snapshot(model)
        found, evaluated = {}, []  # evaluated: (state, values) already measured.
        try:
            for point, (_, kept) in self.states.items():
                # The best point is often the last: the same state, measured once.
                same = next((values for other, values in evaluated if _equal(other, kept)), None)
                if same is None:
                    state.restore(model, kept)
                    same = {f"test_{k}": v
                            for k, v in evaluate(model, self.sets["test"], self.batch_size).items()}
                    evaluated.append((kept, same))
                found[point] = same
        finally:
            state.restore(model, current)
        return found

    def _evaluated(self, names):
        """The evaluation of sets `names` at the current iteration, reused if there is one."""
        values = {}
        for name in names:
            iteration, found = self._latest.get(name, (None, {}))
            if iteration != self.iteration:
                model = self.model  # Syncs the variables on JAX.
                found = {f"{name}_{metric}": value for metric, value
                         in evaluate(model, self.sets[name], self.batch_size).items()}
                self._latest[name] = (self.iteration, found)
            values.update(found)
        return values

    def _record(self):
        names = tuple(self.sets) if not self._kept else ("val",)
        self.curves["iteration"].append(self.iteration)
        for key, value in self._evaluated(names).items():
            self.curves.setdefault(key, []).append(value)
        curve = self.curves.get(self.monitor)
        # The same choice as the record's early stop (first best; NaN as
        # numpy's argmin/argmax treat it), made as the curve grows.
        if self._kept and curve and int(self.best(curve)) == len(curve) - 1:
            self.states["early_stop"] = (self.iteration, state.snapshot(self.model))


def _equal(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


class CaptureState(IterationCounter):
    """Snapshots the model state (`keras_lottery.search.state`) after `steps` iterations.

    `steps` is one iteration or several (rewind candidates); 0 captures before
    the first update. `captured` holds `{step: snapshot}` of those reached
    (`name` is the setting that asked for them, for the error). `stop` ends
    the training once every step is captured.
    """

    def __init__(self, steps, name: str = "rewind_step", stop: bool = False):
        super().__init__()
        self.stop = stop
        self.steps = sorted({int(s) for s in (steps if hasattr(steps, "__iter__") else [steps])})
        self.name = name
        self.captured = {}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.captured = {0: state.snapshot(self.model)} if 0 in self.steps else {}

    def on_train_batch_end(self, batch, logs=None):
        previous = self.iteration
        super().on_train_batch_end(batch, logs)
        for step in self.steps:
            if step in self.captured or not previous < step <= self.iteration:
                continue
            if self.iteration != step:
                raise ValueError(
                    f"Expected `{self.name}` at the end of an execution of "
                    f"steps_per_execution steps. Received {self.name}={step}, "
                    f"but training went from iteration {previous} to "
                    f"{self.iteration} in one execution."
                )
            self.captured[step] = state.snapshot(self.model)
        if self.stop and not self.missing():
            self.model.stop_training = True

    def missing(self) -> list:
        """The steps training ended before."""
        return [s for s in self.steps if s not in self.captured]
