"""prunable() and strip(): masked twins in, plain Keras out, same predictions."""

import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from helpers import (
    Bilinear,
    CallOrderNet,
    attention_zoo,
    conv1d_zoo,
    conv2d_zoo,
    conv_sequential,
    nested_shared_zoo,
    recurrent_zoo,
    to_numpy,
    token_functional,
)

import keras_lottery as kl
from keras_lottery import layers as masked
from keras_lottery.masking.conversion import copy_variables


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


def test_a_subclassed_model_without_a_config_is_masked_in_place():
    model = Subclassed()
    with pytest.raises(ValueError, match=r"Expected a built model. Received Subclassed"):
        kl.prunable(model, in_place=True)
    x = np.random.default_rng(3).normal(size=(4, 3)).astype("float32")
    before = to_numpy(model(x))
    # Its config cannot rebuild it (its constructor takes no `name`): no copy.
    with pytest.raises(ValueError, match=r"(?s)Received Subclassed 'subclassed\w*', whose "
                                         r"`from_config\(get_config\(\)\)` raises.*"
                                         r"`prunable\(model, in_place=True\)`"):
        kl.prunable(model)
    assert kl.prunable(model, in_place=True) is model
    assert type(model.dense) is masked.MaskedDense and isinstance(model, Subclassed)
    np.testing.assert_array_equal(to_numpy(model(x)), before)
    kl.apply_masks(model, kl.random_prune(kl.get_masks(model), rate=0.5, seed=0))
    pruned = to_numpy(model(x))
    with pytest.raises(ValueError, match=r"`strip\(model, in_place=True\)`"):
        kl.strip(model)
    assert kl.strip(model, in_place=True) is model
    assert type(model.dense) is keras.layers.Dense and type(model) is Subclassed
    assert not any(v.name.endswith("_mask") for v in model.weights)
    np.testing.assert_array_equal(to_numpy(model(x)), pruned)


