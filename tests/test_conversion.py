"""prunable() and strip(): masked twins in, plain Keras out, same predictions."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import conv_sequential, to_numpy, token_functional

import keras_lottery as kl
from keras_lottery import layers as masked


def layer_types(model):
    return {layer.name: type(layer) for layer in model._flatten_layers(include_self=False)}


def test_sequential_conversion_keeps_weights_and_predictions(image_batch):
    model = conv_sequential()
    converted = kl.prunable(model)
    types = layer_types(converted)
    assert types["conv"] is masked.MaskedConv2D
    assert types["depthwise"] is masked.MaskedDepthwiseConv2D
    assert types["hidden"] is masked.MaskedDense and types["output"] is masked.MaskedDense
    assert types["bn"] is keras.layers.BatchNormalization
    assert types["pool"] is keras.layers.MaxPooling2D
    original = {v.path: to_numpy(v) for v in model.weights}
    for variable in converted.weights:
        if variable.name.endswith("_mask"):
            np.testing.assert_array_equal(to_numpy(variable), 1.0)
        else:
            np.testing.assert_array_equal(to_numpy(variable), original[variable.path])
    np.testing.assert_array_equal(to_numpy(converted(image_batch)), to_numpy(model(image_batch)))


def test_functional_conversion_with_nested_model(token_batch):
    model = token_functional()
    converted = kl.prunable(model)
    types = layer_types(converted)
    assert types["embedding"] is masked.MaskedEmbedding
    assert types["conv1d"] is masked.MaskedConv1D
    assert types["einsum"] is masked.MaskedEinsumDense
    assert types["logits"] is masked.MaskedDense
    assert types["bn"] is keras.layers.BatchNormalization
    head = converted.get_layer("head")
    assert isinstance(head.get_layer("head_dense"), masked.MaskedDense)
    assert sorted(kl.get_masks(converted)) == [
        "conv1d/kernel", "einsum/kernel", "embedding/embeddings",
        "head/head_dense/kernel", "logits/kernel",
    ]
    np.testing.assert_array_equal(to_numpy(converted(token_batch)), to_numpy(model(token_batch)))


def test_conversion_copies_rather_than_shares(image_batch):
    model = conv_sequential()
    before = to_numpy(model(image_batch))
    converted = kl.prunable(model)
    kl.apply_masks(converted, {p: np.zeros(m.shape) for p, m in kl.get_masks(converted).items()})
    converted.get_layer("bn").gamma.assign(np.full((4,), 3.0, "float32"))
    assert not any(isinstance(layer, kl.MaskedLayer) for layer in model.layers)
    np.testing.assert_array_equal(to_numpy(model(image_batch)), before)


def test_exclude_by_name_and_by_function():
    model = token_functional()
    types = layer_types(kl.prunable(model, exclude=["embedding", "head_dense"]))
    assert types["embedding"] is keras.layers.Embedding
    assert types["conv1d"] is masked.MaskedConv1D
    converted = kl.prunable(model, exclude=lambda layer: layer.name == "logits")
    assert layer_types(converted)["logits"] is keras.layers.Dense
    assert isinstance(converted.get_layer("head").get_layer("head_dense"), masked.MaskedDense)
    with pytest.raises(ValueError, match=r"`exclude` to name layers.*Received unknown names: \['nope'\]"):
        kl.prunable(model, exclude=["nope"])


def test_conversion_of_a_masked_model_keeps_its_masks(image_batch):
    converted = kl.prunable(conv_sequential())
    masks = kl.magnitude_prune(kl.get_weights(converted), rate=0.5)
    kl.apply_masks(converted, masks)
    again = kl.prunable(converted)
    for path, mask in kl.get_masks(again).items():
        np.testing.assert_array_equal(mask, masks[path])
    np.testing.assert_array_equal(to_numpy(again(image_batch)), to_numpy(converted(image_batch)))


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def test_subclassed_model_gets_a_clear_error():
    with pytest.raises(ValueError, match=r"subclassed model \(Subclassed\).*masked layers of `keras_lottery.layers`"):
        kl.prunable(Subclassed())
    with pytest.raises(ValueError, match="Sequential or Functional"):
        kl.strip(Subclassed())


def test_strip_bakes_masks_into_plain_layers(token_batch):
    converted = kl.prunable(token_functional())
    masks = kl.magnitude_prune(kl.get_weights(converted), rate=0.6)
    kl.apply_masks(converted, masks)
    # Make the stored weights nonzero where pruned: strip must still zero them.
    for layer in kl.masked_layers(converted):
        for weight, _ in layer.get_prunable_weights():
            weight.assign(to_numpy(weight) + 1.0)
    stripped = kl.strip(converted)
    assert not any(isinstance(layer, kl.MaskedLayer)
                   for layer in stripped._flatten_layers(include_self=False))
    assert not any(v.name.endswith("_mask") for v in stripped.weights)
    stored = {v.path: to_numpy(v) for v in stripped.weights}
    for path, mask in masks.items():
        assert np.all(stored[path][~mask] == 0) and np.all(stored[path][mask] != 0)
    np.testing.assert_array_equal(to_numpy(stripped(token_batch)), to_numpy(converted(token_batch)))


def test_stripped_model_loads_without_keras_lottery(tmp_path, image_batch):
    converted = kl.prunable(conv_sequential())
    kl.apply_masks(converted, kl.magnitude_prune(kl.get_weights(converted), rate=0.5))
    kl.strip(converted).save(tmp_path / "plain.keras")
    np.save(tmp_path / "x.npy", image_batch)
    # A fresh interpreter in which importing keras_lottery fails.
    script = (
        "import sys; sys.modules['keras_lottery'] = None\n"
        "import keras, numpy as np\n"
        f"model = keras.models.load_model({str(tmp_path / 'plain.keras')!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, keras.ops.convert_to_numpy(model(x)))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=os.environ.copy(),
                   capture_output=True, timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), to_numpy(converted(image_batch)),
                               rtol=0, atol=1e-6)
