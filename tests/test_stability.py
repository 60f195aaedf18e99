"""The instability analysis: the line between two copies, its barriers, and the rewind
point a search chooses by measuring it."""

import dataclasses
import json

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.search import linear_path, stability, state
from keras_lottery.search.results import InstabilityRecord, SearchResult
from keras_lottery.search.stability import choose_rewind


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12)).astype("float32")
    y = (x[:, :4].sum(axis=1) > 0).astype("int32") + (x[:, 4] > 1).astype("int32")
    return x, y


X, Y = _data(240)
TEST = _data(120, seed=1)


def _model(bn=False, dropout=False, learning_rate=0.1):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((12,))
    h = keras.layers.Dense(24, activation="relu", name="hidden")(inputs)
    if bn:
        h = keras.layers.BatchNormalization(name="bn")(h)
    if dropout:
        h = keras.layers.Dropout(0.3)(h)
    outputs = keras.layers.Dense(3, name="out")(h)
    model = kl.prunable(keras.Model(inputs, outputs))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _record(step, instability):
    return InstabilityRecord(
        round=0, start_iteration=step, network="dense", density=1.0, seeds=[1, 2],
        iterations=[10, 10], normalization="recompute", evaluated_on="test",
        curves={"alpha": [0.0, 1.0], "loss": [0.0, 0.0]}, barriers={"loss": instability},
        error_quantity=None, instability=instability)


# -- the line and its barriers ------------------------------------------------


def test_barriers_are_the_worst_point_minus_the_mean_of_the_ends():
    curves = {"alpha": [0, 0.5, 1], "loss": [0.2, 0.9, 0.4], "accuracy": [0.9, 0.6, 0.8],
              "val_mae": [1.0, 0.5, 2.0]}
    found = linear_path.barriers(curves)
    assert found["loss"] == pytest.approx(0.9 - 0.3)
    # Accuracy as an error: mean(ends) - min(path) = (0.9 + 0.8) / 2 - 0.6.
    assert found["accuracy"] == pytest.approx(0.25)
    assert found["val_mae"] == pytest.approx(2.0 - 1.5)  # A line lower inside: below 0 is 0.5.
    assert linear_path.error_quantity(curves) == "accuracy"
    assert linear_path.error_quantity({"alpha": [], "loss": []}) is None


def test_interpolation_keeps_zeros_and_takes_integers_from_the_first():
    a = {"w": np.array([0.0, 1.0, 2.0], "float32"), "seed": np.array([5, 6], "uint32")}
    b = {"w": np.array([0.0, 3.0, -2.0], "float32"), "seed": np.array([7, 8], "uint32")}
    middle = linear_path.interpolate(a, b, 0.25)
    np.testing.assert_array_equal(middle["w"], np.array([0.0, 1.5, 1.0], "float32"))
    assert middle["w"][0] == 0.0 and middle["w"].dtype == np.float32
    np.testing.assert_array_equal(middle["seed"], a["seed"])
    np.testing.assert_array_equal(linear_path.interpolate(a, b, 1.0)["w"], b["w"])
    np.testing.assert_array_equal(linear_path.alphas(5), [0, 0.25, 0.5, 0.75, 1])


def _two_trained(model, masks=None):
    if masks is not None:
        kl.apply_masks(model, masks)
    start = state.snapshot(model)
    ends = []
    for seed in (1, 2):
        state.restore(model, start)
        keras.utils.set_random_seed(seed)
        model.fit(X, Y, epochs=1, batch_size=40, verbose=0)
        ends.append(state.snapshot(model))
    return ends


