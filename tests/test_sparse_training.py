"""Sparse training inside one fit: GradualPruning, SET and RigL on a masked model,
on every backend: exact counts, exact zeros, when masks update, resume, export."""

import warnings

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.pruning import rules
from keras_lottery.sparse.mask_updates import optimizer_slots

BACKEND = keras.backend.backend()
STEPS = 20  # Steps per epoch: 400 examples, batch 20.


def _data(n=400):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 12)).astype("float32")
    return x, (x[:, 0] + x[:, 1] > 0).astype("int32")


def _model(jit=False, steps_per_execution=1, optimizer=None):
    keras.utils.set_random_seed(7)
    model = kl.prunable(keras.Sequential(name="net", layers=[
        keras.Input((12,)), keras.layers.Dense(32, activation="relu", name="hidden"),
        keras.layers.Dense(16, activation="relu", name="second"),
        keras.layers.Dense(2, name="logits")]))
    model.compile(optimizer or keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=jit, steps_per_execution=steps_per_execution)
    return model


def _fit(model, callbacks, epochs=4, **kwargs):
    x, y = _data()
    return model.fit(x, y, batch_size=20, epochs=epochs, shuffle=False, verbose=0,
                     callbacks=callbacks, **kwargs)


def _counts(model):
    return {p: int(m.sum()) for p, m in kl.get_masks(model).items()}


def _assert_pruned_zero(model):
    weights, masks = kl.get_weights(model), kl.get_masks(model)
    for path in weights:
        assert (weights[path][~masks[path]] == 0).all(), path
    slots = optimizer_slots(model.optimizer, [e.weight for e in
                                              kl.masking.masks.prunable_variables(model).values()])
    assert slots, "the optimizer's slots were not found"
    for path, found in slots.items():
        for slot in found:
            assert (keras.ops.convert_to_numpy(slot)[~masks[path]] == 0).all(), slot.name


class Probe(keras.callbacks.Callback):
    """Records the masks' live counts at the end of each execution."""

    def on_train_begin(self, logs=None):
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append((batch, _counts(self.model)))


def test_gradual_pruning_follows_the_schedule_exactly():
    model = _model()
    schedule = kl.PolynomialDecay(0.0, 0.9, begin_step=5, end_step=45, frequency=10)
    pruning, probe = kl.GradualPruning(schedule), Probe()
    history = _fit(model, [pruning, probe], epochs=3)
    assert [step for step, _ in pruning.updates] == [5, 15, 25, 35, 45]
    sizes = {p: w.size for p, w in kl.get_weights(model).items()}
    for step, counts in zip(range(60), [c for _, c in probe.seen]):
        # After step t the masks hold what the last update at or before t asked.
        done = [s for s in (5, 15, 25, 35, 45) if s <= step]
        density = 1 - schedule.sparsity(done[-1]) if done else 1.0
        assert counts == {p: rules.keep_count(n, density) for p, n in sizes.items()}, step
    assert history.history["sparsity"][-1] == pytest.approx(0.9, abs=1e-3)
    _assert_pruned_zero(model)


