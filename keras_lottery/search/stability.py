"""The instability analysis: two copies from one start, and the barrier between them.

Frankle, Dziugaite, Roy & Carbin (ICML 2020, "Linear Mode Connectivity and
the Lottery Ticket Hypothesis"): train two copies of a network from the same
start with different SGD noise (data order, dropout) and otherwise the same
settings, and evaluate the straight line between the two trained states
(`search.linear_path`). The start is *stable* when the error barrier on that
line is about zero; iterative magnitude pruning finds matching subnetworks
only from rewind points where the sparse network is stable.

`instability()` measures any compiled model (dense or masked) from its
current weights or from iteration k of a training; `TicketSearch` uses the
same `Measurement` for each round's ticket (`instability=True`) and to
choose its rewind step among `rewind_candidates`. A `Measurement` keeps each
trained copy on file until the line is evaluated, so a run killed between
the copies loses only the training in flight.
"""

import dataclasses
import time

import keras
import numpy as np

from keras_lottery import checks
from keras_lottery.masking.masks import apply_masks, get_masks
from keras_lottery.pruning.rules import density
from keras_lottery.search import linear_path, state
from keras_lottery.search import preflight
from keras_lottery.search.callbacks import CaptureState
from keras_lottery.search.results import InstabilityRecord
from keras_lottery.search.run_directory import MemoryDirectory, SearchStore, read_instability
from keras_lottery.search.settings import NORMALIZATION, SearchConfig, fit_settings
from keras_lottery.search.training import FreshOptimizer, Trainer

# The second copy's noise is drawn this far from every training seed of a search.
STABILITY_OFFSET = 7_000_003
CANDIDATE_OFFSET = 8_000_009
_ITERATIONS = "__iterations__"  # Kept with a copy's state on file.


def round_seeds(own: int, seed: int, round_: int) -> tuple:
    """A round's copies: the round's own training (seeded with `own`), and
    one with other noise, drawn from the search's `seed`."""
    return int(own), STABILITY_OFFSET + int(seed) * 7919 + round_


def candidate_seeds(seed: int, step: int) -> tuple:
    """The two copies trained from rewind candidate `step`."""
    base = CANDIDATE_OFFSET + int(seed) * 104_729 + 2 * int(step)
    return base, base + 1


