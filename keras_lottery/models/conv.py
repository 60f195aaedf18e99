"""Conv-2, Conv-4 and Conv-6, the paper's VGG-like networks for CIFAR-10."""

import keras

from keras_lottery.models.blocks import classifier, conv, max_pool
from keras_lottery.models.dropout import dropout_after, resolve_dropout

# Filters of each module's two 3x3 convolutions; each module ends with a
# 2x2 max pool. Conv-2 has the first module, Conv-4 two, Conv-6 three.
MODULES = ((64, 64), (128, 128), (256, 256))
HIDDEN_UNITS = (256, 256)


def conv2(input_shape=(32, 32, 3), num_classes=10, dropout=None, name="conv2"):
    """Conv-2: conv 64, 64, pool; fc 256, 256, then the output layer.

    4,300,992 prunable weights on CIFAR-10 (the paper: 4.3M), 38,592 of
    them in convolutions.
    """
    return _conv_net(1, input_shape, num_classes, dropout, name)


def conv4(input_shape=(32, 32, 3), num_classes=10, dropout=None, name="conv4"):
    """Conv-4: conv 64, 64, pool, 128, 128, pool; fc 256, 256, output.

    2,425,024 prunable weights on CIFAR-10 (the paper: 2.4M), 259,776 of
    them in convolutions.
    """
    return _conv_net(2, input_shape, num_classes, dropout, name)


def conv6(input_shape=(32, 32, 3), num_classes=10, dropout=None, name="conv6"):
    """Conv-6: conv 64, 64, pool, 128, 128, pool, 256, 256, pool; fc 256, 256, output.

    2,261,184 prunable weights on CIFAR-10, 1,144,512 of them in
    convolutions. The paper's Figure 2 prints 1.7M (and 1.1M for the
    convolutions): that total does not follow from the architecture its
    Appendix H describes, while the densities it prints for Conv-6 (26.4%
    after 7 rounds at conv 15%, fc 20%, output 10%) follow from 2,261,184
    and from no 1.7M reading of it.
    """
    return _conv_net(3, input_shape, num_classes, dropout, name)


_SHARED_DOC = """
    Module `i` has two 3x3 "same" relu convolutions (`conv{2i-1}`,
    `conv{2i}`) and a 2x2 max pool (`pool{i}`); then come `flatten`, `fc1`
    and `fc2` (256 relu units each) and `output` (softmax). Convolutions and
    dense layers are masked, with Gaussian Glorot kernels and zero biases.

    Args:
        input_shape: `(height, width, channels)` of one image; height and
            width must survive the 2x2 pools. Defaults to `(32, 32, 3)`
            (CIFAR-10).
        num_classes: units of the softmax output layer. Defaults to `10`.
        dropout: None, a rate in [0, 1) or a `DropoutConfig`; a rate puts
            dropout after `fc1` and `fc2`, as in the paper's dropout
            experiments (rate 0.5). Defaults to `None`.
        name: the model's name. Defaults to the network's name.

    Returns:
        A built functional `keras.Model` whose output is class probabilities.

    Example:

    >>> model = conv2(dropout=0.5)
    >>> [layer.name for layer in model.layers if "dropout" in layer.name]
    ['fc1_dropout', 'fc2_dropout']

    Reference:
        - [Frankle & Carbin, 2019](https://arxiv.org/abs/1803.03635),
          Figure 2 and Appendix H.
    """

# As Keras applications do: one copy of the arguments, appended to each
# (`or ""`: docstrings are None under `python -OO`).
for _builder in (conv2, conv4, conv6):
    _builder.__doc__ = (_builder.__doc__ or "") + _SHARED_DOC
del _builder


def _conv_net(modules, input_shape, num_classes, dropout, name):
    dropout = resolve_dropout(dropout, f"conv{2 * modules}", kinds=("conv", "fc"))
    inputs = keras.Input(input_shape, name="input")
    x, index = inputs, 0
    for module, filters in enumerate(MODULES[:modules], start=1):
        for width in filters:
            index += 1
            x = conv(width, f"conv{index}")(x)
            x = dropout_after(x, dropout, "conv", f"conv{index}")
        x = max_pool(f"pool{module}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = classifier(x, HIDDEN_UNITS, num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)
