"""Every masked twin: Keras' outputs with full masks, masks applied wherever the
weight is read, exact zeros through `fit`, saving, and config round trips."""

import keras
import numpy as np
import pytest
from helpers import to_numpy

import keras_lottery as kl
from keras_lottery import layers as masked
from keras_lottery.masking.conversion import copy_variables

RNG = np.random.default_rng(0)


def normal(*shape):
    return RNG.normal(size=shape).astype("float32")


CELL = ["cell_kernel_mask", "cell_recurrent_kernel_mask"]
CELL_KINDS = ["recurrent_input", "recurrent"]
PROJECTIONS = [f"{p}_dense_kernel_mask" for p in ("query", "key", "value", "output")]

# name: (masked class, arguments, inputs, mask names, kinds), one per twin.
CASES = {
    "dense": (masked.MaskedDense, dict(units=5, activation="relu"), (normal(3, 4),),
              ["kernel_mask"], ["dense"]),
    "dense_3d_no_bias": (masked.MaskedDense, dict(units=2, use_bias=False), (normal(3, 2, 4),),
                         ["kernel_mask"], ["dense"]),
    "einsum_dense": (masked.MaskedEinsumDense,
                     dict(equation="abc,cd->abd", output_shape=(2, 5), bias_axes="d"),
                     (normal(3, 2, 4),), ["kernel_mask"], ["dense"]),
    "conv1d_causal": (masked.MaskedConv1D,
                      dict(filters=3, kernel_size=3, padding="causal", dilation_rate=2),
                      (normal(2, 9, 4),), ["kernel_mask"], ["conv"]),
    "conv2d_groups": (masked.MaskedConv2D,
                      dict(filters=4, kernel_size=2, groups=2, strides=2, activation="tanh"),
                      (normal(2, 6, 6, 4),), ["kernel_mask"], ["conv"]),
    "conv3d": (masked.MaskedConv3D, dict(filters=3, kernel_size=2, padding="same"),
               (normal(2, 4, 4, 4, 2),), ["kernel_mask"], ["conv"]),
    "conv1d_transpose": (masked.MaskedConv1DTranspose, dict(filters=3, kernel_size=3, strides=2),
                         (normal(2, 5, 4),), ["kernel_mask"], ["conv"]),
    "conv2d_transpose": (masked.MaskedConv2DTranspose,
                         dict(filters=3, kernel_size=2, strides=2, padding="same"),
                         (normal(2, 4, 4, 2),), ["kernel_mask"], ["conv"]),
    "conv3d_transpose": (masked.MaskedConv3DTranspose, dict(filters=2, kernel_size=2),
                         (normal(2, 3, 3, 3, 2),), ["kernel_mask"], ["conv"]),
    "depthwise_conv1d": (masked.MaskedDepthwiseConv1D, dict(kernel_size=3, depth_multiplier=2),
                         (normal(2, 7, 3),), ["kernel_mask"], ["conv"]),
    "depthwise_conv2d": (masked.MaskedDepthwiseConv2D, dict(kernel_size=3, depth_multiplier=2),
                         (normal(2, 5, 5, 3),), ["kernel_mask"], ["conv"]),
    "separable_conv1d": (masked.MaskedSeparableConv1D,
                         dict(filters=4, kernel_size=3, depth_multiplier=2),
                         (normal(2, 7, 3),),
                         ["depthwise_kernel_mask", "pointwise_kernel_mask"], ["conv", "conv"]),
    "separable_conv2d": (masked.MaskedSeparableConv2D, dict(filters=4, kernel_size=2),
                         (normal(2, 5, 5, 3),),
                         ["depthwise_kernel_mask", "pointwise_kernel_mask"], ["conv", "conv"]),
    "embedding": (masked.MaskedEmbedding, dict(input_dim=10, output_dim=4),
                  (RNG.integers(0, 10, size=(3, 5)).astype("int32"),),
                  ["embeddings_mask"], ["embedding"]),
    "lstm": (masked.MaskedLSTM, dict(units=4, return_sequences=True), (normal(2, 5, 3),),
             CELL, CELL_KINDS),
    "lstm_implementation_1": (masked.MaskedLSTM, dict(units=3, implementation=1),
                              (normal(2, 4, 3),), CELL, CELL_KINDS),
    "gru": (masked.MaskedGRU, dict(units=4), (normal(2, 5, 3),), CELL, CELL_KINDS),
    "gru_reset_before": (masked.MaskedGRU, dict(units=3, reset_after=False, go_backwards=True),
                         (normal(2, 4, 3),), CELL, CELL_KINDS),
    "simple_rnn": (masked.MaskedSimpleRNN, dict(units=4, return_sequences=True),
                   (normal(2, 5, 3),), CELL, CELL_KINDS),
    "conv_lstm1d": (masked.MaskedConvLSTM1D, dict(filters=2, kernel_size=3),
                    (normal(2, 3, 6, 2),), CELL, CELL_KINDS),
    "conv_lstm2d": (masked.MaskedConvLSTM2D, dict(filters=2, kernel_size=2),
                    (normal(2, 3, 4, 4, 2),), CELL, CELL_KINDS),
    "multi_head_attention": (masked.MaskedMultiHeadAttention, dict(num_heads=2, key_dim=3),
                             (normal(2, 4, 6), normal(2, 5, 6)), PROJECTIONS, ["attention"] * 4),
    "multi_head_attention_gated": (masked.MaskedMultiHeadAttention,
                                   dict(num_heads=2, key_dim=3, use_gate=True),
                                   (normal(2, 4, 6), normal(2, 4, 6)),
                                   PROJECTIONS + ["gate_dense_kernel_mask"],
                                   ["attention"] * 5),
    "group_query_attention": (masked.MaskedGroupQueryAttention,
                              dict(head_dim=3, num_query_heads=4, num_key_value_heads=2),
                              (normal(2, 4, 6), normal(2, 5, 6)), PROJECTIONS, ["attention"] * 4),
}
if not hasattr(keras.layers.MultiHeadAttention(2, 2), "_use_gate"):  # Keras before the gate
    del CASES["multi_head_attention_gated"]


