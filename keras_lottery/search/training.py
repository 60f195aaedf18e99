"""One training of a search: a start state, masks, a fresh optimizer, `model.fit`, a record.

Every training of a search (ticket rounds and controls alike) goes through
`Trainer.train`, so they differ only in where they start and which masks
they carry. The optimizer is reset to its state before any step rather than
compiled anew, so the train step is traced once per search.
"""

import time

import keras
import numpy as np

from keras_lottery.pruning import rules as pruning
from keras_lottery.runtime import speed

from keras_lottery.search import state
from keras_lottery.search.callbacks import IterationCounter, PeriodicEvaluation, Reseed
from keras_lottery.masking.masks import apply_masks, get_masks, get_weights
from keras_lottery.search.results import RECORD_KINDS, RoundRecord

# Random reinitializations are drawn this far from every training seed: a
# model built right after a training (the next search in a script) would
# otherwise draw θ0 again.
REINIT_OFFSET = 1_000_003


# `data_order="shared"`: every seed's round reads the batches this seed's
# round reads with "per_round" (0, so that seed 0's search is the same under both).
SHARED_ORDER_SEED = 0

# The first three kinds' seeds are those every earlier release drew (and the
# published results used); the ablations added later draw from their own range.
_FIRST_KINDS = 3
ABLATION_OFFSET = 5_000_011


def seed_for(seed: int, round_: int, kind: str) -> int:
    """The seed of one training: distinct per round and kind, fixed by `seed`."""
    index = RECORD_KINDS.index(kind)
    if index < _FIRST_KINDS:
        return int(seed) * 7919 + round_ * _FIRST_KINDS + index
    later = len(RECORD_KINDS) - _FIRST_KINDS
    return ABLATION_OFFSET + int(seed) * 7919 + round_ * later + index - _FIRST_KINDS


class FreshOptimizer:
    """Puts a model's optimizer back to its state before any step.

    Assigning the initial values (step count, moments, learning rate)
    instead of compiling a new optimizer keeps the compiled train step. If
    the model was compiled again since (a new optimizer object) and that one
    has stepped, a new one is compiled from `compile_config`.
    """

    def __init__(self, model, compile_config):
        self.model, self.compile_config = model, compile_config
        self._optimizer, self._initial = None, None
        self.reset()  # Builds it now, once.

    def reset(self):
        optimizer = self.model.optimizer
        if optimizer is not self._optimizer:
            if optimizer.built and int(keras.ops.convert_to_numpy(optimizer.iterations)):
                self.model.compile_from_config(self.compile_config)
                optimizer = self.model.optimizer
            if not optimizer.built:
                optimizer.build(self.model.trainable_variables)
            self._optimizer = optimizer
            self._initial = [np.array(keras.ops.convert_to_numpy(v)) for v in optimizer.variables]
        for variable, value in zip(optimizer.variables, self._initial):
            variable.assign(value)


