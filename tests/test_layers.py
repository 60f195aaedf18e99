"""Masked layers: same outputs as Keras with full masks, exact zeros, saving."""

import keras
import numpy as np
import pytest
from helpers import to_numpy

import keras_lottery as kl
from keras_lottery import layers as masked

RNG = np.random.default_rng(0)

# (masked class, Keras class, arguments, input) for every supported layer.
CASES = {
    "dense": (masked.MaskedDense, keras.layers.Dense,
              dict(units=5, activation="relu"), RNG.normal(size=(3, 4))),
    "dense_3d_no_bias": (masked.MaskedDense, keras.layers.Dense,
                         dict(units=2, use_bias=False), RNG.normal(size=(3, 2, 4))),
    "einsum_dense": (masked.MaskedEinsumDense, keras.layers.EinsumDense,
                     dict(equation="abc,cd->abd", output_shape=(None, 5), bias_axes="d"),
                     RNG.normal(size=(3, 2, 4))),
    "conv1d_causal": (masked.MaskedConv1D, keras.layers.Conv1D,
                      dict(filters=3, kernel_size=3, padding="causal", dilation_rate=2),
                      RNG.normal(size=(2, 9, 4))),
    "conv2d_groups": (masked.MaskedConv2D, keras.layers.Conv2D,
                      dict(filters=4, kernel_size=2, groups=2, strides=2, activation="tanh"),
                      RNG.normal(size=(2, 6, 6, 4))),
    "conv3d": (masked.MaskedConv3D, keras.layers.Conv3D,
               dict(filters=3, kernel_size=2, padding="same"), RNG.normal(size=(2, 4, 4, 4, 2))),
    "depthwise_conv2d": (masked.MaskedDepthwiseConv2D, keras.layers.DepthwiseConv2D,
                         dict(kernel_size=3, depth_multiplier=2), RNG.normal(size=(2, 5, 5, 3))),
    "embedding": (masked.MaskedEmbedding, keras.layers.Embedding,
                  dict(input_dim=10, output_dim=4), RNG.integers(0, 10, size=(3, 5))),
}
MASK_NAMES = {masked.MaskedEmbedding: "embeddings_mask"}


def built_pair(name):
    masked_class, keras_class, kwargs, x = CASES[name]
    x = x.astype("float32") if x.dtype.kind == "f" else x.astype("int32")
    masked_layer, keras_layer = masked_class(**kwargs), keras_class(**kwargs)
    masked_layer(x), keras_layer(x)
    for variable in keras_layer.weights:
        twin = next(v for v in masked_layer.weights if v.name == variable.name)
        variable.assign(to_numpy(twin))
    return masked_layer, keras_layer, x


@pytest.mark.parametrize("name", sorted(CASES))
def test_full_mask_gives_keras_outputs_exactly(name):
    masked_layer, keras_layer, x = built_pair(name)
    assert isinstance(masked_layer, type(keras_layer))
    np.testing.assert_array_equal(to_numpy(masked_layer(x)), to_numpy(keras_layer(x)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_nontrainable_mask_per_prunable_weight(name):
    masked_layer, _, _ = built_pair(name)
    mask_name = MASK_NAMES.get(type(masked_layer), "kernel_mask")
    masks = [v for v in masked_layer.weights if v.name.endswith("_mask")]
    assert [v.name for v in masks] == [mask_name]
    assert any(v is masks[0] for v in masked_layer.non_trainable_weights)
    assert not any(v is masks[0] for v in masked_layer.trainable_weights)
    (weight, mask), = masked_layer.get_prunable_weights()
    assert mask is masks[0] and weight.shape == mask.shape
    assert weight.name == mask_name.removesuffix("_mask")
    np.testing.assert_array_equal(to_numpy(mask), np.ones(weight.shape))


@pytest.mark.parametrize("name", sorted(CASES))
def test_mask_is_applied_in_call(name):
    """Outputs equal those of the Keras layer holding `weight * mask`."""
    masked_layer, keras_layer, x = built_pair(name)
    (weight, mask), = masked_layer.get_prunable_weights()
    pattern = RNG.random(weight.shape) < 0.5
    mask.assign(pattern.astype("float32"))
    twin = next(v for v in keras_layer.weights if v.name == weight.name)
    twin.assign(to_numpy(weight) * pattern)
    np.testing.assert_array_equal(to_numpy(masked_layer(x)), to_numpy(keras_layer(x)))


def test_zero_mask_leaves_only_the_bias():
    layer = kl.MaskedDense(3, bias_initializer="ones")
    x = RNG.normal(size=(4, 5)).astype("float32")
    layer(x)
    layer.kernel_mask.assign(np.zeros((5, 3), "float32"))
    np.testing.assert_array_equal(to_numpy(layer(x)), np.ones((4, 3)))
    assert [v.name for v in layer.weights if v.name.endswith("_mask")] == ["kernel_mask"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_round_trip(name):
    masked_layer, _, x = built_pair(name)
    config = masked_layer.get_config()
    clone = type(masked_layer).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(masked_layer)
    assert type(keras.saving.deserialize_keras_object(serialized)) is type(masked_layer)


def test_keras_file_keeps_masks_and_predictions(tmp_path):
    inputs = keras.Input((6,))
    outputs = kl.MaskedDense(2)(kl.MaskedDense(8, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    masks = kl.magnitude_prune(kl.get_weights(model), rate=0.6)
    kl.apply_masks(model, masks)
    x = RNG.normal(size=(5, 6)).astype("float32")
    model.save(tmp_path / "ticket.keras")
    loaded = keras.models.load_model(tmp_path / "ticket.keras")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    for path, mask in kl.get_masks(loaded).items():
        np.testing.assert_array_equal(mask, masks[path])
    for path, weight in kl.get_weights(loaded).items():
        np.testing.assert_array_equal(weight, kl.get_weights(model)[path])
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


def test_lora_and_quantization_are_refused():
    with pytest.raises(ValueError, match="lora_rank"):
        kl.MaskedDense(3, lora_rank=2)
    layer = kl.MaskedDense(3)
    layer.build((None, 4))
    with pytest.raises(NotImplementedError, match="strip"):
        layer.enable_lora(2)
    with pytest.raises(NotImplementedError, match="strip"):
        layer.quantize("int8")
