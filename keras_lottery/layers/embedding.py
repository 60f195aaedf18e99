"""Masked twin of `keras.layers.Embedding`."""

import keras
from keras import ops

from keras_lottery.layers.masked_layer import MaskedLayer


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedEmbedding(MaskedLayer, keras.layers.Embedding):
    """`keras.layers.Embedding` whose table is multiplied by `embeddings_mask`.

    Takes exactly the arguments of `keras.layers.Embedding` (LoRA and
    quantization excepted). Reading `layer.embeddings` (to tie an output
    projection to the table, say) gives the masked table.

    Example:

    >>> layer = MaskedEmbedding(input_dim=10, output_dim=4)
    >>> y = layer(np.array([[1, 2]]))
    >>> layer.embeddings_mask.shape
    (10, 4)
    """

    prunable_weights = {"embeddings": "embedding"}

    def call(self, inputs):
        if inputs.dtype != "int32" and inputs.dtype != "int64":
            inputs = ops.cast(inputs, "int32")
        # Gather rows of the table and of the mask, then multiply: the cost
        # scales with the batch, not with the vocabulary.
        rows = ops.take(self._embeddings, inputs, axis=0)
        row_masks = ops.take(self.embeddings_mask, inputs, axis=0)
        return ops.cast(ops.multiply(rows, row_masks), dtype=self.compute_dtype)
