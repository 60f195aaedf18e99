"""Small sequence classifiers from masked layers: a causal transformer and an LSTM.

Not from the paper: they show tickets beyond fully-connected and
convolutional networks (attention, embeddings, recurrent kernels), with
sizes that train in seconds on a CPU, and are what the masking-overhead
benchmark times on sequence models.
"""

import keras
from keras import ops

from keras_lottery import layers as masked


def causal_transformer(vocab_size=64, sequence_length=32, num_classes=2, embed_dim=32,
                       num_heads=2, ff_dim=64, num_blocks=1, name="causal_transformer"):
    """A GPT-style block stack over tokens, then a softmax over classes.

    Token and position embeddings (`token_embedding`, `position_embedding`),
    then per block: pre-LayerNorm, causal multi-head attention (`attention_i`)
    with a residual, pre-LayerNorm, feed-forward `ff_i_up` (gelu) and
    `ff_i_down` with a residual; a final LayerNorm, the mean over positions and
    the `output` layer. Every kernel and embedding table is masked; biases and
    LayerNorm are not.

    Args:
        vocab_size: number of token ids. Defaults to `64`.
        sequence_length: tokens per example. Defaults to `32`.
        num_classes: units of the softmax output layer. Defaults to `2`.
        embed_dim: width of the residual stream. Defaults to `32`.
        num_heads: attention heads; `embed_dim` must divide by it. Defaults to `2`.
        ff_dim: width of the feed-forward layer. Defaults to `64`.
        num_blocks: transformer blocks. Defaults to `1`.
        name: the model's name. Defaults to `"causal_transformer"`.

    Returns:
        A built functional `keras.Model` from int32 token ids
        `(batch, sequence_length)` to class probabilities.
    """
    tokens = keras.Input((sequence_length,), dtype="int32", name="tokens")
    x = causal_blocks(tokens, vocab_size, sequence_length, embed_dim, num_heads, ff_dim,
                      num_blocks)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = masked.MaskedDense(num_classes, activation="softmax", name="output")(x)
    return keras.Model(tokens, outputs, name=name)


def causal_blocks(tokens, vocab_size, sequence_length, embed_dim, num_heads, ff_dim,
                  num_blocks, dropout=None):
    """Token and position embeddings, `num_blocks` pre-LayerNorm blocks of causal
    attention and feed-forward, and the final LayerNorm: a GPT-style trunk.

    Layers `token_embedding`, `position_embedding`, then per block `i`:
    `ln_{i}_attention`, `attention_{i}`, `ln_{i}_ff`, `ff_{i}_up` (gelu),
    `ff_{i}_down`, and `ln_final`. `dropout` (a rate) follows the embeddings,
    each attention and each feed-forward, as in GPT-2.
    """
    if embed_dim % num_heads:
        raise ValueError(
            f"Expected `embed_dim` divisible by `num_heads`. Received: "
            f"embed_dim={embed_dim}, num_heads={num_heads}"
        )
    positions = ops.cumsum(ops.ones_like(tokens), axis=1) - 1  # 0, 1, ... per row
    x = keras.layers.Add(name="embed")([
        masked.MaskedEmbedding(vocab_size, embed_dim, name="token_embedding")(tokens),
        masked.MaskedEmbedding(sequence_length, embed_dim, name="position_embedding")(positions),
    ])
    x = _dropped(x, dropout, "embed_dropout")
    for i in range(num_blocks):
        h = keras.layers.LayerNormalization(name=f"ln_{i}_attention")(x)
        h = masked.MaskedMultiHeadAttention(num_heads, embed_dim // num_heads,
                                            name=f"attention_{i}")(h, h, use_causal_mask=True)
        h = _dropped(h, dropout, f"attention_{i}_dropout")
        x = keras.layers.Add(name=f"residual_{i}_attention")([x, h])
        h = keras.layers.LayerNormalization(name=f"ln_{i}_ff")(x)
        h = masked.MaskedDense(ff_dim, activation="gelu", name=f"ff_{i}_up")(h)
        h = masked.MaskedDense(embed_dim, name=f"ff_{i}_down")(h)
        h = _dropped(h, dropout, f"ff_{i}_dropout")
        x = keras.layers.Add(name=f"residual_{i}_ff")([x, h])
    return keras.layers.LayerNormalization(name="ln_final")(x)


def _dropped(x, rate, name):
    return keras.layers.Dropout(rate, name=name)(x) if rate else x


def lstm_classifier(vocab_size=64, sequence_length=32, num_classes=2, embed_dim=32,
                    units=64, name="lstm_classifier"):
    """Two stacked LSTMs over embedded tokens, then a softmax over classes.

    Layers `embedding`, `lstm_1` (all states), `lstm_2` (last state) and
    `output`; the embedding table, both LSTMs' input and recurrent kernels and
    the output kernel are masked.

    Args:
        vocab_size: number of token ids. Defaults to `64`.
        sequence_length: tokens per example. Defaults to `32`.
        num_classes: units of the softmax output layer. Defaults to `2`.
        embed_dim: embedding width. Defaults to `32`.
        units: units of each LSTM. Defaults to `64`.
        name: the model's name. Defaults to `"lstm_classifier"`.

    Returns:
        A built functional `keras.Model` from int32 token ids to class probabilities.
    """
    tokens = keras.Input((sequence_length,), dtype="int32", name="tokens")
    x = masked.MaskedEmbedding(vocab_size, embed_dim, name="embedding")(tokens)
    x = masked.MaskedLSTM(units, return_sequences=True, name="lstm_1")(x)
    x = masked.MaskedLSTM(units, name="lstm_2")(x)
    outputs = masked.MaskedDense(num_classes, activation="softmax", name="output")(x)
    return keras.Model(tokens, outputs, name=name)
