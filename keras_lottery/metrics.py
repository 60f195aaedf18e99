"""Language-model metrics: bits per character and perplexity, as compiled Keras metrics.

Compiled with a model, they are recorded like any metric by `TicketSearch`
(`val_bits_per_character`, `test_perplexity`, ...) and by `model.evaluate`.
Both average the next-token cross-entropy over every token (not per
sequence), then express it in bits (divided by ln 2) or as its exponential.
With byte-level ids the first is bits per byte.
"""

import math

import keras

from keras_lottery import checks


class _TokenCrossEntropy(keras.metrics.Mean):
    """Mean sparse cross-entropy (nats) over every token of `y_true`."""

    def __init__(self, from_logits=True, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.from_logits = checks.boolean("from_logits", from_logits)

    def update_state(self, y_true, y_pred, sample_weight=None):
        # In float32, as the compiled loss is: float16 logits (mixed precision) would
        # round the entropy differently from the loss.
        entropy = keras.losses.sparse_categorical_crossentropy(
            y_true, keras.ops.cast(y_pred, "float32"), from_logits=self.from_logits)
        return super().update_state(entropy, sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="keras_lottery")
class BitsPerCharacter(_TokenCrossEntropy):
    """Mean next-token cross-entropy in bits: nats / ln 2 (bits per byte on byte ids).

    Args:
        from_logits: whether the model outputs logits (the LMs of
            `keras_lottery.models` do) rather than probabilities. Defaults to True.
        name: defaults to `"bits_per_character"`.
    """

    def __init__(self, from_logits=True, name="bits_per_character", dtype=None):
        super().__init__(from_logits=from_logits, name=name, dtype=dtype)

    def result(self):
        return super().result() / math.log(2.0)


@keras.saving.register_keras_serializable(package="keras_lottery")
class Perplexity(_TokenCrossEntropy):
    """exp(mean next-token cross-entropy): the vocabulary size for a uniform guess.

    Args:
        from_logits: see `BitsPerCharacter`. Defaults to True.
        name: defaults to `"perplexity"`.
    """

    def __init__(self, from_logits=True, name="perplexity", dtype=None):
        super().__init__(from_logits=from_logits, name=name, dtype=dtype)

    def result(self):
        return keras.ops.exp(super().result())
