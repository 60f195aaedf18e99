"""Masked Keras layers: each owns a non-trainable mask per prunable weight.

`MASKED_TWINS` maps each supported Keras layer class to its masked twin;
`prunable()` and `strip()` convert through it. Layers that wrap others
(`Bidirectional`, `TimeDistributed`, `RNN(cell)`, `StackedRNNCells`, your own
wrappers) need no twin: their inner layers are converted. `docs/layers.md` says how to add a layer.
"""

import keras

from keras_lottery.layers.attention import MaskedGroupQueryAttention, MaskedMultiHeadAttention
from keras_lottery.layers.conv import (
    MaskedConv1D,
    MaskedConv1DTranspose,
    MaskedConv2D,
    MaskedConv2DTranspose,
    MaskedConv3D,
    MaskedConv3DTranspose,
    MaskedDepthwiseConv1D,
    MaskedDepthwiseConv2D,
    MaskedSeparableConv1D,
    MaskedSeparableConv2D,
)
from keras_lottery.layers.dense import MaskedDense, MaskedEinsumDense
from keras_lottery.layers.embedding import MaskedEmbedding
from keras_lottery.layers.masked_layer import MaskedLayer, PrunableWeight
from keras_lottery.layers.recurrent import (
    MaskedConvLSTM1D,
    MaskedConvLSTM2D,
    MaskedConvLSTM3D,
    MaskedGRU,
    MaskedGRUCell,
    MaskedLSTM,
    MaskedLSTMCell,
    MaskedSimpleRNN,
    MaskedSimpleRNNCell,
)

_ALL_TWINS = (
    MaskedConv1D, MaskedConv1DTranspose, MaskedConv2D, MaskedConv2DTranspose,
    MaskedConv3D, MaskedConv3DTranspose, MaskedConvLSTM1D, MaskedConvLSTM2D,
    MaskedConvLSTM3D, MaskedDense, MaskedDepthwiseConv1D, MaskedDepthwiseConv2D,
    MaskedEinsumDense, MaskedEmbedding, MaskedGroupQueryAttention, MaskedGRU,
    MaskedGRUCell, MaskedLSTM, MaskedLSTMCell, MaskedMultiHeadAttention,
    MaskedSeparableConv1D, MaskedSeparableConv2D, MaskedSimpleRNN, MaskedSimpleRNNCell,
)
# Each supported Keras layer and its masked twin (the twin's direct Keras
# base). Exact classes only: a user's subclass of `Dense` may compute
# something else, so it is left alone (and named in a warning).
MASKED_TWINS = {
    next(base for base in twin.__mro__[1:] if base.__module__.startswith("keras.")): twin
    for twin in _ALL_TWINS
}

# Layers whose weights are not pruned by design, like biases: normalization
# scales and offsets, and PReLU's slopes (one per input value). They are
# never masked, nor named in the unmasked-layer warning.
NOT_PRUNED = tuple(
    getattr(keras.layers, name)
    for name in ("BatchNormalization", "LayerNormalization", "GroupNormalization",
                 "RMSNormalization", "UnitNormalization", "Normalization", "PReLU")
    if hasattr(keras.layers, name)
)

__all__ = [twin.__name__ for twin in _ALL_TWINS] + [
    "MASKED_TWINS", "MaskedLayer", "NOT_PRUNED", "PrunableWeight",
]
