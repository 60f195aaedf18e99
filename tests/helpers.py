"""Models, data and checks the tests share."""

import keras
import numpy as np
from keras import ops

import keras_lottery as kl
from keras_lottery.search import state


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def conv_sequential():
    """Conv2D, BatchNorm, pooling and Dense in a Sequential model."""
    return keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.DepthwiseConv2D(2, name="depthwise"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(3, activation="softmax", name="output"),
        ],
        name="conv_net",
    )


def token_functional():
    """Embedding, Conv1D, BatchNorm, EinsumDense, a nested model and Dense."""
    head = keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(6, activation="relu", name="head_dense")],
        name="head",
    )
    tokens = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(20, 4, name="embedding")(tokens)
    x = keras.layers.Conv1D(5, 3, name="conv1d")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.EinsumDense("abc,cd->abd", (None, 3), bias_axes="d", name="einsum")(x)
    x = keras.layers.Flatten()(x)
    x = head(x)
    logits = keras.layers.Dense(3, name="logits")(x)
    outputs = keras.layers.Softmax(name="softmax")(logits)
    return keras.Model(tokens, outputs, name="token_net")


def recurrent_zoo():
    """Bidirectional(LSTM), GRU, SimpleRNN, RNN(stacked cells), TimeDistributed(Dense), LayerNorm."""
    inputs = keras.Input((6, 3))
    x = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True, name="lstm"), name="bilstm")(inputs)
    x = keras.layers.GRU(3, return_sequences=True, name="gru")(x)
    x = keras.layers.SimpleRNN(3, return_sequences=True, name="rnn")(x)
    cells = [keras.layers.LSTMCell(3, name="c1"), keras.layers.GRUCell(3, name="c2"),
             keras.layers.SimpleRNNCell(3, name="c3")]
    x = keras.layers.RNN(cells, return_sequences=True, name="stacked")(x)
    x = keras.layers.TimeDistributed(keras.layers.Dense(2, name="step_dense"), name="per_step")(x)
    x = keras.layers.LayerNormalization(name="ln")(x)
    outputs = keras.layers.Dense(2, name="out")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs, name="recurrent_zoo")


def attention_zoo():
    """Causal MultiHeadAttention with a residual, LayerNorm, GroupQueryAttention."""
    inputs = keras.Input((5, 6))
    attended = keras.layers.MultiHeadAttention(2, 3, name="mha")(inputs, inputs, use_causal_mask=True)
    x = keras.layers.LayerNormalization(name="ln")(keras.layers.Add()([inputs, attended]))
    x = keras.layers.GroupQueryAttention(3, 2, 1, name="gqa")(x, x)
    outputs = keras.layers.Dense(2, name="out")(keras.layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs, name="attention_zoo")


def conv1d_zoo():
    """SeparableConv1D, Conv1DTranspose, DepthwiseConv1D, BatchNorm in a Sequential model."""
    return keras.Sequential([
        keras.Input((9, 3)),
        keras.layers.SeparableConv1D(4, 3, name="separable"),
        keras.layers.Conv1DTranspose(3, 3, strides=2, name="transpose"),
        keras.layers.DepthwiseConv1D(3, name="depthwise"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Flatten(),
        keras.layers.Dense(2, name="out"),
    ], name="conv1d_zoo")


def conv2d_zoo():
    """SeparableConv2D, Conv2DTranspose, DepthwiseConv2D, BatchNorm, Conv3DTranspose."""
    images = keras.Input((6, 6, 2))
    x = keras.layers.SeparableConv2D(4, 2, name="separable")(images)
    x = keras.layers.Conv2DTranspose(3, 2, strides=2, name="transpose")(x)
    x = keras.layers.DepthwiseConv2D(3, name="depthwise")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Reshape((2, 4, 6, 3))(keras.layers.Cropping2D(((1, 1), (0, 0)))(x))
    x = keras.layers.Conv3DTranspose(2, 2, name="transpose3d")(x)
    outputs = keras.layers.Dense(2, name="out")(keras.layers.GlobalAveragePooling3D()(x))
    return keras.Model(images, outputs, name="conv2d_zoo")


def nested_shared_zoo():
    """Nested Sequential and Functional models and one Dense shared by two branches."""
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, name="enc")], name="encoder")
    inner_in = keras.Input((5,))
    inner = keras.Model(inner_in, keras.layers.Dense(3, name="inner_dense")(inner_in), name="inner")
    shared = keras.layers.Dense(5, activation="tanh", name="shared")
    left, right = keras.Input((4,), name="left"), keras.Input((4,), name="right")
    a = inner(shared(encoder(left)))
    b = inner(shared(encoder(right)))
    outputs = keras.layers.Dense(2, name="out")(keras.layers.Concatenate()([a, b]))
    return keras.Model([left, right], outputs, name="nested_zoo")


