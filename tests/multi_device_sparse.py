"""Sparse training (GradualPruning, RigL) on several host devices against one, as JSON.

Run by `test_sparse_training.py` in a fresh process, because the device count
is fixed when the backend starts: `python tests/multi_device_sparse.py` with
KERAS_BACKEND=jax (four XLA host devices, `keras.distribution.DataParallel`)
or tensorflow (two logical CPUs under MirroredStrategy).
"""

import json

from host_devices import BACKEND  # noqa: E402  (before Keras starts)

if BACKEND == "tensorflow":
    import tensorflow as tf

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lottery as kl  # noqa: E402

rng = np.random.default_rng(0)
X = rng.normal(size=(256, 10)).astype("float32")
Y = rng.integers(0, 3, 256)


def train(method):
    keras.utils.set_random_seed(1)
    model = kl.prunable(keras.Sequential(name="net", layers=[
        keras.Input((10,)), keras.layers.Dense(32, activation="relu", name="hidden"),
        keras.layers.Dense(3, activation="softmax", name="out")]))
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    callback = (kl.GradualPruning(kl.PolynomialDecay(0.0, 0.8, 0, 24, frequency=4))
                if method == "gradual" else kl.RigL(0.3, (X, Y), batch_size=64, update_every=4))
    model.fit(X, Y, batch_size=32, epochs=4, shuffle=False, verbose=0, callbacks=[callback])
    return kl.get_masks(model), kl.get_weights(model)


def scope():
    if BACKEND == "jax":
        return keras.distribution.DataParallel(
            devices=keras.distribution.list_devices()).scope()
    return tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")]).scope()


def main():
    out = {}
    for method in ("gradual", "rigl"):
        masks_one, weights_one = train(method)
        with scope():
            masks_many, weights_many = train(method)
        out[method] = {
            "masks_equal": all(np.array_equal(masks_one[p], masks_many[p]) for p in masks_one),
            "weight_gap": max(float(np.abs(weights_one[p] - weights_many[p]).max())
                              for p in weights_one),
            "pruned_zero": all(not weights_many[p][~masks_many[p]].any() for p in masks_many),
            "density": float(np.mean([m.mean() for m in masks_many.values()])),
        }
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
