"""Masked twin of `keras.layers.Embedding`."""

import keras

from keras_lottery.layers.masked_layer import MaskedLayer


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedEmbedding(MaskedLayer, keras.layers.Embedding):
    """`keras.layers.Embedding` whose table is multiplied by `embeddings_mask`.

    Takes exactly the arguments of `keras.layers.Embedding` (LoRA and
    quantization excepted). The whole table is multiplied by its mask before
    the lookup: that costs one pass over the table per step (as the
    optimizer's update does), where masking the looked-up rows would cost
    two passes over every lookup, far more for the usual vocabularies.
    Reading `layer.embeddings` (to tie an output projection to the table,
    say) gives the masked table.

    Example:

    >>> layer = MaskedEmbedding(input_dim=10, output_dim=4)
    >>> y = layer(np.array([[1, 2]]))
    >>> layer.embeddings_mask.shape
    (10, 4)
    """

    prunable_weights = {"embeddings": "embedding"}
