"""A small fully-connected network for MNIST-1D, a data set fast enough for a laptop."""

import keras

from keras_lottery import checks
from keras_lottery.models.blocks import classifier
from keras_lottery.models.dropout import resolve_dropout


def mlp(input_shape=(40,), num_classes=10, hidden=(100, 100), dropout=None, name="mlp"):
    """A multilayer perceptron: `fc1`, `fc2`, ... relu layers, then `output`.

    With the defaults, the MLP Greydanus (2020) uses on MNIST-1D: 40 inputs,
    two hidden layers of 100, 10 classes (15,000 prunable weights).

    Args:
        input_shape: shape of one example, flattened first. Defaults to `(40,)`.
        num_classes: units of the softmax output layer. Defaults to `10`.
        hidden: units of each hidden layer. Defaults to `(100, 100)`.
        dropout: None, a rate in [0, 1) or a `DropoutConfig` (after hidden
            layers). Defaults to `None`.
        name: the model's name. Defaults to `"mlp"`.

    Returns:
        A built functional `keras.Model` whose output is class probabilities.

    Reference:
        - [Greydanus, 2020](https://arxiv.org/abs/2011.14439), "Scaling down
          deep learning", the MNIST-1D lottery-ticket experiment.
    """
    hidden = checks.integers("hidden", hidden, 1)
    dropout = resolve_dropout(dropout, "mlp", kinds=("fc",))
    inputs = keras.Input(input_shape, name="input")
    x = keras.layers.Flatten(name="flatten")(inputs)
    outputs = classifier(x, hidden, num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)