class Trainer:
    """Trains `model` from a start state with given masks and records what happened.

    Args:
        model: the compiled masked model.
        optimizer: its `FreshOptimizer`.
        config: the `SearchConfig` (seed, eval_every, monitor, fit settings).
        data: `(x, y)` for `fit`.
        validation_data, test_data: evaluated every `eval_every` iterations.
        callbacks: the user's Keras callbacks, given every training.
        verbose: 2 shows Keras' line per epoch; less shows nothing of `fit`.
    """

    def __init__(self, model, optimizer, config, data, validation_data=None, test_data=None,
                 callbacks=(), verbose=1):
        self.model, self.optimizer, self.config = model, optimizer, config
        self.x, self.y = data
        self.validation_data, self.test_data = validation_data, test_data
        self.callbacks, self.verbose = list(callbacks), verbose

    def train(self, round_, kind, start, masks, extra=(), seed=None) -> RoundRecord:
        """One training from `start` (a `state.snapshot`) with `masks`; `seed`
        (data order, dropout) defaults to the round's and kind's (`data_seed`)."""
        state.restore(self.model, start)
        apply_masks(self.model, masks)
        self.optimizer.reset()
        # Seeded twice: here for what `fit` draws up front (TensorFlow builds
        # its shuffled tf.data pipeline first), then by `Reseed` at train begin.
        seed = self.data_seed(round_, kind) if seed is None else seed
        keras.utils.set_random_seed(seed)
        counter = self.counter()
        speed.create_gradients(self.model)
        began = time.perf_counter()
        history = self.model.fit(
            self.x, self.y, callbacks=[Reseed(seed), counter, *extra, *self.callbacks],
            verbose=2 if self.verbose == 2 else 0, **self.config.fit,
        )
        check_exact_zeros(self.model, masks)
        # The compiled loss and metrics only, not what a callback put in the
        # logs (ReduceLROnPlateau's learning_rate).
        trained = set(self.model.get_metrics_result())
        final = {f"train_{k}": float(v[-1]) for k, v in history.history.items()
                 if v and k in trained}
        return self.record(round_, kind, masks, self.model, counter, final, began)

    def data_seed(self, round_, kind) -> int:
        """The seed a training's `fit` is seeded with: its own (`seed_for`);
        with `data_order="per_round"` its round's ticket's; with `"shared"`
        seed 0's round's ticket's, whatever the search's seed. It decides the
        data order, and on torch an unseeded Dropout's draws; other dropout
        draws come from the start's seed-generator states."""
        order = self.config.data_order
        if order == "shared":
            return seed_for(SHARED_ORDER_SEED, round_, "ticket")
        return seed_for(self.config.seed, round_, "ticket" if order == "per_round" else kind)

    def counter(self, counting=IterationCounter, evaluating=PeriodicEvaluation, **kwargs):
        """The callback that counts iterations and, with validation data,
        evaluates every `eval_every` of them (`counting`, `evaluating`: those
        classes or subclasses of them)."""
        if self.validation_data is None:
            return counting(**kwargs)
        # Only with callbacks of the user's does it also evaluate at epoch ends.
        return evaluating(
            self.validation_data, self.test_data, every=self.config.eval_every,
            epoch_logs=bool(self.callbacks), test_curves=self.config.test_curves,
            monitor=self.config.monitor, mode=self.config.mode, **kwargs)

    def record(self, round_, kind, masks, model, counter, final, began) -> RoundRecord:
        """The record of a training of `model` that `counter` followed; `final`
        holds its training loss and metrics (`train_<name>`), `began` the
        `time.perf_counter()` its time is counted from."""
        final = dict(final)
        curves = getattr(counter, "curves", {})
        early_stop = {}
        if curves:
            final.update({k: v[-1] for k, v in curves.items() if k != "iteration"})
            # `preflight.check_monitor` made sure, before any training, that it is there.
            best = int(self.config.best(curves[self.config.monitor]))
            early_stop = {k: v[best] for k, v in curves.items()}
            # Without test curves: the test set at the kept early-stop and final states.
            tested = counter.test_at_points(model)
            final.update(tested.get("final", {}))
            early_stop.update(tested.get("early_stop", {}))
        elif self.test_data is not None:
            from keras_lottery.runtime.evaluation import evaluate

            final.update({f"test_{k}": v for k, v in evaluate(model, self.test_data).items()})
        return RoundRecord(
            round=round_, kind=kind, density=pruning.density(masks),
            layer_densities={p: float(m.mean()) for p, m in masks.items()},
            iterations=counter.iteration, final=final, early_stop=early_stop,
            # Training and every evaluation, the test set's after `fit` included.
            curves=curves, wall_time=time.perf_counter() - began,
        )


def check_exact_zeros(model, masks) -> None:
    """Fails if a pruned weight came back during training.

    With the masks applied wherever the layer reads its weights this never
    happens; a layer of your own that reads a weight another way (through
    `self.weights`, or a reference kept from `build`) would train it.
    """
    weights = get_weights(model)
    current = get_masks(model)
    for path, mask in masks.items():
        if not np.isfinite(weights[path]).all():
            # NaN times a zero mask is NaN: not a mask bypassed, a diverged training.
            raise RuntimeError(
                f"Expected finite weights after training. Received non-finite values in "
                f"{path!r}: the training diverged. Lower the learning rate, or check the loss "
                "(a loss on probabilities after a layer without softmax: from_logits=True)."
            )
        moved = int(np.count_nonzero(weights[path][~mask]))
        if moved or not np.array_equal(current[path], mask):
            raise RuntimeError(
                f"Expected pruned weights to stay exactly zero in training. Received "
                f"{moved} nonzero pruned entries in {path!r}: its layer reads the weight "
                "without the mask (see docs/layers.md, 'Your own layers'), or a callback "
                "changed the masks."
            )
