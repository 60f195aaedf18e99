"""The layers the paper's networks are made of: masked, Gaussian Glorot, named.

Layer names are explicit because variable paths (`"fc1/kernel"`) are the
keys of masks and snapshots on disk.
"""

import keras

from keras_lottery.layers import MaskedConv2D, MaskedDense
from keras_lottery.models.dropout import dropout_after

# Explicit, so that a global `image_data_format` of "channels_first" cannot
# silently reinterpret the `(height, width, channels)` input shapes used here.
DATA_FORMAT = "channels_last"


def _glorot_normal():
    # One initializer per layer: an unseeded Keras initializer draws its seed
    # when constructed, so a shared one would give equal-shaped layers equal
    # kernels. Unseeded, so a clone from config draws new weights.
    return keras.initializers.GlorotNormal()


def dense(units, name, activation="relu"):
    """A `MaskedDense` with Gaussian Glorot kernel and zero bias."""
    return MaskedDense(
        units,
        activation=activation,
        kernel_initializer=_glorot_normal(),
        bias_initializer="zeros",
        name=name,
    )


def conv(filters, name, kernel_size=3, strides=1, activation="relu", use_bias=True):
    """A "same"-padded `MaskedConv2D` with Gaussian Glorot kernel and zero bias."""
    return MaskedConv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        data_format=DATA_FORMAT,
        activation=activation,
        use_bias=use_bias,
        kernel_initializer=_glorot_normal(),
        bias_initializer="zeros",
        name=name,
    )


def conv_bn(x, filters, name, strides=1, kernel_size=3):
    """Convolution then batch normalization, without activation.

    The convolution has no bias: batch normalization subtracts the batch
    mean, so a bias would get no gradient; its `beta` is the bias.
    """
    x = conv(filters, name, kernel_size, strides, activation=None, use_bias=False)(x)
    return keras.layers.BatchNormalization(name=f"{name}_bn")(x)


def max_pool(name):
    return keras.layers.MaxPooling2D(2, data_format=DATA_FORMAT, name=name)


def classifier(x, hidden_units, num_classes, dropout):
    """Hidden relu layers `fc1, fc2, ...` then the softmax layer `output`."""
    for index, units in enumerate(hidden_units, start=1):
        x = dense(units, f"fc{index}")(x)
        x = dropout_after(x, dropout, "fc", f"fc{index}")
    return dense(num_classes, "output", activation="softmax")(x)
