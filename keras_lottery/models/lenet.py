"""LeNet-300-100, the paper's fully-connected network for MNIST."""

import keras

from keras_lottery.models.blocks import classifier
from keras_lottery.models.dropout import resolve_dropout


def lenet_300_100(input_shape=(28, 28, 1), num_classes=10, dropout=None, name="lenet_300_100"):
    """LeNet-300-100: fully-connected layers of 300 and 100 relu units.

    Layers `flatten`, `fc1` (300), `fc2` (100) and `output` (softmax), all
    masked, with Gaussian Glorot kernels and zero biases. On MNIST it has
    266,200 prunable weights (784 * 300 + 300 * 100 + 100 * 10).

    Args:
        input_shape: shape of one example; flattened first, so `(28, 28, 1)`
            and `(784,)` give the same network. Defaults to `(28, 28, 1)`.
        num_classes: units of the softmax output layer. Defaults to `10`.
        dropout: None, a rate in [0, 1) or a `DropoutConfig`; a rate puts
            dropout after `fc1` and `fc2`. This network has no convolutions,
            so `layers="conv"` is refused. Defaults to `None`.
        name: the model's name. Defaults to `"lenet_300_100"`.

    Returns:
        A built functional `keras.Model` whose output is class probabilities.

    Example:

    >>> model = lenet_300_100()
    >>> keras_lottery.sparsity_report(model).total
    266200

    Reference:
        - [Frankle & Carbin, 2019](https://arxiv.org/abs/1803.03635),
          Figure 2.
    """
    dropout = resolve_dropout(dropout, "lenet_300_100", kinds=("fc",))
    inputs = keras.Input(input_shape, name="input")
    x = keras.layers.Flatten(name="flatten")(inputs)
    outputs = classifier(x, (300, 100), num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)
