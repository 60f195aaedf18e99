"""Models and conversions the tests share."""

import keras


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