def test_the_line_holds_the_masks_and_its_ends_are_the_copies(monkeypatch):
    model = _model()
    masks = {p: np.random.default_rng(0).random(m.shape) < 0.5
             for p, m in kl.get_masks(model).items()}
    a, b = _two_trained(model, masks)
    seen = []
    evaluate = linear_path.evaluate

    def watched(model, data, batch_size):
        seen.append(kl.get_weights(model))
        return evaluate(model, data, batch_size)

    monkeypatch.setattr(linear_path, "evaluate", watched)
    curves = linear_path.evaluate_path(model, a, b, TEST, points=4, masks=masks)
    assert curves["alpha"] == [0.0, 1 / 3, 2 / 3, 1.0] and len(seen) == 4
    for weights in seen:  # Pruned weights exactly zero at every point.
        for path, mask in masks.items():
            assert np.count_nonzero(weights[path][~mask]) == 0
    for key in ("hidden/kernel", "out/kernel"):
        path = next(p for p in masks if p.endswith(key))
        np.testing.assert_array_equal(seen[0][path], a[path])
        np.testing.assert_array_equal(seen[-1][path], b[path])
        np.testing.assert_allclose(seen[1][path], (2 * a[path] + b[path]) / 3, atol=1e-6)
    # The model is left at the first copy.
    for key, value in state.snapshot(model).items():
        np.testing.assert_array_equal(value, a[key])
    # The ends are evaluated as `evaluate` evaluates the copies themselves.
    state.restore(model, b)
    assert curves["loss"][-1] == pytest.approx(evaluate(model, TEST)["loss"], abs=1e-6)


def _statistics_at_points(monkeypatch, model):
    """The BatchNormalization moving mean and variance at each point of the line."""
    seen = []
    evaluate = linear_path.evaluate

    def watched(model, data, batch_size):
        bn = model.get_layer("bn")
        seen.append([np.array(keras.ops.convert_to_numpy(v))
                     for v in (bn.moving_mean, bn.moving_variance)])
        return evaluate(model, data, batch_size)

    monkeypatch.setattr(linear_path, "evaluate", watched)
    return seen


def test_normalization_statistics_interpolated(monkeypatch):
    model = _model(bn=True)
    a, b = _two_trained(model)
    seen = _statistics_at_points(monkeypatch, model)
    linear_path.evaluate_path(model, a, b, TEST, points=3, normalization="interpolate")
    for index, name in enumerate(("moving_mean", "moving_variance")):
        key = next(k for k in a if k.endswith(f"bn/{name}"))
        np.testing.assert_allclose(seen[1][index], (a[key] + b[key]) / 2, rtol=1e-6)
        np.testing.assert_array_equal(seen[0][index], a[key])


def test_normalization_statistics_recomputed_exactly_on_training_batches(monkeypatch):
    model = _model(bn=True)
    a, b = _two_trained(model)
    seen = _statistics_at_points(monkeypatch, model)
    linear_path.evaluate_path(model, a, b, TEST, points=3, statistics_data=(X, Y),
                              batch_size=60, statistics_batches=3)
    # The mean over the first 3 batches of 60 of the hidden layer's output at the midpoint.
    state.restore(model, linear_path.interpolate(a, b, 0.5))
    hidden = keras.Model(model.inputs, model.get_layer("hidden").output)
    outputs = [keras.ops.convert_to_numpy(hidden(X[i * 60:(i + 1) * 60])) for i in range(3)]
    np.testing.assert_allclose(seen[1][0], np.mean([o.mean(axis=0) for o in outputs], axis=0),
                               rtol=1e-4, atol=1e-6)
    # Each batch's (biased) variance, averaged the same way.
    np.testing.assert_allclose(seen[1][1], np.mean([o.var(axis=0) for o in outputs], axis=0),
                               rtol=1e-3, atol=1e-5)
    # Momentum is put back.
    assert model.get_layer("bn").momentum == 0.99
    with pytest.raises(ValueError, match="statistics_data"):
        linear_path.evaluate_path(model, a, b, TEST, points=3)


# -- kl.instability -----------------------------------------------------------------


def test_instability_trains_two_copies_and_leaves_the_model_at_its_start():
    model = _model(dropout=True)
    start = state.snapshot(model)
    found = kl.instability(model, X, Y, data=TEST, points=5, epochs=1, batch_size=40)
    assert found.curves["alpha"] == [0, 0.25, 0.5, 0.75, 1.0]
    assert set(found.barriers) == {"loss", "accuracy"} and found.error_quantity == "accuracy"
    assert found.instability == found.error_barrier == found.barriers["accuracy"]
    assert found.iterations == [6, 6] and found.seeds == [1, 2] and found.network == "dense"
    for key, value in state.snapshot(model).items():
        np.testing.assert_array_equal(value, start[key])
    # The same seeds give the same numbers.
    again = kl.instability(model, X, Y, data=TEST, points=5, epochs=1, batch_size=40)
    assert again.curves == found.curves


