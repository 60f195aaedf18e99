"""Structured tickets: unit groups, structured pruning and the search with a structure."""

import json

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.structured import unit_masks as sp
from keras_lottery.layers import MaskedDense
from keras_lottery.pruning.rules import keep_count
from keras_lottery.structured.structures import Structure, as_structure, plan
from keras_lottery.structured.unit_groups import unit_groups

from helpers import attention_net, residual_net


def mlp(hidden=(12, 8), inputs=20, name="mlp"):
    layers = [keras.Input((inputs,))] + [
        MaskedDense(units, activation="relu", name=f"fc{i + 1}") for i, units in enumerate(hidden)]
    model = keras.Sequential(layers + [MaskedDense(3, name="out")], name=name)
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data(n=64, features=20):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")


def _by_layer(masks):
    """`{layer name: mask}` of a model whose layers hold one kernel each."""
    return {path.split("/")[-2]: mask for path, mask in masks.items()}


def _group(groups, name):
    return next(g for g in groups if g.name == name)


def test_unit_groups_couple_channels_through_batchnorm_additions_and_flatten():
    groups = unit_groups(residual_net())
    stem = _group(groups, "stem")
    assert stem.kind == "filters" and stem.units == 6 and stem.blocked is None
    assert sorted(layer.name for layer in stem.layers) == ["back", "stem"]  # Added together.
    assert sorted(bn.name for bn in stem.per_channel) == ["back_bn", "stem_bn"]
    readers = {layer.name: piece.axis for layer, piece in stem.readers}
    assert readers == {"inner": -2, "hidden": 0}  # `hidden` through the Flatten.
    assert [layer.name for layer, _ in _group(groups, "inner").readers] == ["back"]
    assert _group(groups, "out").blocked == "it is a model output"
    heads = unit_groups(attention_net())[0]
    assert heads.kind == "heads" and heads.units == 4
    assert [p.axis for p in heads.producers] == [1, 1, 1] and heads.consumers[0].axis == 0


def test_a_layer_that_mixes_channels_blocks_the_group():
    inputs = keras.Input((4,))
    x = MaskedDense(6, name="fc")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    model = keras.Model(inputs, MaskedDense(2, name="out")(x))
    assert "LayerNormalization 'norm'" in _group(unit_groups(model), "fc").blocked


def test_removing_units_zeroes_producers_and_readers():
    model = residual_net()
    groups = unit_groups(model)
    stem = _group(groups, "stem")
    masks = {p: np.ones(v.shape, bool) for p, v in kl.get_masks(model).items()}
    keep = np.array([True, False, True, True, False, True])
    new = sp.remove_units(stem, keep, masks)
    by_layer = {p.split("/")[-2]: m for p, m in new.items()}
    for name in ("stem", "back"):
        assert not by_layer[name][..., ~keep].any() and by_layer[name][..., keep].all()
    assert not by_layer["inner"][:, :, ~keep, :].any()
    hidden = by_layer["hidden"].reshape(16, 6, 5)  # Flatten: channels fastest.
    assert not hidden[:, ~keep].any() and hidden[:, keep].all()
    assert sp.alive_units(stem, new).tolist() == keep.tolist()


def test_n_m_and_block_patterns_are_exact():
    rng = np.random.default_rng(1)
    scores = rng.random((8, 6))
    full = np.ones((8, 6), bool)
    spec = as_structure("2:4")
    three = sp.pattern_prune(scores, full, spec, 0, 0.7)  # keep_count(4, 0.7) = 3
    runs = three.T.reshape(6, 2, 4)
    assert (runs.sum(-1) == 3).all()
    two = sp.pattern_prune(scores, three, spec, 0, 0.1)  # Never below N = 2.
    assert (two.T.reshape(6, 2, 4).sum(-1) == 2).all() and not (two & ~three).any()
    kept_scores = np.where(two, scores, np.inf).T.reshape(6, 2, 4).min(-1)
    dropped = np.where(~two, scores, -np.inf).T.reshape(6, 2, 4).max(-1)
    assert (kept_scores >= dropped).all()  # The largest two of every four.
    blocks = sp.pattern_prune(scores, full, as_structure("blocks:2x3"), 0, 0.5)
    grid = blocks.reshape(4, 2, 2, 3)
    assert all(grid[i, :, j].all() or not grid[i, :, j].any() for i in range(4) for j in range(2))
    assert blocks.sum() == keep_count(8, 0.5) * 6


