"""Searches on several devices (keras.distribution on JAX, tf.distribute on
TensorFlow), refusals where a backend has neither, and mixed precision."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_lottery as kl

BACKEND = keras.backend.backend()
HERE = pathlib.Path(__file__).parent


@pytest.mark.slow
@pytest.mark.skipif(BACKEND == "torch", reason="Keras has no multi-device trainer for torch")
def test_multi_device_search_matches_one_device(tmp_path):
    # Its own process: the number of host devices is fixed when the backend starts.
    done = subprocess.run(
        [sys.executable, str(HERE / "multi_device_search.py"), str(tmp_path)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, KERAS_BACKEND=BACKEND))
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    reports = json.loads(lines[0][len("RESULT "):])
    expected = {"jax": {"data_parallel": 4, "model_parallel": 2},
                "tensorflow": {"mirrored": 2}}[BACKEND]
    assert {name: r["engine"]["replicas"] for name, r in reports.items()} == expected
    for name, report in reports.items():
        assert report["records"] == [5, 5], name
        assert report["masks_equal"], name  # Identical masks on a tie-free model.
        assert report["weight_gap"] < 1e-5 and report["val_loss_gap"] < 1e-5, name
        assert report["theta0_equal"] and report["rewind_exact"] and report["pruned_zero"], name
        assert report["resumed_kept"], name
        for weight_spec, mask_spec in report["layouts"].values():
            assert mask_spec == weight_spec, name  # Each mask laid out like its weight.
        if BACKEND == "jax":
            replicas = report["engine"]["replicas"]
            batch, last = report["batch_errors"]
            assert f"Expected `batch_size` divisible by the {replicas} replicas" in batch
            assert f"batch_size={8 * replicas + 1}" in batch
            assert "last batch divisible" in last and "batches of 32" in last
    if BACKEND == "jax":  # The layout map named the kernels only; the masks followed.
        assert reports["model_parallel"]["layouts"]["net/hidden/kernel"][1] == "P(None, 'model')"


def _tiny_model():
    keras.utils.set_random_seed(3)
    model = kl.prunable(keras.Sequential([
        keras.Input((10,)), keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(3, name="logits"),
        keras.layers.Activation("softmax", dtype="float32", name="probabilities")]))
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(128, 10)).astype("float32"), rng.integers(0, 3, 128)


def test_keras_distribution_refused_off_jax():
    if BACKEND == "jax":
        pytest.skip("JAX runs keras.distribution")
    try:
        distribution = keras.distribution.DataParallel(devices=["cpu:0"])
    except AttributeError:  # Keras 3.11 cannot even make one off JAX: nothing to refuse.
        pytest.skip(f"Keras {keras.__version__} makes no keras.distribution on {BACKEND}")
    model = _tiny_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = _data()
    keras.distribution.set_distribution(distribution)
    try:
        with pytest.raises(ValueError, match=f"on the {BACKEND} backend.*Received DataParallel"):
            kl.TicketSearch(model, x, y, rounds=1, epochs=1, verbose=0)
    finally:
        keras.distribution.set_distribution(None)
    search = kl.TicketSearch(model, x, y, rounds=1, epochs=1, verbose=0)
    keras.distribution.set_distribution(distribution)
    try:  # Set after the search was made: refused by run(), before training.
        with pytest.raises(ValueError, match="Keras runs it on JAX only"):
            search.run()
    finally:
        keras.distribution.set_distribution(None)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0


def test_data_parallel_scope():
    if BACKEND == "torch":
        with pytest.raises(ValueError, match="Received backend='torch'.*KERAS_BACKEND=jax"):
            with kl.data_parallel():
                pass
        return
    with kl.data_parallel():
        model = _tiny_model()
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        engine = (type(model.distribute_strategy).__name__ if BACKEND == "tensorflow"
                  else kl.distribution.describe(model)["engine"])
    # On one CPU: all the devices there are (the multi-device test above uses more).
    assert engine == {"jax": "DataParallel", "tensorflow": "MirroredStrategy"}[BACKEND]
    assert keras.distribution.distribution() is None  # The scope is left behind.


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_search(policy):
    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = _tiny_model()
        optimizer = keras.optimizers.Adam(1e-2)
        if policy == "mixed_float16":
            # A scale that grows every 2 steps: it must be back at 2**10 for each training.
            optimizer = keras.optimizers.LossScaleOptimizer(
                optimizer, initial_scale=2.0**10, dynamic_growth_steps=2)
        model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.get_layer("hidden").compute_dtype == policy.split("_")[1]

    seen = []

    class OptimizerAtBegin(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append([np.array(keras.ops.convert_to_numpy(v))
                         for v in self.model.optimizer.variables])

        def on_train_end(self, logs=None):
            if policy == "mixed_float16":
                scale = keras.ops.convert_to_numpy(self.model.optimizer.dynamic_scale)
                assert scale > 2.0**10  # It moved, so the reset is tested.

    x, y = _data()
    search = kl.TicketSearch(model, x, y, rounds=2, epochs=2, batch_size=32, verbose=0,
                             validation_data=(x[:32], y[:32]), controls=["random_reinit"],
                             callbacks=[OptimizerAtBegin()])
    result = search.run()
    assert len(seen) == len(result.records) == 5
    for state in seen[1:]:  # Every training starts from the first one's optimizer.
        assert all(np.array_equal(a, b) for a, b in zip(state, seen[0]))
    for layer in kl.masked_layers(model):
        for p in layer.get_prunable_weights():
            mask = keras.ops.convert_to_numpy(p.mask)
            assert p.mask.dtype == "float32" and set(np.unique(mask)) <= {0.0, 1.0}
    for record in result.records:
        masks = search.masks(record.round, record.kind)
        assert all(m.dtype == bool for m in masks.values())
    final = kl.get_weights(model)
    last = result.records[-1]
    for path, mask in search.masks(last.round, last.kind).items():
        assert not np.any(final[path][~mask])  # Exactly zero, in float32.
        assert np.count_nonzero(final[path][mask]) == mask.sum()
    assert np.isfinite(result.records[-1].final["val_loss"])
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert float(seen[0][[v.path for v in model.optimizer.variables].index(
            model.optimizer.dynamic_scale.path)]) == 2.0**10