def built_pair(name):
    """The masked layer and its Keras twin, built, holding the same variables."""
    masked_class, kwargs, inputs, _, _ = CASES[name]
    keras_class = next(c for c, twin in masked.MASKED_TWINS.items() if twin is masked_class)
    masked_layer, keras_layer = masked_class(**kwargs), keras_class(**kwargs)
    masked_layer(*inputs), keras_layer(*inputs)
    copy_variables(masked_layer, keras_layer)
    return masked_layer, keras_layer, inputs


def random_masks(layer, density=0.5):
    return {p.weight.path: RNG.random(p.weight.shape) < density
            for p in layer.get_prunable_weights()}


CELLS = (masked.MaskedLSTMCell, masked.MaskedGRUCell, masked.MaskedSimpleRNNCell)


def test_every_twin_is_tested():
    tested = {case[0] for case in CASES.values()} | set(CELLS)
    assert set(masked.MASKED_TWINS.values()) - tested == {masked.MaskedConvLSTM3D}


def test_cells_inside_an_rnn(tmp_path):
    """Masked cells own their masks; stacked in an RNN they keep every invariant."""
    inputs = keras.Input((5, 3))
    rnn = keras.layers.RNN([cell(4, name=f"c{i}") for i, cell in enumerate(CELLS)], name="rnn")
    model = keras.Model(inputs, keras.layers.Dense(1)(rnn(inputs)))
    x = normal(8, 5, 3)
    masks = kl.random_prune(kl.get_masks(model), rate=0.5, seed=4)
    assert len(masks) == 6 and {info.kind for info in kl.weight_infos(model).values()} == {
        "recurrent_input", "recurrent"}
    kl.apply_masks(model, masks)
    plain = kl.strip(model)
    np.testing.assert_array_equal(to_numpy(plain(x)), to_numpy(model(x)))
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(x, np.ones((8, 1)), batch_size=4, epochs=2, verbose=0)
    stored = kl.get_weights(model)
    for path, mask in masks.items():
        assert np.all(stored[path][~mask] == 0) and np.count_nonzero(stored[path][mask]) == mask.sum()
    model.save(tmp_path / "cells.keras")
    loaded = keras.models.load_model(tmp_path / "cells.keras")
    # By position: Keras reloads stacked cells under shorter paths ("c0/kernel").
    for loaded_mask, mask in zip(kl.get_masks(loaded).values(), masks.values(), strict=True):
        np.testing.assert_array_equal(loaded_mask, mask)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(CASES))
