"""keras_lottery.structured.shrink: the structurally pruned units physically removed."""

import inspect
import warnings

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.structured import unit_masks as sp
from keras_lottery.layers import MaskedDense
from keras_lottery.structured.unit_groups import unit_groups

from helpers import attention_net, residual_net


def _prune(model, keep_by_group):
    """Sets masks with the units where `keep` is False removed, group by group."""
    groups = {g.name: g for g in unit_groups(model)}
    masks = kl.get_masks(model)
    for name, keep in keep_by_group.items():
        masks = sp.remove_units(groups[name], np.array(keep, bool), masks)
    kl.apply_masks(model, masks)
    return model


def _randomize_batchnorm(model):
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for variable in layer.variables:
                value = rng.uniform(0.5, 1.5, variable.shape) if "variance" in variable.path or (
                    "gamma" in variable.path) else rng.normal(size=variable.shape)
                variable.assign(value.astype("float32"))


def _reloaded(model, tmp_path):
    path = tmp_path / "small.keras"
    model.save(path)
    return keras.models.load_model(path)


def test_a_residual_conv_net_shrinks_and_predicts_the_same(tmp_path):
    model = residual_net()
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 2)).astype("float32")
    model(x)
    _randomize_batchnorm(model)
    keep = {"stem": [1, 0, 1, 1, 0, 1], "inner": [0, 1, 1, 0], "hidden": [1, 1, 0, 1, 1]}
    _prune(model, keep)
    small = kl.shrink(model)
    layers = {layer.name: layer for layer in small.layers}
    assert layers["stem"].filters == 4 and layers["back"].filters == 4
    assert layers["inner"].filters == 2 and layers["hidden"].units == 4
    assert layers["stem_bn"].gamma.shape == (4,) and layers["out"].kernel.shape == (4, 3)
    assert layers["hidden"].kernel.shape == (16 * 4, 4)  # Flatten: 16 positions x 4 channels.
    assert all(type(layer).__module__.startswith("keras.") for layer in small.layers)
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    again = _reloaded(small, tmp_path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), small.predict(x, verbose=0))
    assert small.count_params() < kl.strip(model).count_params()
    report = {tuple(r.layers): (r.units, r.kept) for r in kl.shrink_report(model)}
    assert report[("stem", "back")] == (6, 4) and report[("out",)] == (3, 3)


def test_attention_heads_shrink(tmp_path):
    model = attention_net()
    x = np.random.default_rng(0).normal(size=(3, 5, 8)).astype("float32")
    model(x)
    _prune(model, {"attention": [1, 0, 1, 0]})
    small = kl.shrink(model)
    assert small.get_layer("attention").num_heads == 2
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(_reloaded(small, tmp_path).predict(x, verbose=0),
                                  small.predict(x, verbose=0))


def test_gated_attention_heads_shrink():
    if "use_gate" not in inspect.signature(keras.layers.MultiHeadAttention).parameters:
        pytest.skip("this Keras has no gated attention (use_gate came after 3.11)")
    inputs = keras.Input((5, 8))
    x = kl.layers.MaskedMultiHeadAttention(num_heads=3, key_dim=2, use_gate=True,
                                           name="attention")(inputs, inputs)
    model = keras.Model(inputs, MaskedDense(2, name="out")(keras.layers.Flatten()(x)))
    x = np.random.default_rng(0).normal(size=(3, 5, 8)).astype("float32")
    model(x)
    _prune(model, {"attention": [0, 1, 1]})
    small = kl.shrink(model)
    assert small.get_layer("attention").num_heads == 2
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_a_search_ticket_shrinks():
    model = keras.Sequential([keras.Input((10,)), MaskedDense(16, activation="relu", name="a"),
                              MaskedDense(8, activation="relu", name="b"), MaskedDense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(32, 10)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    search = kl.TicketSearch(model, x, y, rounds=1, prune_rates=0.5, structure="neurons",
                             epochs=1, batch_size=8, verbose=0)
    search.run()
    ticket = search.ticket(1)
    small = kl.shrink(ticket)
    assert [layer.units for layer in small.layers] == [8, 4, 2]
    np.testing.assert_allclose(small.predict(x, verbose=0), ticket.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_dead_units_it_cannot_remove_are_kept_and_named():
    inputs = keras.Input((4,))
    x = MaskedDense(6, name="fc")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    model = keras.Model(inputs, MaskedDense(2, name="out")(x))
    masks = kl.get_masks(model)
    fc = next(p for p in masks if "fc" in p)
    masks[fc][:, 1] = False  # Unit 1 of `fc` emits its bias only, normalized with the others.
    kl.apply_masks(model, masks)
    with pytest.warns(UserWarning, match=r"kept 1 dead neurons of \['fc'\].*LayerNormalization"):
        small = kl.shrink(model)
    assert small.get_layer("fc").units == 6
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        kl.shrink(model, verbose=False)


def test_shrink_refuses_a_subclassed_model():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = MaskedDense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="`shrink\\(\\)` expected a Sequential or Functional"):
        kl.shrink(net)