def test_copies_that_cannot_differ_have_no_barrier():
    # Full-batch gradient descent in a fixed order, no dropout: no noise to differ by.
    model = _model()
    found = kl.instability(model, X, Y, data=TEST, points=4, epochs=3, batch_size=240,
                           shuffle=False)
    assert found.barriers == {"loss": 0.0, "accuracy": 0.0}
    assert len(set(found.curves["loss"])) == 1


def test_instability_from_iteration_k_of_a_pruned_model():
    model = _model()
    masks = {p: np.random.default_rng(0).random(m.shape) < 0.3
             for p, m in kl.get_masks(model).items()}
    kl.apply_masks(model, masks)
    found = kl.instability(model, X, Y, data=TEST, points=3, rewind_step=3, epochs=1,
                           batch_size=40)
    assert found.start_iteration == 3 and found.network == "pruned"
    assert found.density == pytest.approx(kl.density(masks))


def test_the_second_copy_draws_other_dropout():
    # Full batches in a fixed order: the copies differ by their dropout alone.
    model = _model(dropout=True)
    found = kl.instability(model, X, Y, data=TEST, points=3, epochs=2, batch_size=len(X),
                           shuffle=False)
    assert max(found.curves["loss"]) - min(found.curves["loss"]) > 1e-4
    start = state.snapshot(model)
    other = stability.reseeded(start, 2)
    key = next(k for k in start if "seed_generator" in k)
    assert not np.array_equal(other[key], start[key]) and other[key].dtype == start[key].dtype
    assert all(np.array_equal(other[k], start[k]) for k in start if k != key)
    np.testing.assert_array_equal(stability.reseeded(start, 2)[key], other[key])


def test_bfloat16_weights_are_interpolated():
    import ml_dtypes

    a = {"w": np.array([1.0, 0.0], ml_dtypes.bfloat16), "n": np.array([3], "int64")}
    b = {"w": np.array([3.0, 0.0], ml_dtypes.bfloat16), "n": np.array([9], "int64")}
    point = linear_path.interpolate(a, b, 0.5)
    assert point["w"].dtype == a["w"].dtype and point["w"].astype("float32").tolist() == [2, 0]
    assert point["n"].tolist() == [3]


def test_statistics_from_data_that_yields_nothing_are_refused():
    model = _model(bn=True)
    with pytest.raises(ValueError, match="yields no batch"):
        linear_path.recompute_statistics(model, iter([]), batch_size=10, max_batches=3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(data=None), "Expected `data`"),
    (dict(data=(TEST[0],)), "Expected `data`"),
    (dict(points=2), "points"),
    (dict(seeds=(4, 4)), "seeds"),
    (dict(seeds=(1,)), "seeds"),
    (dict(rewind_step=100), "rewind_step"),
    (dict(normalization="average"), "normalization"),
    (dict(epoch=2), "epoch"),
])
def test_instability_refuses_bad_input_before_training(kwargs, match, monkeypatch):
    model = _model()
    monkeypatch.setattr(model, "fit", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match=match):
        kl.instability(model, X, Y, **{"data": TEST, "epochs": 1, "batch_size": 40, **kwargs})


# -- in the search --------------------------------------------------------------------


def _search(directory=None, **settings):
    settings = {"rounds": 2, "prune_rates": 0.5, "epochs": 1, "batch_size": 40,
                "validation_data": TEST, "test_data": TEST, "verbose": 0, "path_points": 4,
                **settings}
    return kl.TicketSearch(_model(), X, Y, directory=directory, **settings)


def _numbers(result):
    return [(r.round, r.kind, r.density, r.final, r.early_stop) for r in result.records]


