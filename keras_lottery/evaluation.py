"""Loss and accuracy of a model on held-out data, outside `model.evaluate`.

`model.evaluate` resets the metrics `fit` is accumulating, so it cannot be
called every N iterations in the middle of an epoch; this computes the
compiled loss and top-1 accuracy from `predict_on_batch` instead.
"""

import keras
import numpy as np


def evaluate(model, data, batch_size: int = 1000) -> dict[str, float]:
    """`{"loss": ..., "accuracy": ...}` of `model` on `data`.

    Args:
        model: a compiled single-output classifier.
        data: `(x, y)` arrays, a `tf.data.Dataset`, a `keras.utils.PyDataset`
            or any iterable of `(x, y)` batches (a torch `DataLoader`).
        batch_size: batch size used to split `(x, y)` arrays.
    """
    loss_fn = keras.losses.get(model.loss)
    total_loss, correct, count = 0.0, 0, 0
    for x, y in batches(data, batch_size):
        # numpy in, whatever the loader gave: a torch tensor cannot enter a JAX step.
        x = keras.tree.map_structure(to_numpy, x)
        predictions = keras.ops.convert_to_numpy(model.predict_on_batch(x))
        y = to_numpy(y)
        n = len(predictions)
        loss = loss_fn(keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(predictions))
        total_loss += float(np.mean(keras.ops.convert_to_numpy(loss))) * n
        correct += int(np.sum(_predicted_class(predictions) == _true_class(y, predictions)))
        count += n
    if count == 0:
        raise ValueError("Expected evaluation data with at least one example. Received none.")
    return {"loss": total_loss / count, "accuracy": correct / count}


def batches(data, batch_size: int):
    """Yields `(x, y)` batches from any of the forms `evaluate` accepts."""
    if isinstance(data, (tuple, list)) and len(data) in (2, 3):
        x, y = data[0], data[1]
        for start in range(0, len(y), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]
        return
    if hasattr(data, "as_numpy_iterator"):  # tf.data.Dataset
        iterator = data.as_numpy_iterator()
    elif isinstance(data, keras.utils.PyDataset):
        iterator = (data[i] for i in range(len(data)))
    else:
        iterator = iter(data)
    for batch in iterator:
        yield batch[0], batch[1]


def to_numpy(value) -> np.ndarray:
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.detach().cpu() if hasattr(value, "detach") else value
        return np.asarray(value.numpy())
    return np.asarray(value)


def _predicted_class(predictions):
    if predictions.ndim == 1 or predictions.shape[-1] == 1:
        return (predictions.reshape(len(predictions)) > 0.5).astype(int)
    return np.argmax(predictions, axis=-1)


def _true_class(y, predictions):
    if y.ndim == predictions.ndim and y.ndim > 1 and y.shape[-1] == predictions.shape[-1] > 1:
        return np.argmax(y, axis=-1)  # one-hot labels
    return y.reshape(predictions.shape[:-1] if predictions.ndim > 1 else predictions.shape).astype(int)