def test_full_mask_gives_keras_outputs_exactly(name):
    masked_layer, keras_layer, inputs = built_pair(name)
    assert isinstance(masked_layer, type(keras_layer))
    np.testing.assert_array_equal(to_numpy(masked_layer(*inputs)), to_numpy(keras_layer(*inputs)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_nontrainable_mask_per_prunable_weight(name):
    masked_layer, _, _ = built_pair(name)
    _, _, _, mask_names, kinds = CASES[name]
    masks = [v for v in masked_layer.weights if v.name.endswith("_mask")]
    assert sorted(v.name for v in masks) == sorted(mask_names)
    trainable = {id(v) for v in masked_layer.trainable_weights}
    prunable = masked_layer.get_prunable_weights()
    assert [p.mask.name for p in prunable] == mask_names
    assert [p.kind for p in prunable] == kinds
    for weight, mask, _ in prunable:
        assert id(mask) not in trainable and id(weight) in trainable
        assert tuple(weight.shape) == tuple(mask.shape)
        np.testing.assert_array_equal(to_numpy(mask), np.ones(weight.shape))


@pytest.mark.parametrize("name", sorted(CASES))
def test_mask_is_applied_wherever_the_weight_is_read(name):
    """Outputs equal those of the Keras layer holding `weight * mask`."""
    masked_layer, keras_layer, inputs = built_pair(name)
    for (weight, mask, _), pattern in zip(masked_layer.get_prunable_weights(),
                                          random_masks(masked_layer).values()):
        mask.assign(pattern.astype("float32"))
    copy_variables(masked_layer, keras_layer)  # Bakes the masks in.
    np.testing.assert_array_equal(to_numpy(masked_layer(*inputs)), to_numpy(keras_layer(*inputs)))


def model_around(name):
    """A trainable model: the case's masked layer, then a dense head."""
    masked_class, kwargs, inputs, _, _ = CASES[name]
    symbolic = [keras.Input(x.shape[1:], dtype=x.dtype) for x in inputs]
    hidden = masked_class(**kwargs, name="under_test")(*symbolic)
    outputs = keras.layers.Dense(1)(keras.layers.Flatten()(hidden))
    return keras.Model(symbolic, outputs), [np.concatenate([x] * 4) for x in inputs]


@pytest.mark.parametrize("name", sorted(CASES))
def test_pruned_weights_stay_exactly_zero_through_fit(name):
    model, x = model_around(name)
    layer = model.get_layer("under_test")
    masks = random_masks(layer)
    kl.apply_masks(model, masks)
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(x, np.ones((len(x[0]), 1)), batch_size=4, epochs=2, verbose=0)
    stored = kl.get_weights(model)
    for path, mask in masks.items():
        assert np.all(stored[path][~mask] == 0), f"{path} trained through its mask"
        assert np.count_nonzero(stored[path][mask]) == mask.sum()


@pytest.mark.parametrize("name", sorted(CASES))
def test_keras_file_keeps_masks_and_predictions(name, tmp_path):
    model, x = model_around(name)
    masks = random_masks(model.get_layer("under_test"))
    kl.apply_masks(model, masks)
    model.save(tmp_path / "ticket.keras")
    loaded = keras.models.load_model(tmp_path / "ticket.keras")
    assert type(loaded.get_layer("under_test")) is CASES[name][0]
    for path, mask in kl.get_masks(loaded).items():
        np.testing.assert_array_equal(mask, masks[path])
    for path, weight in kl.get_weights(loaded).items():
        np.testing.assert_array_equal(weight, kl.get_weights(model)[path])
    # Not bit-exact for every layer: Keras' LSTM config drops `implementation`.
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_round_trip(name):
    masked_layer, _, _ = built_pair(name)
    config = masked_layer.get_config()
    clone = type(masked_layer).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(masked_layer)
    assert type(keras.saving.deserialize_keras_object(serialized)) is type(masked_layer)


def test_inner_layers_still_serialize_as_plain_keras():
    layer, _, _ = built_pair("lstm")
    assert type(layer.cell).__name__ == "LSTMCell" and isinstance(layer.cell, keras.layers.LSTMCell)
    cell = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer.cell))
    assert type(cell) is keras.layers.LSTMCell


def test_zero_mask_leaves_only_the_bias():
    layer = kl.MaskedDense(3, bias_initializer="ones")
    x = normal(4, 5)
    layer(x)
    layer.kernel_mask.assign(np.zeros((5, 3), "float32"))
    np.testing.assert_array_equal(to_numpy(layer(x)), np.ones((4, 3)))
    np.testing.assert_array_equal(to_numpy(layer.kernel), np.zeros((5, 3)))


def test_lora_and_quantization_are_refused():
    with pytest.raises(ValueError, match=r"does not support LoRA.*Received: lora_rank=2"):
        kl.MaskedDense(3, lora_rank=2)(keras.Input((4,)))
    with pytest.raises(ValueError, match=r"cannot be quantized.*dtype='int8_from_float32'"):
        kl.MaskedDense(3, dtype="int8_from_float32")(keras.Input((4,)))
    layer = kl.MaskedDense(3)
    layer.build((None, 4))
    with pytest.raises(NotImplementedError, match="strip"):
        layer.enable_lora(2)
    with pytest.raises(NotImplementedError, match="strip"):
        layer.quantize("int8")
