"""Masked Keras layers: each owns a non-trainable mask per prunable weight."""

import keras

from keras_lottery.layers.conv import (
    MaskedConv1D,
    MaskedConv2D,
    MaskedConv3D,
    MaskedDepthwiseConv2D,
)
from keras_lottery.layers.dense import MaskedDense, MaskedEinsumDense
from keras_lottery.layers.embedding import MaskedEmbedding
from keras_lottery.layers.masked_layer import MaskedLayer

# Each supported Keras layer and its masked twin, used by `prunable()` and
# `strip()`. Exact classes only: a user's subclass of `Dense` may compute
# something else, so it is left alone rather than silently replaced.
MASKED_TWINS = {
    keras.layers.Dense: MaskedDense,
    keras.layers.EinsumDense: MaskedEinsumDense,
    keras.layers.Conv1D: MaskedConv1D,
    keras.layers.Conv2D: MaskedConv2D,
    keras.layers.Conv3D: MaskedConv3D,
    keras.layers.DepthwiseConv2D: MaskedDepthwiseConv2D,
    keras.layers.Embedding: MaskedEmbedding,
}

__all__ = [
    "MaskedConv1D",
    "MaskedConv2D",
    "MaskedConv3D",
    "MaskedDense",
    "MaskedDepthwiseConv2D",
    "MaskedEinsumDense",
    "MaskedEmbedding",
    "MaskedLayer",
    "MASKED_TWINS",
]
