"""Callbacks the search trains with: periodic evaluation and a state capture.

Both count *iterations* (optimizer steps) across epochs, as the paper does,
and reach the model through `self.model`, which on JAX syncs the variables
that live outside the model during `fit`.
"""

import keras

from keras_lottery import state
from keras_lottery.evaluation import evaluate


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
    [...], "test_loss": [...], ...}`, one entry per evaluation point, with the
    model's compiled loss and metrics (test entries only with `test_data`).
    With `epoch_logs=True` it also puts the `val_*` and `test_*` values at each
    epoch's end into that epoch's `logs`, where callbacks after it
    (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, CSVLogger,
    TensorBoard) find them under Keras' names. An epoch end between two
    points of the `every` grid is evaluated for the logs only: the curves stay
    on the grid, with or without callbacks.

    Args:
        validation_data: data for `keras_lottery.evaluation.evaluate`.
        test_data: optional second data set, evaluated at the same points.
        every: iterations between evaluations; None evaluates at each
            epoch end. Defaults to None.
        batch_size: batch size for array data. Defaults to 1000.
        epoch_logs: fill each epoch's logs. Defaults to True.
    """

    def __init__(self, validation_data, test_data=None, every=None, batch_size=1000,
                 epoch_logs=True):
        super().__init__()
        self.sets = {"val": validation_data}
        if test_data is not None:
            self.sets["test"] = test_data
        self.every = every
        self.batch_size = batch_size
        self.epoch_logs = epoch_logs

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.curves = {"iteration": []}
        self._latest = (None, {})  # (iteration, {name: value}) of the last evaluation.

    def on_train_batch_end(self, batch, logs=None):
        before = self.iteration
        super().on_train_batch_end(batch, logs)
        if self.every and self.iteration // self.every > before // self.every:
            self._record()

    def on_epoch_end(self, epoch, logs=None):
        if not self.every:
            self._record()
        if self.epoch_logs and logs is not None:
            logs.update(self._evaluated())

    def on_train_end(self, logs=None):
        if not self.curves["iteration"] or self.curves["iteration"][-1] != self.iteration:
            self._record()

    def _evaluated(self):
        """The evaluation at the current iteration, reused if there is one."""
        iteration, values = self._latest
        if iteration != self.iteration:
            model = self.model  # Syncs the variables on JAX.
            values = {f"{name}_{metric}": value for name, data in self.sets.items()
                      for metric, value in evaluate(model, data, self.batch_size).items()}
            self._latest = (self.iteration, values)
        return values

    def _record(self):
        self.curves["iteration"].append(self.iteration)
        for key, value in self._evaluated().items():
            self.curves.setdefault(key, []).append(value)


class CaptureState(IterationCounter):
    """Snapshots the model state (`keras_lottery.state`) after `step` iterations.

    `step=0` captures before the first update. `captured` holds the snapshot,
    or None if training ended first.
    """

    def __init__(self, step: int):
        super().__init__()
        self.step = step
        self.captured = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.captured = state.snapshot(self.model) if self.step == 0 else None

    def on_train_batch_end(self, batch, logs=None):
        self._previous = self.iteration
        super().on_train_batch_end(batch, logs)
        if self.captured is None and self.iteration >= self.step:
            if self.iteration != self.step:
                raise ValueError(
                    "Expected `rewind_step` at the end of an execution of "
                    f"steps_per_execution steps. Received rewind_step={self.step}, "
                    f"but training went from iteration {self._previous} to "
                    f"{self.iteration} in one execution."
                )
            self.captured = state.snapshot(self.model)
