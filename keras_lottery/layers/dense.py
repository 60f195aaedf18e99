"""Masked twins of Keras' fully-connected layers: `Dense` and `EinsumDense`."""

import keras

from keras_lottery.layers.masked_layer import MaskedLayer


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

    prunable_weights = {"kernel": "dense"}


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

    prunable_weights = {"kernel": "dense"}