def test_masks_only_shrink_and_each_update_is_nested():
    model = _model()

    class Nested(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.previous = kl.get_masks(self.model)

        def on_train_batch_end(self, batch, logs=None):
            masks = kl.get_masks(self.model)
            assert all((masks[p] <= self.previous[p]).all() for p in masks)
            self.previous = masks

    _fit(model, [kl.GradualPruning(kl.PolynomialDecay(0.2, 0.8, 0, 40, frequency=5)), Nested()],
         epochs=3)


@pytest.mark.skipif(BACKEND == "torch", reason="Keras runs one step per execution on torch")
def test_steps_per_execution_updates_at_the_start_of_the_execution_holding_the_step():
    model = _model(steps_per_execution=4)
    probe = Probe()
    pruning = kl.GradualPruning(kl.PolynomialDecay(0.0, 0.8, begin_step=2, end_step=42,
                                                   frequency=10))
    _fit(model, [pruning, probe], epochs=3)
    assert [step for step, _ in pruning.updates] == [2, 12, 22, 32, 42]
    sizes = {p: w.size for p, w in kl.get_weights(model).items()}
    # Executions run steps [0,4), [4,8), ...: step 12's update is in place from step 12's
    # execution [12, 16) on, and step 2's from [0, 4).
    ends = [batch for batch, _ in probe.seen]
    assert ends[:5] == [3, 7, 11, 15, 19]
    first = probe.seen[0][1]
    assert first == {p: rules.keep_count(n, 1 - pruning.schedules.sparsity(2))
                     for p, n in sizes.items()}
    assert probe.seen[2][1] == first  # Steps [8, 12): no update due.
    assert probe.seen[3][1] != first  # [12, 16): step 12's.


@pytest.mark.parametrize("budget", ["global", "erk"])
def test_budgets_share_the_sparsity_as_the_search_does(budget):
    model = _model()
    _fit(model, [kl.GradualPruning(kl.ConstantSparsity(0.8, 0, frequency=20), budget=budget)],
         epochs=2)
    counts, sizes = _counts(model), {p: w.size for p, w in kl.get_weights(model).items()}
    assert sum(counts.values()) == rules.keep_count(sum(sizes.values()), 0.2) or budget == "erk"
    if budget == "erk":
        shapes = {p: w.shape for p, w in kl.get_weights(model).items()}
        expected = rules.erk_densities(shapes, 0.2)
        assert counts == {p: rules.keep_count(sizes[p], expected[p]) for p in sizes}
    _assert_pruned_zero(model)


def test_a_schedule_per_layer_prunes_those_layers_only():
    model = _model()
    _fit(model, [kl.GradualPruning({"hidden": kl.ConstantSparsity(0.75, 0, frequency=20)})],
         epochs=1)
    counts = _counts(model)
    assert counts["net/hidden/kernel"] == 96
    assert counts["net/second/kernel"] == 512 and counts["net/logits/kernel"] == 32


def test_structured_gradual_pruning_shrinks_to_a_smaller_model_predicting_the_same():
    model = _model()
    pruning = kl.GradualPruning(kl.PolynomialDecay(0.0, 0.5, 0, 40, frequency=10),
                                structure="neurons")
    _fit(model, [pruning], epochs=3)
    x, _ = _data(50)
    small = kl.shrink(model, verbose=False)
    hidden = small.get_layer("hidden").get_config()["units"]
    assert hidden < 32
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)
    report = kl.sparsity_report(model)
    assert report.density <= 0.5 + 1e-9


