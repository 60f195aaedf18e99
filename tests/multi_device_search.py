"""A search on several host devices against the same search on one, as JSON.

Run by `test_distribution.py` in a fresh process, because the device count
is fixed when the backend starts: `python tests/multi_device_search.py DIR`
with KERAS_BACKEND=jax (four XLA host devices: `keras.distribution`
DataParallel and ModelParallel) or tensorflow (two logical CPUs under
MirroredStrategy). Prints one JSON object of what the test asserts.
"""

import json
import pathlib
import sys

from host_devices import BACKEND  # noqa: E402  (before Keras starts)

if BACKEND == "tensorflow":
    import tensorflow as tf

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lottery as kl  # noqa: E402

ROUNDS = 2


def build():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(name="net", layers=[
        keras.Input((10,)), keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(3, activation="softmax", name="out")])
    model = kl.prunable(model)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


rng = np.random.default_rng(0)
X = rng.normal(size=(256, 10)).astype("float32")
Y = rng.integers(0, 3, 256)


def search(model, rounds=ROUNDS, directory=None, batch_size=32):
    return kl.TicketSearch(model, X, Y, rounds=rounds, epochs=2, batch_size=batch_size,
                           validation_data=(X[:64], Y[:64]), eval_every=4, verbose=0,
                           controls=["random_reinit"], directory=directory)


def engines():
    if BACKEND == "jax":
        devices = keras.distribution.list_devices()
        mesh = keras.distribution.DeviceMesh((2, 2), ["batch", "model"], devices)
        layout = keras.distribution.LayoutMap(mesh)
        # Full-path patterns for the kernels only: the masks must follow on their own.
        layout[".*/hidden/kernel"] = (None, "model")
        layout[".*/out/kernel"] = ("model", None)
        return {"data_parallel": keras.distribution.DataParallel(devices=devices).scope,
                "model_parallel": keras.distribution.ModelParallel(
                    layout_map=layout, batch_dim_name="batch").scope}
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return {"mirrored": tf.distribute.MirroredStrategy(devices).scope}


def layouts(model):
    """`{path: (weight's sharding spec, its mask's)}`: telling only under ModelParallel,
    where the weights are sharded; replicated (DataParallel) or None (TensorFlow) otherwise."""
    found = {}
    for layer in kl.masked_layers(model):
        for p in layer.get_prunable_weights():
            found[p.weight.path] = [str(getattr(v.value, "sharding", None) and v.value.sharding.spec)
                                    for v in (p.weight, p.mask)]
    return found


def batch_errors(model, replicas):
    """The refusals of a batch, and of a last short batch, that do not split over the replicas."""
    errors = []
    for batch_size, examples in ((8 * replicas + 1, 256), (32, 256 - replicas // 2)):
        try:
            kl.TicketSearch(model, X[:examples], Y[:examples], rounds=1, epochs=1,
                            batch_size=batch_size, verbose=0).run()
            errors.append(None)
        except ValueError as error:
            errors.append(str(error))
    return errors


def compare(one, many, search_one, search_many):
    result_one, result_many = one, many
    masks_equal = all(
        all(np.array_equal(search_one.masks(r.round, r.kind)[k], m)
            for k, m in search_many.masks(r.round, r.kind).items())
        for r in result_one.records)
    val_gap = max(abs(a.final["val_loss"] - b.final["val_loss"])
                  for a, b in zip(result_one.records, result_many.records))
    return {"records": [len(result_one.records), len(result_many.records)],
            "masks_equal": masks_equal, "val_loss_gap": val_gap}


def main(workdir):
    workdir = pathlib.Path(workdir)
    out = {}
    reference = search(build())
    result = reference.run()
    trained_one = kl.state.snapshot(reference.model)
    for name, scope in engines().items():
        with scope():
            model = build()
            report = {"engine": kl.distribution.describe(model), "layouts": layouts(model)}
            if BACKEND == "jax":  # MirroredStrategy splits uneven batches itself.
                report["batch_errors"] = batch_errors(model, report["engine"]["replicas"])
            # Half the rounds, then a new search resumes in the same directory.
            first = search(model, rounds=1, directory=workdir / name).run()
            resumed = search(build(), directory=workdir / name)
            many = resumed.run()
            # Kept, not trained again: wall times and all.
            report["resumed_kept"] = many.records[:len(first.records)] == first.records
            trained = kl.state.snapshot(resumed.model)
            report.update(compare(result, many, reference, resumed))
            report["weight_gap"] = max(float(np.max(np.abs(trained[k] - trained_one[k])))
                                       for k in trained_one)
            report["theta0_equal"] = all(np.array_equal(resumed.theta0[k], reference.theta0[k])
                                         for k in reference.theta0)
            ticket = resumed.ticket(ROUNDS)
            weights, masks = kl.get_weights(ticket), resumed.masks(ROUNDS)
            report["rewind_exact"] = all(
                np.array_equal(weights[k], np.where(masks[k], resumed.theta0[k], 0))
                for k in masks)
            report["pruned_zero"] = all(not np.any(w[~masks[k]]) for k, w in
                                        kl.get_weights(ticket).items())
        out[name] = report
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