class CallOrderNet(keras.Model):
    """A subclassed model whose attributes come in the opposite order of its calls."""

    def __init__(self, hidden=16, masked=True, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.masked = hidden, masked
        dense = kl.MaskedDense if masked else keras.layers.Dense
        self.head = dense(3, activation="softmax", name="head")
        self.body = dense(hidden, activation="relu", name="body")

    def call(self, x):
        return self.head(self.body(x))


def residual_net():
    """Conv -> BN -> ReLU, a residual block, pooling, Flatten -> Dense -> Dense."""
    inputs = keras.Input((8, 8, 2))
    x = kl.layers.MaskedConv2D(6, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("relu")(x)
    y = kl.layers.MaskedConv2D(4, 3, padding="same", activation="relu", name="inner")(x)
    y = kl.layers.MaskedConv2D(6, 3, padding="same", name="back")(y)
    y = keras.layers.BatchNormalization(name="back_bn")(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = kl.layers.MaskedDense(5, activation="relu", name="hidden")(x)
    return keras.Model(inputs, kl.layers.MaskedDense(3, name="out")(x), name="residual")


def attention_net():
    inputs = keras.Input((5, 8))
    x = kl.layers.MaskedMultiHeadAttention(num_heads=4, key_dim=2, name="attention")(inputs, inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, kl.layers.MaskedDense(3, name="out")(x))


@keras.saving.register_keras_serializable(package="keras_lottery_tests")
class Block(keras.layers.Layer):
    """A composite layer as other libraries write them (a KerasHub block):
    sublayers Keras has twins for, a matrix of its own read in `call`, a
    table read twice (as an embedding and as an output projection) and a
    per-channel scale, which stays dense."""

    def __init__(self, units=4, vocabulary=7, **kwargs):
        super().__init__(**kwargs)
        self.units, self.vocabulary = units, vocabulary
        self.attention = keras.layers.MultiHeadAttention(2, 2, name="attention")
        self.up = keras.layers.Dense(2 * units, activation="gelu", name="up")
        self.down = keras.layers.Dense(units, name="down")
        self.norm = keras.layers.LayerNormalization(name="norm")

    def build(self, input_shape):
        self.mix = self.add_weight(shape=(input_shape[-1], self.units), name="mix")
        self.table = self.add_weight(shape=(self.vocabulary, self.units), name="table")
        self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale")
        shape = (*input_shape[:-1], self.units)
        self.attention.build(shape, shape)
        self.up.build(shape)
        self.down.build((*input_shape[:-1], 2 * self.units))
        self.norm.build(shape)

    def call(self, x):
        h = keras.ops.matmul(x, self.mix) * self.scale
        h = h + keras.ops.take(self.table, keras.ops.zeros_like(h[..., 0], "int32"), axis=0)
        h = self.norm(h + self.attention(h, h))
        h = h + self.down(self.up(h))
        return keras.ops.matmul(h, keras.ops.transpose(self.table))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.vocabulary)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "vocabulary": self.vocabulary}


class BrokenConfigBlock(Block):
    """A block whose `get_config` fails, as some layers of other libraries' do."""

    def get_config(self):
        return {**super().get_config(), "scaling": self.rope_scaling_factor}


def block_model(block=Block):
    inputs = keras.Input((3, 5))
    x = block(name="block")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x)),
                       name="block_model")


