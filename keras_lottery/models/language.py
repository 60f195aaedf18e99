"""Character-level language models from masked layers: a GPT-style transformer and an LSTM.

Both map token ids `(batch, sequence_length)` to next-token logits
`(batch, sequence_length, vocab_size)` (no softmax: compile with
`SparseCategoricalCrossentropy(from_logits=True)`, and
`keras_lottery.metrics.BitsPerCharacter` / `Perplexity`). Their prunable
weights fall into the kinds the literature prunes at different rates:
`"embedding"` (token and position tables), `"attention"` (query, key, value
and output projections), `"dense"` (the transformer's feed-forward layers),
`"recurrent_input"` / `"recurrent"` (the LSTMs' input and recurrent kernels)
and `"output"` (the projection to the vocabulary); `PruneRates(by_kind=...)`
takes a rate for each. Sizes default to what trains in minutes on a CPU.
"""

import keras

from keras_lottery import layers as masked
from keras_lottery.models.sequence import causal_blocks


def transformer_lm(vocab_size=256, sequence_length=128, embed_dim=128, num_heads=4,
                   ff_dim=512, num_blocks=2, dropout=None, name="transformer_lm"):
    """A GPT-style causal transformer language model.

    Token and position embeddings, `num_blocks` pre-LayerNorm blocks of causal
    multi-head attention and a gelu feed-forward layer (layer names as in
    `models.sequence.causal_blocks`), a final LayerNorm and `output`, the
    projection to next-token logits.

    Args:
        vocab_size: token ids (256 for bytes; a `text.Vocabulary`'s size). Defaults to `256`.
        sequence_length: tokens per sequence (the longest context). Defaults to `128`.
        embed_dim: width of the residual stream. Defaults to `128`.
        num_heads: attention heads; `embed_dim` must divide by it. Defaults to `4`.
        ff_dim: width of the feed-forward layer. Defaults to `512`.
        num_blocks: transformer blocks. Defaults to `2`.
        dropout: a rate after the embeddings, each attention and each
            feed-forward layer, or None. Defaults to `None`.
        name: the model's name. Defaults to `"transformer_lm"`.
    """
    tokens = keras.Input((sequence_length,), dtype="int32", name="tokens")
    x = causal_blocks(tokens, vocab_size, sequence_length, embed_dim, num_heads, ff_dim,
                      num_blocks, dropout)
    logits = masked.MaskedDense(vocab_size, name="output")(x)
    return keras.Model(tokens, logits, name=name)


def lstm_lm(vocab_size=256, sequence_length=128, embed_dim=64, units=256, dropout=None,
            name="lstm_lm"):
    """A two-layer LSTM language model.

    Layers `embedding`, `lstm_1`, `lstm_2` (both returning every step) and
    `output`, the projection to next-token logits. `dropout` (a rate) follows
    the embedding and each LSTM, as in Zaremba et al. (2014).

    Args:
        vocab_size: token ids. Defaults to `256`.
        sequence_length: tokens per sequence (the unrolled length). Defaults to `128`.
        embed_dim: embedding width. Defaults to `64`.
        units: units of each LSTM. Defaults to `256`.
        dropout: a rate, or None. Defaults to `None`.
        name: the model's name. Defaults to `"lstm_lm"`.
    """
    tokens = keras.Input((sequence_length,), dtype="int32", name="tokens")
    x = masked.MaskedEmbedding(vocab_size, embed_dim, name="embedding")(tokens)
    for i in (1, 2):
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        x = masked.MaskedLSTM(units, return_sequences=True, name=f"lstm_{i}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout_3")(x)
    logits = masked.MaskedDense(vocab_size, name="output")(x)
    return keras.Model(tokens, logits, name=name)