def test_bn_gamma_scores_prune_the_smallest_gammas():
    model = residual_net()
    model(np.zeros((1, 8, 8, 2)))
    gammas = {"stem_bn": [1.0, 0.1, 2.0, 0.05, 1.0, 3.0], "back_bn": [0.5, 0.1, 0.1, 0.1, 2, 0]}
    for name, value in gammas.items():
        model.get_layer(name).gamma.assign(np.array(value, "float32"))
    rates = {p: 0.5 for p in kl.get_masks(model)}
    structure = Structure("filters", score="bn_gamma")
    the_plan = plan(model, structure, rates)
    masks, weights = kl.get_masks(model), kl.get_weights(model)
    stem = _group([g for g, _, _ in the_plan.groups], "stem")
    found = {g.name: [np.abs(keras.ops.convert_to_numpy(bn.gamma)) for bn in g.per_channel]
             for g, _, _ in the_plan.groups}
    new = sp.structured_masks(the_plan, masks, {p: np.abs(w) for p, w in weights.items()}, rates,
                              {p: 1.0 for p in masks}, sp.start_units(the_plan, masks), 1, found)
    # |gamma| summed over both BatchNormalizations: 1.5, 0.2, 2.1, 0.15, 3, 3 -> keep 3.
    assert sp.alive_units(stem, new).tolist() == [False, False, True, False, True, True]


def test_search_prunes_whole_neurons_down_the_ladder(tmp_path):
    model = mlp()
    x, y = _data()
    search = kl.TicketSearch(model, x, y, rounds=2, prune_rates=kl.PruneRates(
        0.25, by_kind={"output": 0.0}), structure="neurons", controls=["random_pruning"],
        epochs=1, batch_size=16, verbose=0, directory=tmp_path / "run")
    result = search.run()
    groups = {g.name: g for g in unit_groups(search.model)}
    theta0 = search.theta0
    for round_ in (1, 2):
        masks = _by_layer(search.masks(round_))
        rows = np.ones(20, bool)  # The inputs a layer still reads.
        for name, units in (("fc1", 12), ("fc2", 8)):
            alive = sp.alive_units(groups[name], search.masks(round_))
            assert alive.sum() == keep_count(units, 0.75 ** round_)
            kernel = masks[name]
            assert not kernel[:, ~alive].any() and kernel[rows][:, alive].all()  # Whole neurons.
            rows = alive
            reader = {"fc1": "fc2", "fc2": "out"}[name]
            assert not masks[reader][~alive].any()  # And what reads them.
        control = _by_layer(search.masks(round_, "random_pruning"))
        for name in ("fc1", "fc2"):
            alive = control[name].any(axis=0)
            assert alive.sum() == masks[name].any(axis=0).sum()
            assert not control[name][:, ~alive].any()
        assert {p: int(m.sum()) for p, m in control.items()} == {
            p: int(m.sum()) for p, m in masks.items()}
        assert any((control[p] != masks[p]).any() for p in masks)
        # The ticket: θ0 where kept, exact zeros elsewhere.
        ticket = kl.get_weights(search.ticket(round_))
        for path, mask in search.masks(round_).items():
            np.testing.assert_array_equal(ticket[path], np.where(mask, theta0[path], 0))
    assert [r.kind for r in result.records] == ["ticket"] + ["ticket", "random_pruning"] * 2
    saved = json.loads((tmp_path / "run" / "search.json").read_text())["config"]
    assert saved["structure"]["kind"] == "neurons"
    with pytest.raises(ValueError, match="structure"):  # Resumed with another structure.
        kl.TicketSearch(mlp(), x, y, rounds=2, structure="2:4", epochs=1, batch_size=16,
                        verbose=0, directory=tmp_path / "run").run()


