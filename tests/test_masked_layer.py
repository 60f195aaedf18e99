"""The MaskedLayer protocol for your own layers: declare the prunable weights,
and masks are made after build and applied wherever the layer reads them."""

import keras
import numpy as np
import pytest
from helpers import Bilinear, to_numpy

import keras_lottery as kl

RNG = np.random.default_rng(8)


@keras.saving.register_keras_serializable(package="keras_lottery_tests")
class GatedResidual(kl.MaskedLayer, keras.layers.Layer):
    """A residual block around a plain Dense sublayer, whose kernel it declares."""

    prunable_weights = {"inner.kernel": "dense", "gate": "dense"}

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = keras.layers.Dense(units, name="inner")
        # Made here, not in build: build still runs, and the mask follows it.
        self.gate = self.add_weight(shape=(units,), initializer="ones", name="gate")

    def build(self, input_shape):
        self.inner.build(input_shape)

    def call(self, x):
        return x + self.gate * self.inner(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_declared_weights_get_masks_that_apply_in_call():
    x = RNG.normal(size=(5, 4)).astype("float32")
    layer = Bilinear()
    before = to_numpy(layer(x))
    (weight, mask, kind), = layer.get_prunable_weights()
    assert weight is layer.trainable_weights[0] and layer.w_mask is mask and kind == "dense"
    pattern = RNG.random((4, 4)) < 0.5
    mask.assign(pattern.astype("float32"))
    w = to_numpy(weight) * pattern
    expected = np.sum((x @ w) * x, axis=-1, keepdims=True) + 1.0
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(before, expected)
    np.testing.assert_array_equal(to_numpy(layer.w), w)  # Reads are masked everywhere.


def test_a_path_through_a_sublayer_and_weights_made_in_init():
    x = RNG.normal(size=(5, 3)).astype("float32")
    layer = GatedResidual(3)
    layer(x)
    assert [p.mask.name for p in layer.get_prunable_weights()] == [
        "inner_kernel_mask", "gate_mask"]
    layer.inner_kernel_mask.assign(np.zeros((3, 3), "float32"))
    bias = to_numpy(layer.inner.bias)
    np.testing.assert_allclose(to_numpy(layer(x)), x + bias, rtol=1e-6, atol=1e-6)
    assert isinstance(layer.inner, keras.layers.Dense)
    assert type(layer.inner).__name__ == "Dense"  # Still serializes as Dense.


def test_a_custom_layer_trains_saves_and_is_searched(tmp_path):
    inputs = keras.Input((4,))
    hidden = GatedResidual(4, name="block")(inputs)
    outputs = keras.layers.Dense(1, name="out")(Bilinear(name="bilinear")(hidden))
    model = keras.Model(inputs, outputs)
    masks = kl.random_prune(kl.get_masks(model), rate=0.5, seed=3)
    kl.apply_masks(model, masks)
    model.compile(keras.optimizers.Adam(0.05), "mse")
    x = RNG.normal(size=(32, 4)).astype("float32")
    model.fit(x, x[:, :1], batch_size=8, epochs=2, verbose=0)
    stored = kl.get_weights(model)
    for path, mask in masks.items():
        assert np.all(stored[path][~mask] == 0) and np.all(stored[path][mask] != 0)
    model.save(tmp_path / "custom.keras")
    loaded = keras.models.load_model(tmp_path / "custom.keras")
    for path, mask in kl.get_masks(loaded).items():
        np.testing.assert_array_equal(mask, masks[path])
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-6)
    infos = kl.weight_infos(model)
    assert {path: info.layer_name for path, info in infos.items()} == {
        "block/inner/kernel": "block", "block/gate": "block", "bilinear/w": "bilinear"}


def declaring(prunable_weights, make):
    class Custom(kl.MaskedLayer, keras.layers.Layer):
        def build(self, input_shape):
            make(self, input_shape)

        def call(self, x):
            return x

    Custom.prunable_weights = prunable_weights
    return Custom(name="custom")


@pytest.mark.parametrize("declared, make, received", [
    ({"kernel": "dense"}, lambda layer, shape: None, "'kernel', which after build is missing"),
    ({"kernel": "dense"}, lambda layer, shape: setattr(layer, "kernel", 2.0),
     "'kernel', which after build is a float"),
    ({"kernel": "dense"}, lambda layer, shape: layer.__dict__.update(kernel=OTHER.kernel),
     "'kernel', which after build is a variable of another layer"),
    ({"dense.kernel": "dense"}, lambda layer, shape: setattr(layer, "dense", 3),
     "go through sublayers. Received 'dense.kernel', but 'dense' is int"),
    ({"kernel": "lstm"}, lambda layer, shape: None, r"among \('conv', .*Received 'kernel': 'lstm'"),
])
def test_declared_weights_that_are_not_variables_are_refused(declared, make, received):
    layer = declaring(declared, make)
    with pytest.raises(ValueError, match=received):
        layer.build((None, 3))


OTHER = keras.layers.Dense(2)
OTHER.build((None, 3))


def test_a_masked_layer_without_build_is_refused_at_definition():
    with pytest.raises(TypeError, match="implement `build\\(\\)`"):
        class NoBuild(kl.MaskedLayer, keras.layers.Layer):
            prunable_weights = {"w": "dense"}


class WithProperty(keras.layers.Layer):
    @property
    def kernel(self):  # Computes: a mask on it would silently replace this.
        return self._kernel * 2


@pytest.mark.parametrize("make, error, message", [
    (lambda: type("Collide", (kl.MaskedLayer, keras.layers.Layer), {
        "prunable_weights": {"a_b.kernel": "dense", "a.b_kernel": "dense"},
        "build": lambda self, shape: None}),
     ValueError, "own mask name. Received 'a_b.kernel' and 'a.b_kernel', both 'a_b_kernel_mask'"),
    (lambda: type("Prop", (kl.MaskedLayer, WithProperty), {
        "prunable_weights": {"kernel": "dense"}, "build": lambda self, shape: None}),
     TypeError, "Received 'kernel', a property of Prop's bases"),
    (lambda: type("Method", (kl.MaskedLayer, keras.layers.Layer), {
        "prunable_weights": {"call": "dense"}, "build": lambda self, shape: None}),
     TypeError, "Received 'call', a function of Method's bases"),
    (lambda: type("Kind", (kl.MaskedLayer, keras.layers.Layer), {
        "prunable_weights": {"w": "Dense"}, "build": lambda self, shape: None}),
     ValueError, "Received 'w': 'Dense'"),
])
def test_declarations_that_cannot_work_are_refused_at_definition(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_an_attribute_named_like_a_mask_is_refused():
    class Shadowed(kl.MaskedLayer, keras.layers.Layer):
        prunable_weights = {"w": "dense"}

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.w_mask = None  # Would have hidden the mask, leaving `w` dense.

        def build(self, input_shape):
            self.w = self.add_weight(shape=(3, 3), name="w")

        def call(self, x):
            return x @ self.w

    with pytest.raises(ValueError, match="to get a mask named 'w_mask', a name the layer already uses"):
        Shadowed()(np.ones((2, 3), "float32"))