def test_n_of_m_gradual_pruning_keeps_n_of_every_m():
    model = _model()
    _fit(model, [kl.GradualPruning(kl.ConstantSparsity(0.5, 0, frequency=20), structure="2:4",
                                   layers=["hidden", "second"])], epochs=1)
    mask = kl.get_masks(model)["net/second/kernel"]  # (32 inputs, 16 outputs)
    runs = mask.reshape(8, 4, 16).sum(axis=1)
    assert (runs == 2).all()


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_dynamic_sparse_training_keeps_every_layer_count_exact(method):
    x, y = _data()
    model = _model(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    grown_seen, drawn = [], []

    def make(cls, **kwargs):
        class Checked(cls):
            def new_masks(self, step, weights, masks):
                new, grown = super().new_masks(step, weights, masks)
                (grown_seen.append(grown) if grown is not None else drawn.append(new))
                return new, grown

        return Checked(**kwargs)

    callback = (make(kl.SET, density=0.2, update_every=5) if method == "set" else
                make(kl.RigL, density=0.2, data=(x, y), batch_size=64, update_every=5))
    probe = Probe()

    class GrownAtZero(keras.callbacks.Callback):
        """Right after each update: grown weights and their optimizer slots at zero."""

        def on_train_batch_begin(self, batch, logs=None):
            if grown_seen and not getattr(self, "checked", 0) == len(grown_seen):
                self.checked = len(grown_seen)
                weights = kl.get_weights(self.model)
                entries = kl.masking.masks.prunable_variables(self.model)
                slots = optimizer_slots(self.model.optimizer,
                                        [e.weight for e in entries.values()])
                for path, grown in grown_seen[-1].items():
                    assert (weights[path][grown] == 0).all()
                    assert slots[path]  # SGD's momentum.
                    for slot in slots[path]:
                        assert (keras.ops.convert_to_numpy(slot)[grown] == 0).all()

    _fit(model, [callback, GrownAtZero(), probe], epochs=4)
    sizes = {p: w.size for p, w in kl.get_weights(model).items()}
    expected = rules.erk_densities({p: w.shape for p, w in kl.get_weights(model).items()}, 0.2)
    counts = {p: rules.keep_count(sizes[p], expected[p]) for p in sizes}
    assert all(seen == counts for _, seen in probe.seen)  # Every execution, every layer.
    # Updates every 5 steps until 3/4 of the 80 steps: 5, 10, ..., 55, after the draw at 0.
    assert [s for s, _ in callback.updates] == [0, *range(5, 60, 5)]
    assert len(grown_seen) == 11 and any(g.any() for g in grown_seen[0].values())
    # The masks moved: the last ones are not those drawn at step 0.
    assert any((drawn[0][p] != kl.get_masks(model)[p]).any() for p in drawn[0])
    _assert_pruned_zero(model)


def test_rigl_grows_by_the_dense_gradient_of_the_pruned_weights():
    x, y = _data(64)
    model = _model()
    masks = {p: np.random.default_rng(0).random(m.shape) < 0.3
             for p, m in kl.get_masks(model).items()}
    kl.apply_masks(model, masks)
    from keras_lottery.pruning.saliency import dense_gradients

    grads = dense_gradients(model, x, y)
    # The same gradient from the stripped (plain, dense) model with the same zeros.
    plain = kl.strip(model)
    from keras_lottery.runtime import autodiff

    kernels = [v for v in plain.trainable_variables if v.path.endswith("kernel")]

    def loss(tensors):
        with keras.StatelessScope(state_mapping=list(zip(kernels, tensors))):
            return plain.compute_loss(x=x, y=y, y_pred=plain(x, training=False), training=False)

    _, expected = autodiff.gradient(loss, [keras.ops.convert_to_numpy(k) for k in kernels])
    for path, value in zip(grads, expected):  # Both in model order.
        np.testing.assert_allclose(grads[path], value, atol=1e-5)
        assert np.abs(grads[path][~masks[path]]).sum() > 0  # Pruned weights have gradients.


@pytest.mark.skipif(BACKEND == "torch", reason="Keras runs one step per execution on torch")
def test_dynamic_masks_are_drawn_in_the_first_execution_holding_later_updates_too():
    model = _model(steps_per_execution=4)
    probe = Probe()
    callback = kl.SET(0.2, update_every=2)  # Steps 0 (the draw) and 2 in the first execution.
    _fit(model, [callback, probe], epochs=1)
    expected = _counts(model)
    assert sum(expected.values()) < 0.25 * sum(
        w.size for w in kl.get_weights(model).values())
    assert all(seen == expected for _, seen in probe.seen)  # From the first execution on.
    assert callback.updates[0][0] == 2  # Applied at step 0's execution as step 2's update.


@pytest.mark.skipif(BACKEND == "torch", reason="Keras runs one step per execution on torch")
def test_each_layer_takes_its_own_last_due_step_in_an_execution():
    model = _model(steps_per_execution=4)
    # Both due in the first execution [0, 4), at different steps.
    _fit(model, [kl.GradualPruning({"hidden": kl.ConstantSparsity(0.5, 0, 0),
                                    "second": kl.ConstantSparsity(0.75, 1, 1)})], epochs=1)
    counts = _counts(model)
    assert counts["net/hidden/kernel"] == 192 and counts["net/second/kernel"] == 128


def _interrupt_at(epoch):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            if e == epoch:
                raise KeyboardInterrupt

    return Interrupt()


@pytest.mark.parametrize("method", ["gradual", "rigl"])
def test_an_interrupted_training_resumes_to_the_same_masks_and_weights(tmp_path, method):
    x, y = _data()

    def callback():
        if method == "gradual":
            return kl.GradualPruning(kl.PolynomialDecay(0.0, 0.8, 0, 70, frequency=10))
        return kl.RigL(0.25, (x, y), batch_size=32, update_every=10)

    whole = _model()
    _fit(whole, [callback()], epochs=5)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    broken = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(broken, [callback(), backup, _interrupt_at(3)], epochs=5)
    resumed = _model()  # A new process would build the model again.
    _fit(resumed, [callback(), keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))],
         epochs=5)
    for path, mask in kl.get_masks(whole).items():
        assert (kl.get_masks(resumed)[path] == mask).all(), path
        np.testing.assert_allclose(kl.get_weights(resumed)[path], kl.get_weights(whole)[path],
                                   atol=1e-5)


