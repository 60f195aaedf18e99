"""The straight line between two trained states: evaluated point by point, and its barriers.

Frankle, Dziugaite, Roy & Carbin (ICML 2020) call a start *stable* when two
copies trained from it with different noise end where the straight line
between them has no error barrier: the error along
`(1 - alpha) * a + alpha * b` never rises much above the ends'. This module
evaluates that line on a model (`evaluate_path`) and measures its barriers
(`barriers`); `search.stability` trains the copies.

Normalization statistics (BatchNormalization's moving mean and variance) are
not weights of the line: the statistics of an interpolated network's
activations are not the interpolation of the two networks' statistics (the
activations' variance shrinks between two unaligned networks), so
interpolating them measures a barrier the weights do not have. By default
(`"recompute"`) each point's statistics are measured afresh on the same
training batches, in training mode as `fit` measures them, and averaged
exactly; `"interpolate"` interpolates them like the weights instead.
"""

import keras
import numpy as np

from keras_lottery import _keras
from keras_lottery.runtime.evaluation import batches, evaluate
from keras_lottery.search import state
from keras_lottery.search.settings import best_function
from keras_lottery.search.training import check_exact_zeros

NORMALIZATION = ("recompute", "interpolate")


def alphas(points: int) -> np.ndarray:
    """`points` evenly spaced interpolation weights from 0 to 1, both ends included."""
    return np.linspace(0.0, 1.0, points)


def interpolate(a: dict, b: dict, alpha: float) -> dict:
    """`(1 - alpha) * a + alpha * b` for every floating-point entry of two
    `state.snapshot`s; other entries (random-seed states, counters) are `a`'s.

    Where both are exactly zero (pruned weights) the point is exactly zero.
    """
    point = {}
    for key, value in a.items():
        # bfloat16 (ml_dtypes) is not a numpy floating type, but a weight all the same.
        if np.issubdtype(value.dtype, np.floating) or value.dtype.name == "bfloat16":
            mixed = (1.0 - alpha) * value.astype(np.float64) + alpha * b[key].astype(np.float64)
            point[key] = mixed.astype(value.dtype)
        else:
            point[key] = value
    return point


def normalization_layers(model) -> list:
    """The BatchNormalization layers of `model`, at any depth."""
    return [layer for layer in _keras.sublayers(model)
            if isinstance(layer, keras.layers.BatchNormalization)]


def recompute_statistics(model, data, batch_size: int, max_batches: int) -> None:
    """Sets every BatchNormalization layer's moving mean and variance to the
    average of its batch statistics over the first `max_batches` batches of
    `data`, the model run in training mode (as `fit` runs it).

    The average is exact: batch `i` (from 0) enters with momentum `i / (i + 1)`.
    """
    layers = normalization_layers(model)
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    seen = 0
    try:
        for i, (x, _, _) in enumerate(batches(data, batch_size)):
            if i >= max_batches:
                break
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(keras.tree.map_structure(np.asarray, x), training=True)
            seen += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if not seen:  # A one-shot generator that `fit` has used up, say.
        raise ValueError(
            "Expected training data to recompute normalization statistics on. Received data "
            "that yields no batch (an exhausted iterator?): give arrays, a tf.data.Dataset or "
            "a keras.utils.PyDataset, or normalization='interpolate'.")


def evaluate_path(model, a: dict, b: dict, data, *, points: int = 30, masks=None,
                  normalization: str = "recompute", statistics_data=None,
                  statistics_batches: int = 10, batch_size: int = 1000) -> dict:
    """The compiled loss and every compiled metric at `points` states on the line from `a` to `b`.

    Args:
        model: the compiled model whose `state.snapshot`s `a` and `b` are.
        a, b: the two trained states.
        data: what to evaluate on (`keras_lottery.runtime.evaluation.evaluate`).
        points: evenly spaced points, both ends included. Defaults to 30.
        masks: `{path: bool array}` that must hold at every point (checked:
            pruned weights exactly zero). Defaults to None.
        normalization: `"recompute"` or `"interpolate"` (see the module).
        statistics_data: training data the statistics are recomputed on;
            needed with `"recompute"` when the model has BatchNormalization.
        statistics_batches: batches of `statistics_data` they are averaged over.
        batch_size: the batch size of both, for arrays.

    Returns:
        `{"alpha": [...], "loss": [...], <metric>: [...]}`, one entry per point.
        The model is left in state `a`.
    """
    recompute = normalization == "recompute" and bool(normalization_layers(model))
    if recompute and statistics_data is None:
        raise ValueError(
            "Expected `statistics_data` (training data) with normalization='recompute' on a "
            "model with BatchNormalization: its statistics are measured afresh at every "
            "point. Received statistics_data=None")
    curves = {"alpha": []}
    try:
        for alpha in alphas(points):
            state.restore(model, interpolate(a, b, float(alpha)))
            if recompute:
                recompute_statistics(model, statistics_data, batch_size, statistics_batches)
            if masks:
                check_exact_zeros(model, masks)
            curves["alpha"].append(float(alpha))
            for name, value in evaluate(model, data, batch_size).items():
                curves.setdefault(name, []).append(value)
    finally:
        state.restore(model, a)
    return curves


def barriers(curves: dict) -> dict:
    """`{name: barrier}` for every quantity of `evaluate_path`'s curves.

    The paper's definition: the path's worst value minus the mean of its two
    ends, in the direction of the quantity: for a loss (lower is better),
    `max(path) - mean(ends)`; for an accuracy-like metric (higher is better,
    as Keras' `EarlyStopping` guesses it), the same of the error `1 - value`,
    which is `mean(ends) - min(path)`.
    """
    found = {}
    for name, values in curves.items():
        if name == "alpha":
            continue
        values = np.asarray(values, dtype=np.float64)
        ends = (values[0] + values[-1]) / 2
        if best_function(name) is np.argmax:
            found[name] = float(ends - values.min())
        else:
            found[name] = float(values.max() - ends)
    return found


def error_quantity(names) -> str | None:
    """The accuracy-like metric whose error barrier says whether a start is
    stable (`"accuracy"` first), or None for a model without one."""
    names = [n for n in names if n not in ("alpha", "loss")]
    for name in names:
        if name in ("accuracy", "sparse_categorical_accuracy", "categorical_accuracy",
                    "binary_accuracy"):
            return name
    return next((n for n in names if "acc" in n), None)
