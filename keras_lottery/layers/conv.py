"""Masked twins of Keras' convolutions: Conv1D/2D/3D and DepthwiseConv2D."""

import keras
from keras import ops

from keras_lottery.layers.masked_layer import MaskedLayer, add_bias_and_activate


class _MaskedConv(MaskedLayer):
    """Shared `build`/`call` for the masked `Conv1D`, `Conv2D` and `Conv3D`."""

    _prunable_attributes = {"kernel": "_kernel"}
    prunable_kind = "conv"

    def build(self, input_shape):
        super().build(input_shape)
        self._build_masks()

    def call(self, inputs):
        padding = self.padding
        if padding == "causal":  # Only Conv1D accepts it, as in Keras.
            inputs = ops.pad(inputs, self._compute_causal_padding())
            padding = "valid"
        outputs = ops.conv(
            inputs,
            self.masked("kernel"),
            strides=list(self.strides),
            padding=padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        return add_bias_and_activate(self, outputs, self.filters, self.rank)


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedConv1D(_MaskedConv, keras.layers.Conv1D):
    """`keras.layers.Conv1D` whose kernel is multiplied by `kernel_mask`.

    Takes exactly the arguments of `keras.layers.Conv1D` (LoRA excepted) and
    computes the same outputs while the mask is all ones. The bias is never
    masked.
    """

    def __init__(self, filters, kernel_size, **kwargs):
        self._check_masked_kwargs(kwargs)
        super().__init__(filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedConv2D(_MaskedConv, keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose kernel is multiplied by `kernel_mask`.

    Takes exactly the arguments of `keras.layers.Conv2D` (LoRA excepted) and
    computes the same outputs while the mask is all ones. The bias is never
    masked.
    """

    def __init__(self, filters, kernel_size, **kwargs):
        self._check_masked_kwargs(kwargs)
        super().__init__(filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedConv3D(_MaskedConv, keras.layers.Conv3D):
    """`keras.layers.Conv3D` whose kernel is multiplied by `kernel_mask`.

    Takes exactly the arguments of `keras.layers.Conv3D` (LoRA excepted) and
    computes the same outputs while the mask is all ones. The bias is never
    masked.
    """

    def __init__(self, filters, kernel_size, **kwargs):
        self._check_masked_kwargs(kwargs)
        super().__init__(filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedDepthwiseConv2D(MaskedLayer, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` whose kernel is multiplied by `kernel_mask`.

    Takes exactly the arguments of `keras.layers.DepthwiseConv2D`. The bias is
    never masked.
    """

    # Keras stores the depthwise kernel directly in `self.kernel`.
    _prunable_attributes = {"kernel": "kernel"}
    prunable_kind = "conv"

    def build(self, input_shape):
        super().build(input_shape)
        self._build_masks()

    def call(self, inputs):
        outputs = ops.depthwise_conv(
            inputs,
            self.masked("kernel"),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        channels = self.depth_multiplier * self._get_input_channel(inputs.shape)
        return add_bias_and_activate(self, outputs, channels, self.rank)