def test_one_shot_n_m_and_per_layer_structures():
    x, y = _data()
    search = kl.TicketSearch(mlp(), x, y, one_shot=[0.5], structure="2:4", epochs=1,
                             batch_size=16, verbose=0)
    search.run()
    masks = search.masks(1)
    assert kl.pruning.density(masks) <= 0.5
    for path, mask in masks.items():
        assert (mask.T.reshape(mask.shape[1], -1, 4).sum(-1) == 2).all(), path
    mixed = kl.TicketSearch(mlp(), x, y, rounds=1, structure={"fc1": "neurons"},
                            prune_rates=0.5, epochs=1, batch_size=16, verbose=0)
    mixed.run()
    masks = _by_layer(mixed.masks(1))
    alive = masks["fc1"].any(axis=0)
    assert alive.sum() == 6 and masks["fc1"][:, alive].all()
    # The other layers weight by weight, within what fc1's neurons left them.
    assert not masks["fc2"][~alive].any() and masks["fc2"].sum() == keep_count(96, 0.5)


@pytest.mark.parametrize("structure, settings, match", [
    ({"fc1": "heads"}, {}, "layer 'fc1'.*has no heads"),
    ({"fc1": "filters"}, {}, "layer 'fc1'.*no filters: its units are neurons"),
    ({"out": "neurons"}, {}, "layer 'out'.*it is a model output"),
    ({"nope": "neurons"}, {}, "unknown layers \\['nope'\\]"),
    ("4:4", {}, "N:M with 1 <= N < M. Received: 4:4"),
    ("2:4", {"hidden": (12, 6)},
     "'2:4' for layer 'out'.*divisible by M=4.*\\(6, 3\\).*\\{'fc1': '2:4', 'fc2': '2:4'\\}"),
    ("filters", {}, "structure 'filters' can prune"),
    ("blocks:3", {}, "blocks:RxC"),
    ("neurons", {"budget": "global", "prune_rates": 0.2}, "budget='uniform'"),
    ("neurons", {"criterion": "snip", "one_shot": [0.5]}, "prunes at initialization"),
    ("neurons", {"transfer": "masks"}, "`structure`="),
    ("neurons", {"score": "l3"}, "`score` among"),
    ("neurons", {"one_shot": [0.01]}, "`one_shot` at or above 0.0[0-9]+, the lowest density"),
    ("2:4", {"target_density": 0.3}, "`target_density` at or above 0.5000, the lowest"),
])
def test_structures_a_model_cannot_take_are_refused_before_training(structure, settings,
                                                                    match):
    x, y = _data()
    model = mlp(hidden=settings.pop("hidden", (12, 8)))
    model(x[:1])
    weights = [keras.ops.convert_to_numpy(v) for v in model.weights]
    if settings.get("transfer") == "masks":
        settings["transfer"] = [kl.get_masks(model)]
    score = settings.pop("score", None)
    if score is not None:  # The structure's own score, refused as it is built.
        with pytest.raises(ValueError, match=match):
            kl.Structure(structure, score=score)
    else:
        with pytest.raises(ValueError, match=match):
            kl.TicketSearch(model, x, y, structure=structure, epochs=1, verbose=0, **settings)
    for before, variable in zip(weights, model.weights):  # Nothing trained.
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(variable))


def test_an_addition_written_as_plus_couples_too_and_shrinks():
    inputs = keras.Input((6,))
    a = MaskedDense(4, name="a")(inputs)
    b = MaskedDense(4, name="b")(inputs)
    model = keras.Model(inputs, MaskedDense(2, name="out")(
        keras.ops.cumsum(keras.ops.relu(a), axis=-1) * 0 + (a + b)))
    group = _group(unit_groups(model), "a")
    assert group.blocked and "Cumsum" in group.blocked  # Mixes channels; relu does not.
    model = keras.Model(inputs, MaskedDense(2, name="out2")(a + b))
    group = _group(unit_groups(model), "a")
    assert group.blocked is None and sorted(layer.name for layer in group.layers) == ["a", "b"]
    masks = sp.remove_units(group, np.array([True, False, True, False]), kl.get_masks(model))
    kl.apply_masks(model, masks)
    small = kl.shrink(model)
    assert small.get_layer("a").units == 2 and small.get_layer("b").units == 2
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_the_inverted_control_keeps_the_lowest_norm_units():
    x, y = _data()
    search = kl.TicketSearch(mlp(), x, y, rounds=1, prune_rates=kl.PruneRates(
        0.5, by_kind={"output": 0.0}), structure="neurons", controls=["inverted"], epochs=1,
        batch_size=16, verbose=0)
    search.run()
    ticket = _by_layer(search.masks(1))["fc1"].any(axis=0)
    inverted = _by_layer(search.masks(1, "inverted"))["fc1"].any(axis=0)
    assert ticket.sum() == inverted.sum() == 6 and not (ticket & inverted).any()


