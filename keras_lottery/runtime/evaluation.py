"""A model's compiled loss and metrics on held-out data, outside `model.evaluate`.

`model.evaluate` resets the metrics `fit` is accumulating, so it cannot run
every N iterations in the middle of an epoch. `evaluate` here computes what it
would (the compiled loss with the regularization losses, and every compiled
metric under Keras' names) from `predict_on_batch`, and puts the running
metrics back as they were.
"""

import keras
import numpy as np

from keras_lottery.runtime.distribution import predict_on_batch, scope_of, unscaled_loss


# Predictions kept before the loss and metrics are computed on all of them
# at once: one call per evaluation instead of one per batch (the per-call
# cost dominated on TensorFlow and PyTorch) with memory bounded for large
# outputs (a language model's logits): labels, predictions (and inputs, for
# a model whose own loss reads them) of at most this many values at once.
_PENDING_ELEMENTS = 1 << 24


# The batch size of a search's evaluations of array data.
EVALUATION_BATCH = 1000


def evaluate(model, data, batch_size: int = EVALUATION_BATCH) -> dict[str, float]:
    """`{"loss": ..., <metric name>: ...}` of `model` on `data`, as `model.evaluate` gives.

    Args:
        model: a compiled model: any loss (logits or probabilities, binary,
            multi-label, regression, several outputs) and any compiled metrics.
        data: `(x, y)` or `(x, y, sample_weight)` arrays, a `tf.data.Dataset`,
            a `keras.utils.PyDataset` or any iterable of such batches (a
            torch `DataLoader`).
        batch_size: batch size used to split arrays. Defaults to `1000`.

    Returns:
        The loss (averaged over examples as `model.evaluate` does) and every
        compiled metric, keyed by Keras' names (`"accuracy"`, `"mae"`, ...).
        The loss is computed over many batches at once: a loss that sums
        over its batch (`reduction="sum"`) rather than averaging sums over
        those batches together, and differs from `model.evaluate`'s, which
        sums batch by batch.
    """
    # In a tf.distribute strategy's scope, as `fit` and `evaluate` run: Keras
    # scales losses by the replicas in sync there.
    with scope_of(model):
        return _evaluate(model, data, batch_size)


def _evaluate(model, data, batch_size):
    saved = [np.array(keras.ops.convert_to_numpy(v)) for v in model.metrics_variables]
    # Only a model of your own that overrides these reads `x` there; the
    # inputs are gathered for it alone.
    needs_x = (type(model).compute_loss is not keras.Model.compute_loss
               or type(model).compute_metrics is not keras.Model.compute_metrics)
    try:
        for metric in model.metrics:
            metric.reset_state()
        total, count = 0.0, 0
        pending, elements, shapes = [], 0, None
        for x, y, weight in batches(data, batch_size):
            # numpy in, whatever the loader gave: a torch tensor cannot enter a JAX step.
            x, y = keras.tree.map_structure(to_numpy, x), keras.tree.map_structure(to_numpy, y)
            if weight is not None:
                weight = to_numpy(weight)
            item = (x if needs_x else None, y, weight, predict_on_batch(model, x))
            arrays = [a for part in item if part is not None for a in keras.tree.flatten(part)]
            # Batches join along the first axis only: a batch shaped otherwise
            # (padded to its own length) starts a new part.
            item_shapes = [np.shape(a)[1:] for a in arrays]
            if pending and item_shapes != shapes:
                total, count = _add(model, pending, total, count)
                pending, elements = [], 0
            pending.append(item)
            shapes = item_shapes
            elements += sum(np.size(a) for a in arrays)
            if elements >= _PENDING_ELEMENTS:
                total, count = _add(model, pending, total, count)
                pending, elements = [], 0
        if pending:
            total, count = _add(model, pending, total, count)
        if count == 0:
            raise ValueError("Expected evaluation data with at least one example. Received none.")
        results = {}
        for name, value in model.get_metrics_result().items():
            results[name] = float(keras.ops.convert_to_numpy(value))
        results["loss"] = total / count  # The loss tracker is `fit`'s alone.
        return results
    finally:
        for variable, value in zip(model.metrics_variables, saved):
            variable.assign(value)


def _add(model, pending, total, count):
    """Adds the loss and metrics of the batches in `pending` in one call each."""
    x, y, weight, predictions = (_joined([item[i] for item in pending]) for i in range(4))
    loss = model.compute_loss(x=x, y=y, y_pred=predictions, sample_weight=weight)
    model.compute_metrics(x, y, predictions, sample_weight=weight)
    n = len(keras.tree.flatten(predictions)[0])
    # The loss is a mean over these examples: weighted by their count, as
    # `model.evaluate` weights its batches.
    loss = unscaled_loss(float(keras.ops.convert_to_numpy(loss)))
    return total + loss * n, count + n


def _joined(parts):
    """Batches of one structure (arrays, lists or dicts of them) joined along axis 0."""
    if parts[0] is None:
        return None
    if len(parts) == 1:
        return parts[0]
    return keras.tree.map_structure(lambda *arrays: np.concatenate(arrays), *parts)


def batches(data, batch_size: int):
    """Yields `(x, y, sample_weight or None)` from any of the forms `evaluate` accepts."""
    if isinstance(data, (tuple, list)) and len(data) in (2, 3):
        x, y = data[0], data[1]
        weight = data[2] if len(data) == 3 else None
        size = len(keras.tree.flatten(x)[0])
        for start in range(0, size, batch_size):
            part = slice(start, start + batch_size)
            yield (keras.tree.map_structure(lambda a: a[part], x),
                   keras.tree.map_structure(lambda a: a[part], y),
                   None if weight is None else weight[part])
        return
    if hasattr(data, "as_numpy_iterator"):  # tf.data.Dataset
        iterator = data.as_numpy_iterator()
    elif isinstance(data, keras.utils.PyDataset):
        iterator = (data[i] for i in range(len(data)))
    else:
        iterator = iter(data)
    for batch in iterator:
        yield batch[0], batch[1], batch[2] if len(batch) > 2 else None


def to_numpy(value) -> np.ndarray:
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.detach().cpu() if hasattr(value, "detach") else value
        return np.asarray(value.numpy())
    return np.asarray(value)
