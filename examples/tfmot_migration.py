"""tfmot's comprehensive pruning guide, section by section, in Keras 3 with keras-lottery.

Each function is one section of TensorFlow Model Optimization's "Pruning
comprehensive guide" (which runs on Keras 2 only), done the keras-lottery way;
the same code runs on TensorFlow, JAX and PyTorch:

    KERAS_BACKEND=jax python examples/tfmot_migration.py

docs/sparse_training.md maps every `tfmot.sparsity.keras` name to its counterpart.
"""

import os
import tempfile

import keras
import numpy as np

import keras_lottery as kl

INPUT, OUTPUT = 20, 20


def setup_model():
    """The guide's small model (in tfmot: Dense layers and a Flatten)."""
    return keras.Sequential([keras.Input((INPUT,)), keras.layers.Dense(20, name="first"),
                             keras.layers.Flatten(), keras.layers.Dense(OUTPUT, name="second")])


def data(examples=64):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(examples, INPUT)).astype("float32"),
            rng.normal(size=(examples, OUTPUT)).astype("float32"))


def compile_(model):
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    return model


def prune_whole_model(epochs):
    """tfmot: `prune_low_magnitude(model, pruning_schedule=ConstantSparsity(0.5, 0))`
    and the `UpdatePruningStep` callback. Here: the model gets masks
    (`prunable`), the callback prunes it as it trains."""
    model = compile_(kl.prunable(setup_model()))
    x, y = data()
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0,
              callbacks=[kl.GradualPruning(kl.ConstantSparsity(0.5, begin_step=0))])
    return model


def prune_some_layers(epochs):
    """tfmot: `clone_model` with a `clone_function` wrapping the Dense layers to
    prune. Here: name the layers to prune; every other layer is left dense.
    A schedule per layer (tfmot: each wrapper's own schedule) is a dict."""
    model = compile_(kl.prunable(setup_model()))
    x, y = data()
    per_layer = {"first": kl.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=8, frequency=2)}
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0,
              callbacks=[kl.GradualPruning(per_layer)])
    return model


@keras.saving.register_keras_serializable(package="tfmot_migration")
class MyDenseLayer(kl.MaskedLayer, keras.layers.Dense):
    """tfmot: a layer implementing `PrunableLayer.get_prunable_weights`. Here: a
    masked layer declares its prunable weights by attribute and kind, and
    gets `get_prunable_weights()` (tfmot's name) from `MaskedLayer`."""

    prunable_weights = {"kernel": "dense"}


def prune_a_custom_layer(epochs):
    model = compile_(keras.Sequential([keras.Input((INPUT,)), MyDenseLayer(20, name="custom"),
                                       keras.layers.Dense(OUTPUT, name="second")]))
    x, y = data()
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0,
              callbacks=[kl.GradualPruning(kl.ConstantSparsity(0.5, 0), layers=["custom"])])
    return model


def custom_training_loop(epochs):
    """tfmot: `step_callback.on_train_batch_begin` around a `GradientTape` loop.
    Here: call the callback's hooks around `train_on_batch`, which counts the
    optimizer's steps the schedule follows."""
    model = compile_(kl.prunable(setup_model()))
    x, y = data()
    batch = 8
    steps = len(x) // batch
    pruning = kl.GradualPruning(kl.ConstantSparsity(0.5, 0, frequency=4))
    pruning.set_model(model)
    pruning.set_params({"epochs": epochs, "steps": steps})
    pruning.on_train_begin()
    for epoch in range(epochs):
        pruning.on_epoch_begin(epoch)
        for step in range(steps):
            pruning.on_train_batch_begin(step)
            model.train_on_batch(x[step * batch:(step + 1) * batch],
                                 y[step * batch:(step + 1) * batch])
    return model


def log_sparsity(epochs, folder):
    """tfmot: `PruningSummaries(log_dir)`. Here: the callback puts the pruned
    layers' sparsity into each epoch's logs, which `CSVLogger` and `TensorBoard`
    record when listed after it."""
    model = compile_(kl.prunable(setup_model()))
    x, y = data()
    log = os.path.join(folder, "log.csv")
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0,
              callbacks=[kl.GradualPruning(kl.ConstantSparsity(0.5, 0)),
                         keras.callbacks.CSVLogger(log)])
    with open(log) as file:
        return file.read()


def checkpoint_and_restore(model, folder):
    """tfmot: save, then load inside `prune_scope()`. Here: a masked model is a
    Keras model; `import keras_lottery` registers its layers."""
    path = os.path.join(folder, "pruned.keras")
    model.save(path)
    return keras.saving.load_model(path)


def deploy(model, folder):
    """tfmot: `strip_pruning`, then gzip the saved model to see the saving.
    Here: `strip` gives the plain Keras model; `compressed_size` saves and gzips."""
    plain = kl.strip(model)
    path = os.path.join(folder, "stripped.keras")
    plain.save(path)
    return plain, kl.compressed_size(plain), kl.compressed_size(setup_model())


def two_of_four(epochs):
    """tfmot: `prune_low_magnitude(..., sparsity_m_by_n=(2, 4))`. Here: the 2:4
    structure, N of every M consecutive inputs kept."""
    model = compile_(kl.prunable(setup_model()))
    x, y = data()
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0,
              callbacks=[kl.GradualPruning(kl.ConstantSparsity(0.5, 0), structure="2:4")])
    return model


def main(epochs=4):
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        whole = prune_whole_model(epochs)
        results["whole model"] = kl.sparsity_report(whole).density
        some = prune_some_layers(epochs)
        results["some layers"] = {r.path: r.density for r in kl.sparsity_report(some).rows}
        custom = prune_a_custom_layer(epochs)
        results["custom layer"] = kl.sparsity_report(custom).density
        results["custom loop"] = kl.sparsity_report(custom_training_loop(epochs)).density
        results["logged"] = log_sparsity(epochs, folder)
        restored = checkpoint_and_restore(whole, folder)
        x, _ = data(8)
        results["restored predicts the same"] = bool(np.allclose(
            restored.predict(x, verbose=0), whole.predict(x, verbose=0), atol=1e-6))
        plain, sparse_size, dense_size = deploy(whole, folder)
        results["stripped predicts the same"] = bool(np.allclose(
            plain.predict(x, verbose=0), whole.predict(x, verbose=0), atol=1e-6))
        results["gzip bytes, pruned vs dense"] = (sparse_size["gzip_bytes"],
                                                  dense_size["gzip_bytes"])
        results["2:4"] = kl.get_masks(two_of_four(epochs))
    return results


if __name__ == "__main__":
    for name, value in main().items():
        if name == "2:4":
            value = {path: f"{int(m.sum())} of {m.size}" for path, m in value.items()}
        print(f"{name}: {value}")