@pytest.mark.filterwarnings("ignore:PolynomialDecay.*does not reach its target")
def test_a_saved_model_carries_on_its_schedule(tmp_path):
    schedule = kl.PolynomialDecay(0.0, 0.8, 0, 70, frequency=10)
    whole = _model()
    _fit(whole, [kl.GradualPruning(schedule)], epochs=4)
    first = _model()
    _fit(first, [kl.GradualPruning(schedule)], epochs=2)
    first.save(tmp_path / "half.keras")
    again = keras.saving.load_model(tmp_path / "half.keras")
    _fit(again, [kl.GradualPruning(schedule)], epochs=4, initial_epoch=2)
    # Keras gives a reloaded Sequential's variables paths without the model's name.
    for mask, expected in zip(kl.get_masks(again).values(), kl.get_masks(whole).values()):
        assert (mask == expected).all()


def _traces(callbacks):
    model = _model(jit=True)
    traces = []
    step = model.train_step

    def counted(*args, **kwargs):
        traces.append(1)
        return step(*args, **kwargs)

    model.train_step = counted
    _fit(model, callbacks, epochs=4)
    return len(traces)


def test_no_recompilation_when_masks_change():
    if BACKEND == "torch":
        pytest.skip("torch.compile: tests/test_sparse_training.py::test_torch_compiles_once")
    pruning = kl.GradualPruning(kl.PolynomialDecay(0.0, 0.8, 0, 60, frequency=10))
    assert _traces([pruning]) == _traces([])  # As often as without masks changing (1 or 2).
    assert len(pruning.updates) == 7


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "torch", reason="torch.compile's own count")
def test_torch_compiles_once():
    import torch._dynamo

    from torch._dynamo.utils import counters

    # Earlier tests in the same process add to torch's global counters: start both counts at 0.
    torch._dynamo.reset()
    counters.clear()
    model = _model(jit=True)
    _fit(model, [], epochs=1)
    plain = counters["stats"]["unique_graphs"]
    torch._dynamo.reset()
    counters.clear()
    model = _model(jit=True)
    _fit(model, [kl.GradualPruning(kl.PolynomialDecay(0.0, 0.8, 0, 60, frequency=10))],
         epochs=4)
    assert counters["stats"]["unique_graphs"] == plain


def test_after_fit_the_model_strips_reports_and_compresses():
    model = _model()
    _fit(model, [kl.GradualPruning(kl.ConstantSparsity(0.9, 0, frequency=20))], epochs=2)
    x, _ = _data(30)
    plain = kl.strip(model)
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)
    assert kl.sparsity_report(model).density == pytest.approx(0.1, abs=0.01)
    sparse_size = kl.compressed_size(model)
    dense_size = kl.compressed_size(_model())
    assert sparse_size["gzip_bytes"] < dense_size["gzip_bytes"]
    assert sparse_size["gzip_bytes"] < sparse_size["file_bytes"]


