"""Masked twins of Keras' attention layers: MultiHeadAttention and GroupQueryAttention.

The query, key, value and output projections (and the gate, with
`use_gate=True`) are `EinsumDense` sublayers that the attention layer makes in
`build`; their kernels, of kind `"attention"`, are masked by masks the
attention layer owns (`query_dense_kernel_mask`, ...). Biases are not masked.
"""

import keras

from keras_lottery import _keras
from keras_lottery.layers.masked_layer import MaskedLayer


class _MaskedAttention(MaskedLayer):
    def prunable_weight_paths(self):
        # Asked only once built; the gate exists only with `use_gate=True`.
        return {f"{attribute}.kernel": "attention"
                for attribute in _keras.attention_projections(self).values()}


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedMultiHeadAttention(_MaskedAttention, keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` whose projection kernels are masked."""


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedGroupQueryAttention(_MaskedAttention, keras.layers.GroupQueryAttention):
    """`keras.layers.GroupQueryAttention` whose projection kernels are masked."""