def test_a_search_measures_each_rounds_ticket_without_changing_its_numbers(tmp_path):
    plain = _search().run()
    measured = _search(tmp_path / "run", instability=True).run()
    assert _numbers(measured) == _numbers(plain)
    assert [r.round for r in measured.instability] == [0, 1, 2]
    for record, ticket in zip(measured.instability, measured.tickets()):
        assert record.density == pytest.approx(ticket.density)
        assert record.start_iteration == 0 and record.network == "ticket"
        assert len(record.curves["alpha"]) == 4
    # Its first copy is the round's own training: the line starts at its test numbers.
    assert measured.instability[1].curves["accuracy"][0] == pytest.approx(
        measured.record(1).final["test_accuracy"])
    loaded = kl.load_result(tmp_path / "run")
    assert loaded.instability == measured.instability
    assert SearchResult.from_json(measured.to_json()).instability == measured.instability
    assert not list((tmp_path / "run" / "stability").glob("*.npz"))  # Copies cleaned up.
    assert "error barrier" in measured.stability_summary()


def test_instability_turned_on_later_measures_the_same_and_resumes(tmp_path):
    first = _search(tmp_path / "on", instability=True).run()
    _search(tmp_path / "later").run()
    later = _search(tmp_path / "later", instability=True).run()  # Retrains only copies.
    assert later.instability == [dataclasses.replace(r, wall_time=later.instability[i].wall_time)
                                 for i, r in enumerate(first.instability)]
    # A measurement lost (killed before its record) is measured again, the same.
    (tmp_path / "on" / "stability" / "001_ticket.json").unlink()
    again = _search(tmp_path / "on", instability=True).run()
    assert again.instability[1].curves == first.instability[1].curves
    search = _search(tmp_path / "on")
    assert search.instability(2).curves == first.instability[2].curves
    with pytest.raises(ValueError, match="round=3"):
        search.instability(3)


def test_the_rewind_step_is_the_earliest_stable_candidate(tmp_path):
    chosen = _search(tmp_path / "c", rewind_candidates=[6, 3], stability_tolerance=0.99).run()
    choice = chosen.rewind_choice
    assert choice["chosen"] == 3 and choice["stable"]
    assert [r.start_iteration for r in choice["candidates"]] == [3, 6]
    # Rewinding there is rewinding to iteration 3 as set.
    fixed = _search(rewind_step=3).run()
    assert _numbers(chosen) == _numbers(fixed)
    assert kl.load_result(tmp_path / "c").rewind_choice == choice
    # Resumed: chosen once, nothing trained again.
    assert _search(tmp_path / "c", rewind_candidates=[3, 6],
                   stability_tolerance=0.99).run().rewind_choice == choice


def test_no_stable_candidate_takes_the_least_unstable():
    records = [_record(0, 0.30), _record(100, 0.05), _record(500, 0.05), _record(900, 0.2)]
    choice = choose_rewind(records, 0.02, "dense")
    assert choice["chosen"] == 100 and not choice["stable"]
    choice = choose_rewind(records, 0.1, "dense")
    assert choice["chosen"] == 100 and choice["stable"]
    assert choose_rewind(records, 0.5, "dense")["chosen"] == 0


def test_candidates_measured_on_the_first_pruned_rounds_masks(tmp_path):
    result = _search(tmp_path / "p", rewind_candidates=[0, 3], stability_network="pruned",
                     rounds=1).run()
    for record in result.rewind_choice["candidates"]:
        assert record.network == "pruned" and record.density == pytest.approx(
            result.record(1).density)
    assert json.loads((tmp_path / "p" / "stability" / "rewind_choice.json").read_text())[
        "candidates"] == [0, 3]


@pytest.mark.parametrize("settings, match", [
    (dict(rewind_candidates=[0, 3], rewind_step=3), "rewind_candidates"),
    (dict(rewind_candidates=[3, 3]), "distinct"),
    (dict(rewind_candidates=[]), "rewind_candidates"),
    (dict(rewind_candidates=[3, 1000]), "rewind_candidates"),
    (dict(stability_tolerance=0), "stability_tolerance"),
    (dict(stability_tolerance=1.0), "stability_tolerance"),
    (dict(path_points=2), "path_points"),
    (dict(stability_network="sparse"), "stability_network"),
    (dict(instability=True, validation_data=None, test_data=None), "test_data"),
])
def test_the_search_refuses_bad_stability_settings_before_training(settings, match,
                                                                   monkeypatch):
    from keras_lottery.search.training import Trainer

    monkeypatch.setattr(Trainer, "train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match=match):
        _search(**settings).run()