class Measurement:
    """Trains two copies from a start and evaluates the line between them.

    Args:
        model: the compiled model (its masks are set per measurement).
        trainer: a `training.Trainer` of the model: every copy trains as a
            round of the search trains (fit settings, callbacks), only its
            seed differs.
        store: a `SearchStore`, where copies and records are kept.
        data: what the line is evaluated on; `evaluated_on` names it.
        statistics_data: training data for recomputed normalization statistics.
        points, normalization: see `linear_path.evaluate_path`.
        batch_size: the batch size statistics are measured with.
        verbose: 1 prints a line per measurement.
    """

    def __init__(self, model, trainer, store, data, evaluated_on, statistics_data, *,
                 points=30, normalization="recompute", batch_size=32, verbose=0):
        self.model, self.trainer, self.store = model, trainer, store
        self.data, self.evaluated_on = data, evaluated_on
        self.statistics_data, self.batch_size = statistics_data, batch_size
        self.points, self.normalization, self.verbose = points, normalization, verbose

    def done(self, name: str) -> bool:
        return self.store.exists(f"{name}.json")

    def read(self, name: str) -> InstabilityRecord:
        return read_instability(self.store.directory, f"{name}.json")

    def keep_copy(self, name: str, index: int, iterations: int) -> None:
        """Keeps the model's current state as copy `index` (1 or 2) of `name`."""
        self.store.write(f"{name}_copy{index}.npz",
                         {**state.snapshot(self.model), _ITERATIONS: np.array(iterations)})

    def measure(self, name, *, round_, network, start_iteration, start, masks,
                seeds) -> InstabilityRecord:
        """The record of `name` (`stability/...`): read if finished, else measured.

        Copies already on file (`keep_copy`, or a run killed after one) are
        not trained again.
        """
        if self.done(name):
            return self.read(name)
        began = time.perf_counter()
        copies, iterations = [], []
        for index, seed in enumerate(seeds, 1):
            file = f"{name}_copy{index}.npz"
            if not self.store.exists(file):
                # The second copy also draws other dropout: the snapshot holds the
                # layers' random generators, which a seed set for `fit` leaves alone.
                origin = start if index == 1 else reseeded(start, seed)
                record = self.trainer.train(round_, "ticket", origin, masks, seed=seed)
                self.keep_copy(name, index, record.iterations)
            kept = dict(self.store.read(file))
            iterations.append(int(kept.pop(_ITERATIONS)))
            copies.append(kept)
        apply_masks(self.model, masks)  # Both copies on file: the model may hold others.
        curves = linear_path.evaluate_path(
            self.model, copies[0], copies[1], self.data, points=self.points, masks=masks,
            normalization=self.normalization, statistics_data=self.statistics_data,
            batch_size=self.batch_size)
        found = linear_path.barriers(curves)
        quantity = linear_path.error_quantity(curves)
        record = InstabilityRecord(
            round=round_, start_iteration=int(start_iteration), network=network,
            density=_density(masks), seeds=[int(s) for s in seeds],
            iterations=iterations, normalization=self.normalization,
            evaluated_on=self.evaluated_on, curves=curves, barriers=found,
            error_quantity=quantity, instability=found[quantity or "loss"],
            wall_time=time.perf_counter() - began)
        write_record(self.store.directory, f"{name}.json", record)
        for index in (1, 2):  # The line is measured: the copies are no longer needed.
            self.store.directory.remove(f"{name}_copy{index}.npz")
        if self.verbose:
            barrier = ("error" if quantity else "loss") + f" barrier {record.instability:.4f}"
            print(f"[keras-lottery] instability from iteration {start_iteration} "
                  f"({network}, density {record.density:.2%}): {barrier}, loss barrier "
                  f"{found['loss']:.4f} ({self.points} points, {record.wall_time:.1f}s)",
                  flush=True)
        return record


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 80 else f"{type(value).__name__} of length {len(value)}"


def reseeded(start: dict, seed: int) -> dict:
    """`start` with every random generator's state (dropout's, ...) drawn from `seed`."""
    out = dict(start)
    generators = sorted(k for k in start if "seed_generator" in k)
    for index, key in enumerate(generators):
        old = start[key]
        fresh = np.zeros(old.shape, old.dtype).reshape(-1)
        fresh[0] = (int(seed) * 1_000_003 + 7_919 * index + 1) % 2**31
        out[key] = fresh.reshape(old.shape)
    return out


def _density(masks) -> float:
    return float(density(masks)) if masks else 1.0


def write_record(directory, name, record: InstabilityRecord) -> None:
    directory.write_json(name, dataclasses.asdict(record))


def choose_rewind(records, tolerance: float, network: str) -> dict:
    """The earliest stable candidate (instability <= `tolerance`); if none is,
    the least unstable (the earliest of equals), said by `"stable": False`."""
    stable = [r for r in records if r.stable(tolerance)]
    chosen = (min(stable, key=lambda r: r.start_iteration) if stable
              else min(records, key=lambda r: (r.instability, r.start_iteration)))
    return {"chosen": chosen.start_iteration, "stable": bool(stable),
            "tolerance": tolerance, "network": network, "candidates": list(records)}


