"""Masked twins of Keras' convolutions: plain, transposed, depthwise and separable.

Each multiplies its kernels by their masks wherever Keras' own `call` reads
them; biases are never masked. A separable convolution has two kernels, the
depthwise and the pointwise one, each with its own mask.
"""

import keras

from keras_lottery.layers.masked_layer import MaskedLayer


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedConv1D(MaskedLayer, keras.layers.Conv1D):
    """`keras.layers.Conv1D` whose `kernel` is multiplied by `kernel_mask`."""

    prunable_weights = {"kernel": "conv"}


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedConv2D(MaskedLayer, keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose `kernel` is multiplied by `kernel_mask`."""

    prunable_weights = {"kernel": "conv"}


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedConv3D(MaskedLayer, keras.layers.Conv3D):
    """`keras.layers.Conv3D` whose `kernel` is multiplied by `kernel_mask`."""

    prunable_weights = {"kernel": "conv"}


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedConv1DTranspose(MaskedLayer, keras.layers.Conv1DTranspose):
    """`keras.layers.Conv1DTranspose` whose `kernel` is multiplied by `kernel_mask`."""

    prunable_weights = {"kernel": "conv"}


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedConv2DTranspose(MaskedLayer, keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` whose `kernel` is multiplied by `kernel_mask`."""

    prunable_weights = {"kernel": "conv"}


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedConv3DTranspose(MaskedLayer, keras.layers.Conv3DTranspose):
    """`keras.layers.Conv3DTranspose` whose `kernel` is multiplied by `kernel_mask`."""

    prunable_weights = {"kernel": "conv"}


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedDepthwiseConv1D(MaskedLayer, keras.layers.DepthwiseConv1D):
    """`keras.layers.DepthwiseConv1D` whose `kernel` is multiplied by `kernel_mask`."""

    prunable_weights = {"kernel": "conv"}


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedDepthwiseConv2D(MaskedLayer, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` whose `kernel` is multiplied by `kernel_mask`."""

    prunable_weights = {"kernel": "conv"}


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedSeparableConv1D(MaskedLayer, keras.layers.SeparableConv1D):
    """`keras.layers.SeparableConv1D` whose `depthwise_kernel` and
    `pointwise_kernel` are multiplied by `depthwise_kernel_mask` and
    `pointwise_kernel_mask`."""

    prunable_weights = {"depthwise_kernel": "conv", "pointwise_kernel": "conv"}


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedSeparableConv2D(MaskedLayer, keras.layers.SeparableConv2D):
    """`keras.layers.SeparableConv2D` whose `depthwise_kernel` and
    `pointwise_kernel` are multiplied by `depthwise_kernel_mask` and
    `pointwise_kernel_mask`."""

    prunable_weights = {"depthwise_kernel": "conv", "pointwise_kernel": "conv"}