def test_bad_input_is_refused_before_training():
    x, y = _data()
    plain = keras.Sequential([keras.Input((12,)), keras.layers.Dense(2)])
    plain.compile("adam", "mse")
    before = [keras.ops.convert_to_numpy(w) for w in plain.weights]
    with pytest.raises(ValueError, match="keras_lottery.prunable"):
        plain.fit(x, np.zeros((len(x), 2)), epochs=1, verbose=0,
                  callbacks=[kl.GradualPruning(kl.ConstantSparsity(0.5))])
    assert all((keras.ops.convert_to_numpy(w) == b).all() for w, b in zip(plain.weights, before))
    with pytest.raises(ValueError, match="leaves layer 'logits'"):
        _fit(_model(), [kl.SET(0.01, budget="uniform")], epochs=1)
    with pytest.raises(ValueError, match="Expected `data`"):
        kl.RigL(0.1, None)
    with pytest.raises(ValueError, match="Expected `density` in \\(0, 1\\)"):
        kl.SET(1.0)
    with pytest.raises(ValueError, match="Expected `update_every` an integer >= 1"):
        kl.SET(0.1, update_every=0)
    with pytest.raises(ValueError, match="criterion scored after training"):
        kl.GradualPruning(kl.ConstantSparsity(0.5), criterion="snip")
    with pytest.raises(ValueError, match="budget='uniform' with a schedule per layer"):
        kl.GradualPruning({"hidden": kl.ConstantSparsity(0.5)}, budget="global")
    with pytest.raises(ValueError, match="Expected `layers` among the masked layers"):
        _fit(_model(), [kl.GradualPruning(kl.ConstantSparsity(0.5), layers=["nope"])], epochs=1)
    with pytest.raises(ValueError, match="Expected `schedule` a keras_lottery pruning schedule"):
        kl.GradualPruning(0.5)


def test_a_schedule_that_ends_after_training_warns_naming_the_step_reached():
    with pytest.warns(UserWarning, match="its last update, at step 30"):
        _fit(_model(), [kl.GradualPruning(kl.PolynomialDecay(0.0, 0.9, 0, 100, frequency=10))],
             epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _fit(_model(), [kl.GradualPruning(kl.PolynomialDecay(0.0, 0.9, 0, 30, frequency=10))],
             epochs=2)


@pytest.mark.slow
@pytest.mark.skipif(BACKEND == "torch", reason="Keras has no multi-device trainer for torch")
def test_sparse_training_on_several_devices_matches_one():
    import json
    import os
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).parent / "multi_device_sparse.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, KERAS_BACKEND=BACKEND))
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    for method, report in json.loads(lines[0][len("RESULT "):]).items():
        assert report["masks_equal"] and report["pruned_zero"], method
        assert report["weight_gap"] < 1e-4, method


@pytest.mark.slow  # Compiling in mixed precision takes 20 s on JAX's CPU backend.
def test_mixed_precision_slots_are_found_through_the_loss_scale_optimizer():
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _model()
        assert type(model.optimizer).__name__ == "LossScaleOptimizer"
        _fit(model, [kl.GradualPruning(kl.ConstantSparsity(0.7, 0, frequency=5))], epochs=2)
        _assert_pruned_zero(model)  # Adam's moments of the inner optimizer, zero where pruned.
    finally:
        keras.mixed_precision.set_global_policy(policy)


def test_slots_go_to_the_weight_with_the_longest_matching_name():
    keras.utils.set_random_seed(0)
    model = kl.prunable(keras.Sequential(name="m", layers=[
        keras.Input((4,)), keras.layers.Dense(4, name="d"), keras.layers.Dense(4, name="d_kernel")]))
    model.compile("adam", "mse")
    model.fit(np.ones((8, 4)), np.ones((8, 4)), verbose=0)
    weights = [e.weight for e in kl.masking.masks.prunable_variables(model).values()]
    found = optimizer_slots(model.optimizer, weights[:1], model.trainable_variables)
    assert [v.name for v in found["m/d/kernel"]] == ["m_d_kernel_momentum", "m_d_kernel_velocity"]


def test_same_seed_same_masks_another_seed_others():
    def masks(seed):
        model = _model()
        _fit(model, [kl.SET(0.2, update_every=5, seed=seed)], epochs=2)
        return kl.get_masks(model)

    first, again, other = masks(0), masks(0), masks(1)
    assert all((first[p] == again[p]).all() for p in first)
    assert any((first[p] != other[p]).any() for p in first)