def instability(model, x=None, y=None, *, data, seeds=(1, 2), points: int = 30,
                rewind_step: int = 0, seed: int = 0, normalization: str = "recompute",
                callbacks=None, verbose: int = 0, **fit_kwargs) -> InstabilityRecord:
    """The instability of training `model` from its current weights (or from
    iteration `rewind_step` of a training from them).

    Trains two copies from the start, each with a fresh optimizer of the
    model's compiled configuration and the same `fit` settings, differing only
    in their noise seed (data order, dropout); from iteration k too, a copy
    trains all of `fit`'s epochs with its optimizer and learning-rate schedule
    restarted (the paper continues for the remaining T - k iterations with
    the schedule where it was); then evaluates the loss and
    every compiled metric at `points` evenly spaced states on the straight
    line between the two trained states, both ends included, and returns the
    barriers (the worst point minus the mean of the ends). Masks hold along
    the line: the model's masks (`keras_lottery.prunable`) are applied to
    both copies and pruned weights are exactly zero at every point.

    Args:
        model: a compiled, built model, masked or not. Its current weights
            are the start (θ0 for a model that has not trained).
        x, y: training data, as for `model.fit`.
        data: `(x, y)` or a dataset the line is evaluated on (test data).
        seeds: the two copies' noise seeds; they must differ. Defaults to (1, 2).
        points: points on the line, at least 3. Defaults to 30.
        rewind_step: first train this many iterations from the current
            weights (seeded by `seed`) and start the copies there: the
            instability at iteration k. Defaults to 0.
        seed: the seed of that first training. Defaults to 0.
        normalization: BatchNormalization statistics along the line:
            `"recompute"` (measured afresh at each point on 10 training
            batches) or `"interpolate"`. Defaults to "recompute".
        callbacks: Keras callbacks given to every training.
        verbose: 0 silent, 1 a line when done, 2 also Keras' line per epoch.
        **fit_kwargs: `epochs`, `batch_size`, ... as for `model.fit`.

    Returns:
        An `InstabilityRecord`: `.curves` (the line), `.barriers`,
        `.error_barrier`, `.loss_barrier`, `.instability`, `.stable(tolerance)`.
        The model is left at its start weights.

    Example:

    >>> found = kl.instability(model, x, y, data=(x_test, y_test), epochs=2,
    ...                        batch_size=60)
    >>> found.error_barrier, found.stable()
    """
    if not isinstance(model, keras.Model) or not model.get_compile_config():
        raise ValueError(f"Expected a compiled Keras model. Received: {model!r}")
    points = checks.integer("points", points, 3)
    seeds = checks.integers("seeds", seeds, 0)
    if len(seeds) != 2 or seeds[0] == seeds[1]:
        raise ValueError(
            "Expected `seeds` two different noise seeds: copies trained with the same noise "
            f"end in the same place, with nothing to compare. Received: seeds={list(seeds)}")
    rewind_step = checks.integer("rewind_step", rewind_step, 0)
    seed = checks.integer("seed", seed, 0)
    normalization = checks.choice("normalization", normalization, NORMALIZATION)
    verbose = checks.verbose(verbose)
    fit = fit_settings(fit_kwargs, model)
    if x is None:
        raise ValueError("Expected training data `x` (and `y`). Received: x=None")
    preflight.check_data("x", x, y)
    if isinstance(data, (tuple, list)) and len(data) in (2, 3):
        preflight.check_data("data", *data)
    elif data is None or isinstance(data, (tuple, list, np.ndarray)):
        raise ValueError(
            "Expected `data` (what the line is evaluated on) as (x, y), (x, y, sample_weight), "
            f"a tf.data.Dataset or a keras.utils.PyDataset. Received: data={_short(data)}")
    compile_config = model.get_compile_config()
    preflight.check_rewind_step(rewind_step, x, fit, compile_config)
    masks = get_masks(model)
    start = state.snapshot(model)
    optimizer = FreshOptimizer(model, compile_config)
    trainer = Trainer(model, optimizer, SearchConfig(seed=seed, fit=fit),
                      (x, y), callbacks=list(callbacks or []), verbose=verbose)
    try:
        origin = start
        if rewind_step:
            capture = CaptureState(rewind_step, stop=True)  # Only up to step k.
            trainer.train(0, "ticket", start, masks, extra=[capture], seed=seed)
            if capture.missing():
                raise ValueError(f"Expected `rewind_step` within the training. Received "
                                 f"rewind_step={rewind_step}, which it ended before.")
            origin = capture.captured[rewind_step]
        measurement = Measurement(
            model, trainer, SearchStore(MemoryDirectory()), data, "data",
            (x, y) if y is not None else x, points=points, normalization=normalization,
            batch_size=fit.get("batch_size") or 32, verbose=verbose)
        return measurement.measure(
            "stability/start", round_=0, network="dense" if _density(masks) == 1 else "pruned",
            start_iteration=rewind_step, start=origin, masks=masks, seeds=seeds)
    finally:
        state.restore(model, start)
        optimizer.reset()