# The weights a block model masks, and their kinds.
BLOCK_MASKS = {
    "block/mix": "dense", "block/table": "dense",
    **{f"block/attention/{p}/kernel": "attention"
       for p in ("query", "key", "value", "attention_output")},
    "block/up/kernel": "dense", "block/down/kernel": "dense", "head/kernel": "dense",
}


@keras.saving.register_keras_serializable(package="keras_lottery_tests")
class BlockNet(keras.Model):
    """A subclassed model holding a block, a dense head and a matrix of its own."""

    def __init__(self, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.block = Block(name="block")
        self.head = keras.layers.Dense(classes, name="head")

    def build(self, input_shape):
        self.block.build(input_shape)
        self.skip = self.add_weight(shape=(input_shape[-1], self.classes), name="skip")
        self.head.build((*input_shape[:-1], self.block.vocabulary))

    def call(self, x):
        return keras.ops.mean(self.head(self.block(x)) + keras.ops.matmul(x, self.skip), axis=1)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


@keras.saving.register_keras_serializable(package="keras_lottery_tests")
class Bilinear(kl.MaskedLayer, keras.layers.Layer):
    """`x W x^T` per example, plus a bias: reads its weight twice per call."""

    prunable_weights = {"w": "dense"}

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], input_shape[-1]), name="w")
        self.b = self.add_weight(shape=(), initializer="ones", name="b")

    def call(self, x):
        return ops.sum(ops.matmul(x, self.w) * x, axis=-1, keepdims=True) + self.b


# -- a small search: three classes of 12 features, a masked MLP -----------------

_RNG = np.random.default_rng(11)
X = _RNG.normal(size=(200, 12)).astype("float32")
Y = (X[:, :4].sum(axis=1) > 0).astype("int32") + (X[:, 4] > 1).astype("int32")
VAL = (X[:60], Y[:60])


def compiled_mlp(seed=0, dropout=0.0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((12,)),
            kl.MaskedDense(40, activation="relu", name="fc1"),
            keras.layers.Dropout(dropout),
            kl.MaskedDense(20, activation="relu", name="fc2"),
            kl.MaskedDense(3, activation="softmax", name="out"),
        ],
        name="mlp",
    )
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def search(model=None, **kwargs):
    settings = dict(epochs=1, batch_size=20, verbose=0)
    if kwargs.get("one_shot") is None and kwargs.get("transfer") is None:
        settings["rounds"] = 2  # One-shot densities and transferred masks set the rounds.
    settings.update(kwargs)
    return kl.TicketSearch(model or compiled_mlp(), X, Y, **settings)


class RoundStarts(keras.callbacks.Callback):
    """Records each training's starting state, masks and optimizer."""

    def __init__(self):
        super().__init__()
        self.starts, self.masks, self.optimizers = [], [], []

    def on_train_begin(self, logs=None):
        self.starts.append(state.snapshot(self.model))
        self.masks.append(kl.get_masks(self.model))
        self.optimizers.append((self.model.optimizer, int(to_numpy(self.model.optimizer.iterations))))


def assert_rewound(weights, theta0, masks, label=""):
    """Every variable of `theta0` exactly as it was in `weights`, and exactly
    zero where `masks` prune it: a rewind, not a retraining or a copy close to it."""
    assert theta0, "no variables to compare"
    for key, value in theta0.items():
        expected = value * masks[key] if key in masks else value
        np.testing.assert_array_equal(weights[key], expected, err_msg=f"{label} {key}".strip())