def test_softmax_couples_channels_so_it_blocks_the_group():
    inputs = keras.Input((4,))
    x = MaskedDense(5, name="fc")(inputs)
    x = keras.layers.Activation("softmax")(x)
    model = keras.Model(inputs, MaskedDense(2, name="out")(x))
    assert "softmax" in _group(unit_groups(model), "fc").blocked
    hidden = keras.Sequential([keras.Input((4,)), MaskedDense(5, activation="softmax", name="s"),
                               MaskedDense(2, name="out")])
    assert "softmax" in _group(unit_groups(hidden), "s").blocked
    # A softmax on a reader's own outputs (LeNet's output layer) does not touch them.
    read = keras.Sequential([keras.Input((4,)), MaskedDense(5, activation="relu", name="h"),
                             MaskedDense(3, activation="softmax", name="out")])
    assert _group(unit_groups(read), "h").blocked is None


def test_refusals_name_the_real_reason():
    inputs = keras.Input((3, 8))
    x = kl.layers.MaskedGroupQueryAttention(head_dim=2, num_query_heads=4, num_key_value_heads=2,
                                            name="gqa")(inputs, inputs)
    model = keras.Model(inputs, MaskedDense(2, name="out")(keras.layers.Flatten()(x)))
    with pytest.raises(ValueError, match="'gqa'.*heads are not supported.*shared"):
        plan(model, {"gqa": Structure("heads")}, {p: 0.2 for p in kl.get_masks(model)})
    with pytest.raises(ValueError, match="can prune.*'gqa'.*not supported"):
        plan(model, Structure("heads"), {p: 0.2 for p in kl.get_masks(model)})
    inner = keras.Sequential([keras.Input((4,)), MaskedDense(3, name="inner")], name="nested")
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, MaskedDense(2, name="out")(inner(inputs)))
    with pytest.raises(ValueError, match="'inner'.*an output of the nested model 'nested'"):
        plan(outer, {"inner": Structure("neurons")}, {p: 0.2 for p in kl.get_masks(outer)})


def test_bn_gamma_through_the_search_and_its_inverted_control():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, 32)
    model = residual_net()
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    class Gammas(keras.callbacks.Callback):  # |gamma| of both BatchNormalizations, trained.
        found = []

        def on_train_end(self, logs=None):
            self.found.append(sum(np.abs(keras.ops.convert_to_numpy(
                self.model.get_layer(name).gamma)) for name in ("stem_bn", "back_bn")))

    search = kl.TicketSearch(model, x, y, rounds=1, prune_rates=kl.PruneRates(
        0.5, by_kind={"output": 0.0, "dense": 0.0}), structure=kl.Structure("filters", score="bn_gamma"), controls=["inverted"], epochs=1, batch_size=8, verbose=0,
        callbacks=[Gammas()])
    search.run()
    stem = _group(unit_groups(search.model), "stem")
    ticket = sp.alive_units(stem, search.masks(1))
    inverted = sp.alive_units(stem, search.masks(1, "inverted"))
    assert ticket.sum() == inverted.sum() == 3 and not (ticket & inverted).any()
    # The ticket keeps the largest |gamma| summed over both, as round 0 trained them.
    assert set(np.flatnonzero(ticket)) == set(np.argsort(Gammas.found[0])[-3:])
