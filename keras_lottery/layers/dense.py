"""Masked twins of Keras' fully-connected layers: `Dense` and `EinsumDense`."""

import keras
from keras import ops

from keras_lottery.layers.masked_layer import MaskedLayer, add_bias_and_activate


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedDense(MaskedLayer, keras.layers.Dense):
    """`keras.layers.Dense` whose kernel is multiplied by `kernel_mask`.

    Takes exactly the arguments of `keras.layers.Dense` (LoRA and
    quantization excepted) and computes the same outputs while the mask is
    all ones. The bias is never masked.

    Example:

    >>> layer = MaskedDense(3)
    >>> y = layer(np.ones((2, 4)))
    >>> layer.kernel_mask.shape
    (4, 3)
    """

    _prunable_attributes = {"kernel": "_kernel"}
    prunable_kind = "dense"

    def __init__(self, units, **kwargs):
        self._check_masked_kwargs(kwargs)
        super().__init__(units, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_masks()

    def call(self, inputs, training=None):
        outputs = ops.matmul(inputs, self.masked("kernel"))
        return add_bias_and_activate(self, outputs, self.units)


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedEinsumDense(MaskedLayer, keras.layers.EinsumDense):
    """`keras.layers.EinsumDense` whose kernel is multiplied by `kernel_mask`.

    Takes exactly the arguments of `keras.layers.EinsumDense` (LoRA and
    quantization excepted). The bias is never masked.

    Example:

    >>> layer = MaskedEinsumDense("ab,bc->ac", output_shape=3)
    >>> y = layer(np.ones((2, 4)))
    >>> layer.kernel_mask.shape
    (4, 3)
    """

    _prunable_attributes = {"kernel": "_kernel"}
    prunable_kind = "dense"

    def __init__(self, equation, output_shape, **kwargs):
        self._check_masked_kwargs(kwargs)
        super().__init__(equation, output_shape, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_masks()

    def call(self, inputs, training=None):
        outputs = ops.einsum(self.equation, inputs, self.masked("kernel"))
        return add_bias_and_activate(self, outputs, None)