def test_a_subclassed_model_exports_by_copying_its_variables():
    x = np.random.default_rng(2).normal(size=(4, 6)).astype("float32")
    model, plain = CallOrderNet(), CallOrderNet(masked=False)
    model(x), plain(x)
    masks = kl.random_prune(kl.get_masks(model), rate=0.5, seed=0)
    kl.apply_masks(model, masks)
    for layer in kl.masked_layers(model):  # Stored values that strip must zero.
        for weight, _, _ in layer.get_prunable_weights():
            weight.assign(to_numpy(weight) + 1.0)
    copy_variables(model, plain)
    np.testing.assert_allclose(to_numpy(plain(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-6)
    body_mask = next(mask for path, mask in masks.items() if path.endswith("body/kernel"))
    assert np.all(to_numpy(plain.body.kernel)[~body_mask] == 0)


def test_strip_bakes_masks_into_plain_layers(token_batch):
    converted = kl.prunable(token_functional())
    masks = kl.magnitude_prune(kl.get_weights(converted), rate=0.6)
    kl.apply_masks(converted, masks)
    # Make the stored weights nonzero where pruned: strip must still zero them.
    for layer in kl.masked_layers(converted):
        for weight, _, _ in layer.get_prunable_weights():
            weight.assign(to_numpy(weight) + 1.0)
    stripped = kl.strip(converted)
    assert not any(isinstance(layer, kl.MaskedLayer)
                   for layer in stripped._flatten_layers(include_self=False))
    assert not any(v.name.endswith("_mask") for v in stripped.weights)
    stored = {v.path: to_numpy(v) for v in stripped.weights}
    for path, mask in masks.items():
        assert np.all(stored[path][~mask] == 0) and np.all(stored[path][mask] != 0)
    np.testing.assert_array_equal(to_numpy(stripped(token_batch)), to_numpy(converted(token_batch)))


@pytest.mark.slow
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


# Every model of the zoo, with the prunable weights its conversion must mask.
ZOO = {
    "recurrent": (recurrent_zoo, [
        "bilstm/forward_lstm/lstm_cell/kernel", "bilstm/forward_lstm/lstm_cell/recurrent_kernel",
        "bilstm/backward_lstm/lstm_cell/kernel", "bilstm/backward_lstm/lstm_cell/recurrent_kernel",
        "gru/gru_cell/kernel", "gru/gru_cell/recurrent_kernel",
        "rnn/simple_rnn_cell/kernel", "rnn/simple_rnn_cell/recurrent_kernel",
        *(f"stacked/stacked_rnn_cells/{cell}/{kernel}" for cell in ("c1", "c2", "c3")
          for kernel in ("kernel", "recurrent_kernel")),
        "per_step/step_dense/kernel", "out/kernel"]),
    "attention": (attention_zoo, [f"{layer}/{p}/kernel" for layer in ("mha", "gqa")
                                  for p in ("query", "key", "value", "attention_output")
                                  ] + ["out/kernel"]),
    "conv1d": (conv1d_zoo, [f"conv1d_zoo/{w}" for w in (
        "separable/depthwise_kernel", "separable/pointwise_kernel", "transpose/kernel",
        "depthwise/kernel", "out/kernel")]),
    "conv2d": (conv2d_zoo, ["separable/depthwise_kernel", "separable/pointwise_kernel",
                            "transpose/kernel", "depthwise/kernel", "transpose3d/kernel",
                            "out/kernel"]),
    "nested_shared": (nested_shared_zoo, ["encoder/enc/kernel", "inner_dense/kernel",
                                          "shared/kernel", "out/kernel"]),
    # Embeddings, attention and ops (the positions) in the graph.
    "transformer": (lambda: kl.strip(kl.models.causal_transformer(
        vocab_size=12, sequence_length=6, embed_dim=4, ff_dim=8)), [
        "token_embedding/embeddings", "position_embedding/embeddings",
        *(f"attention_0/{p}/kernel" for p in ("query", "key", "value", "attention_output")),
        "ff_0_up/kernel", "ff_0_down/kernel", "output/kernel"]),
}


def randomized(model):
    """`model` with every variable random, so that a mis-copy shows in the outputs."""
    rng = np.random.default_rng(5)
    for variable in model.weights:
        value = rng.normal(scale=0.4, size=variable.shape)
        if "variance" in variable.name:
            value = rng.uniform(0.5, 1.5, size=variable.shape)
        variable.assign(value.astype(variable.dtype))
    return model


def zoo_inputs(model):
    rng = np.random.default_rng(6)
    x = [rng.integers(0, 6, size=(3, *x.shape[1:])).astype(x.dtype) if "int" in x.dtype
         else rng.normal(size=(3, *x.shape[1:])).astype("float32") for x in model.inputs]
    return x if len(x) > 1 else x[0]


# The recurrent model (15 s on JAX, which compiles its loops) in the slow run;
# test_layers covers each recurrent twin on its own.
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n == "recurrent" else n for n in sorted(ZOO)])
def test_zoo_converts_and_strips_exactly(name):
    build, expected = ZOO[name]
    model = randomized(build())
    x = zoo_inputs(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = kl.prunable(model)
    assert not [w for w in caught if "unmasked" in str(w.message)]  # Nothing left dense.
    assert sorted(kl.get_masks(converted)) == sorted(expected)
    np.testing.assert_allclose(to_numpy(converted(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(to_numpy(kl.strip(converted)(x)), to_numpy(model(x)),
                               rtol=1e-6, atol=1e-6)

    masks = kl.random_prune(kl.get_masks(converted), rate=0.6, seed=1)
    kl.apply_masks(converted, masks)
    stripped = kl.strip(converted)
    assert not kl.masked_layers(stripped)
    stored = {v.path: to_numpy(v) for v in stripped.weights}
    for path, mask in masks.items():
        assert np.all(stored[path][~mask] == 0)
    np.testing.assert_allclose(to_numpy(stripped(x)), to_numpy(converted(x)), rtol=1e-6, atol=1e-6)
    again = kl.prunable(converted)  # A masked model converts with its masks.
    for path, mask in kl.get_masks(again).items():
        np.testing.assert_array_equal(mask, masks[path])


@pytest.mark.slow
def test_zoo_strips_to_files_that_load_without_keras_lottery(tmp_path):
    outputs = {}
    for name in ("recurrent", "attention"):
        converted = kl.prunable(randomized(ZOO[name][0]()))
        kl.apply_masks(converted, kl.random_prune(kl.get_masks(converted), rate=0.5, seed=2))
        kl.strip(converted).save(tmp_path / f"{name}.keras")
        x = zoo_inputs(converted)
        np.save(tmp_path / f"{name}_x.npy", x)
        outputs[name] = to_numpy(converted(x))
    script = (
        "import sys; sys.modules['keras_lottery'] = None\n"
        "import keras, numpy as np\n"
        "for name in ('recurrent', 'attention'):\n"
        f"    model = keras.models.load_model({str(tmp_path)!r} + f'/{{name}}.keras')\n"
        f"    x = np.load({str(tmp_path)!r} + f'/{{name}}_x.npy')\n"
        f"    np.save({str(tmp_path)!r} + f'/{{name}}_y.npy', keras.ops.convert_to_numpy(model(x)))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=os.environ.copy(),
                   capture_output=True, timeout=300)
    for name, expected in outputs.items():
        np.testing.assert_allclose(np.load(tmp_path / f"{name}_y.npy"), expected,
                                   rtol=1e-6, atol=1e-6)


class NoConfig(keras.layers.Layer):
    def __init__(self, scale):  # Not in a config: cannot be rebuilt.
        super().__init__()
        self.scale = scale

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {}


def test_a_layer_that_cannot_be_rebuilt_is_named_and_the_model_masked_in_place():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(NoConfig(2.0)(inputs)))
    with pytest.raises(ValueError, match=r"(?s)first layer whose config fails is 'no_config\w*' "
                                         r"\(NoConfig\): `from_config\(get_config\(\)\)` raises "
                                         r"TypeError.*'scale'.*in_place=True"):
        kl.prunable(model)
    assert sorted(kl.get_masks(kl.prunable(model, in_place=True))) == ["out/kernel"]


class Subclass(keras.layers.Dense):
    """A user's subclass of Dense: masked as itself, where it reads its kernel."""


class ListHeld(keras.layers.Layer):
    """Holds its kernel in a list, where no mask can reach it."""

    def build(self, input_shape):
        self.kernels = [self.add_weight(shape=(input_shape[-1], 3), name="kernel")]

    def call(self, x):
        return keras.ops.matmul(x, self.kernels[0])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)


def test_layers_left_unmasked_are_named_in_a_warning():
    inputs = keras.Input((4,))
    x = Subclass(6, name="custom")(inputs)
    x = keras.layers.PReLU(name="prelu")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = ListHeld(name="listed")(x)
    x = keras.layers.Dense(5, name="excluded")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    with pytest.warns(UserWarning, match=r"unmasked.*: 'listed' \(ListHeld, 18 weights\)\. "
                                         r"keras-lottery masks") as caught:
        converted = kl.prunable(model, exclude=["excluded"])
    message = str(caught[0].message)
    assert "'bn'" not in message and "'excluded'" not in message and "'prelu'" not in message
    custom = converted.get_layer("custom")
    assert isinstance(custom, Subclass) and type(custom).__name__ == "Subclass"
    assert [p.kind for p in custom.get_prunable_weights()] == ["dense"]
    report = kl.sparsity_report(converted)
    assert [row.path for row in report.rows] == ["custom/kernel", "out/kernel"]
    # custom bias 6, prelu 6, bn 12, listed 18, excluded 15 + 5, out bias 2.
    assert report.unmasked_total == 6 + 6 + 12 + 18 + 20 + 2
    assert report.prunable_share == pytest.approx(34 / (34 + 64))
    assert [(layer.name, count) for layer, count in kl.unmasked_layers(converted)] == [
        ("listed", 18), ("excluded", 20)]
    assert type(kl.strip(converted).get_layer("custom")) is Subclass


def test_an_excluded_wrapper_or_nested_model_stays_dense_as_a_whole():
    model = recurrent_zoo()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = kl.prunable(model, exclude=["bilstm", "stacked"])
    assert not [w for w in caught if "unmasked" in str(w.message)]
    assert not [p for p in kl.get_masks(converted) if p.startswith(("bilstm", "stacked"))]
    assert "gru/gru_cell/kernel" in kl.get_masks(converted)
    nested = kl.prunable(nested_shared_zoo(), exclude=["inner"])
    assert sorted(kl.get_masks(nested)) == ["encoder/enc/kernel", "out/kernel", "shared/kernel"]


@keras.saving.register_keras_serializable(package="keras_lottery_tests")
class MyCell(keras.layers.LSTMCell):
    """A user's subclass of a cell: masked as itself, with the cell's kinds."""


def test_a_subclass_of_a_cell_is_masked_as_itself_and_wrappers_name_what_is_not():
    inputs = keras.Input((5, 3))
    outputs = keras.layers.RNN(MyCell(4), name="custom_rnn")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(outputs))
    converted = kl.prunable(model)
    cell = converted.get_layer("custom_rnn").cell
    assert isinstance(cell, MyCell) and isinstance(cell, kl.MaskedLayer)
    assert [p.kind for p in cell.get_prunable_weights()] == ["recurrent_input", "recurrent"]
    x = np.random.default_rng(4).normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_allclose(to_numpy(converted(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-6)
    # A layer inside a wrapper that holds its kernel out of reach: the wrapper is named.
    wrapped = keras.Model(inputs, keras.layers.TimeDistributed(ListHeld(), name="per_step")(inputs))
    with pytest.warns(UserWarning, match=r"unmasked.*: 'per_step' \(TimeDistributed, 9 weights\)"):
        kl.prunable(wrapped)


def test_strip_refuses_a_masked_layer_of_your_own():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, Bilinear(name="bilinear")(inputs))
    with pytest.raises(ValueError, match=r"layer 'bilinear' \(Bilinear\), a masked layer of your own"):
        kl.strip(model)


def test_a_stateful_rnn_copies_its_states():
    inputs = keras.Input((4, 3), batch_size=2)
    model = keras.Model(inputs, keras.layers.LSTM(5, stateful=True, name="lstm")(inputs))
    x = np.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32")
    model(x)  # The states now hold the last call's.
    converted = kl.prunable(model)
    np.testing.assert_allclose(to_numpy(converted(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-6)


def test_lora_is_named_as_lora_when_converting():
    inputs = keras.Input((3,))
    layer = keras.layers.Dense(2, name="adapted")
    model = keras.Model(inputs, layer(inputs))
    layer.enable_lora(1)
    with pytest.raises(ValueError, match=r"Received layer 'adapted' with LoRA enabled"):
        kl.prunable(model)
