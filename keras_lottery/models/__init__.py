"""The paper's networks, built from masked layers, and a registry of them by name;
two small sequence classifiers (a causal transformer, an LSTM) and two
character-level language models (`transformer_lm`, `lstm_lm`) beside them.

Every builder returns a built functional model whose layers have fixed
names, so that variable paths (`"fc1/kernel"`) are stable keys on disk.
"""

from keras_lottery import checks
from keras_lottery.models.conv import conv2, conv4, conv6
from keras_lottery.models.dropout import DropoutConfig
from keras_lottery.models.language import lstm_lm, transformer_lm
from keras_lottery.models.lenet import lenet_300_100
from keras_lottery.models.mlp import mlp
from keras_lottery.models.resnet import resnet8, resnet18
from keras_lottery.models.sequence import causal_transformer, lstm_classifier
from keras_lottery.models.vgg import vgg19

# Builders by the names runs and presets refer to them by.
NETWORKS = {
    "lenet_300_100": lenet_300_100,
    "conv2": conv2,
    "conv4": conv4,
    "conv6": conv6,
    "vgg19": vgg19,
    "resnet18": resnet18,
    "resnet8": resnet8,
    "mlp": mlp,
}
# Language models by name: token ids in, next-token logits out (they take
# `vocab_size` and `sequence_length`, not `input_shape` and `num_classes`).
LANGUAGE_MODELS = {"transformer_lm": transformer_lm, "lstm_lm": lstm_lm}


def get(name, /, **kwargs):
    """Builds the network registered as `name`.

    Args:
        name: one of the keys of `NETWORKS`.
        **kwargs: passed to the builder: `input_shape`, `num_classes`,
            `dropout`, and `name` for the model's name.

    Returns:
        A built `keras.Model`, as the builder returns it.

    Example:

    >>> model = keras_lottery.models.get("conv2", dropout=0.5)
    """
    return NETWORKS[checks.choice("name", name, NETWORKS)](**kwargs)


__all__ = [
    "DropoutConfig",
    "LANGUAGE_MODELS",
    "NETWORKS",
    "causal_transformer",
    "conv2",
    "conv4",
    "conv6",
    "get",
    "lenet_300_100",
    "lstm_classifier",
    "lstm_lm",
    "mlp",
    "resnet8",
    "resnet18",
    "transformer_lm",
    "vgg19",
]
