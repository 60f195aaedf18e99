"""He et al.'s CIFAR-10 ResNets: the paper's "ResNet-18" (16, 32, 64 channels,
3 blocks a stage) and `resnet8` (8, 16, 32 channels, 1 block a stage), small
enough to train on a CPU."""

import keras

from keras_lottery.models.blocks import DATA_FORMAT, classifier, conv_bn
from keras_lottery.models.dropout import dropout_after, resolve_dropout

# (filters, blocks) per stage; stages 2 and 3 start with stride 2.
STAGES = ((16, 3), (32, 3), (64, 3))
SMALL_STAGES = ((8, 1), (16, 1), (32, 1))


def resnet18(input_shape=(32, 32, 3), num_classes=10, dropout=None, name="resnet18"):
    """The paper's ResNet-18: a 3x3 conv, 3 stages of 3 basic blocks, fc 10.

    He et al.'s CIFAR-10 ResNet with 20 weight layers, which the paper calls
    ResNet-18 and open_lth `cifar_resnet_20`: `stem_conv` (16 filters) with
    batch normalization and relu, then stages of 16, 32 and 64 filters, 3
    basic blocks each, then `avgpool` (global average) and `output`
    (softmax). Block `j` of stage `i` is `stage{i}_block{j}_conv1` and
    `_conv2`, each 3x3 with batch normalization, added to the block's input
    before the last relu; the first block of stages 2 and 3 has stride 2
    and a 1x1 strided `_shortcut` convolution with batch normalization.

    270,896 prunable weights on CIFAR-10 (the paper: 274K). The paper's
    count includes the 3,146 values of batch normalization (scale, offset
    and moving statistics) and of the output bias: 274,042 in all.
    Convolutions and the output layer are masked, with Gaussian Glorot
    kernels; the convolutions have no bias (batch normalization's `beta`
    is theirs), the output layer a zero one.

    Args:
        input_shape: `(height, width, channels)` of one image. Defaults to
            `(32, 32, 3)` (CIFAR-10).
        num_classes: units of the softmax output layer. Defaults to `10`.
        dropout: None, or a `DropoutConfig` with `layers="conv"` or
            `"all"` to put dropout after each relu that follows a
            convolution. A bare rate means `layers="fc"`, which this network
            has none of, and is refused. Defaults to `None`.
        name: the model's name. Defaults to `"resnet18"`.

    Returns:
        A built functional `keras.Model` whose output is class probabilities.

    Example:

    >>> model = resnet18()
    >>> keras_lottery.sparsity_report(model).total
    270896

    Reference:
        - [Frankle & Carbin, 2019](https://arxiv.org/abs/1803.03635),
          Figure 2 and Appendix I.
        - [He et al., 2016](https://arxiv.org/abs/1512.03385), section 4.2.
    """
    return _cifar_resnet(STAGES, input_shape, num_classes, dropout, name)


def resnet8(input_shape=(32, 32, 3), num_classes=10, dropout=None, name="resnet8"):
    """A small ResNet for CPU experiments: `resnet18`'s design with one basic
    block per stage and 8, 16, 32 filters.

    Not in the paper: 8 weight layers (the stem, two convolutions per block,
    the output) and two 1x1 projection shortcuts, 19,464 prunable weights
    on Fashion-MNIST, with batch normalization after every convolution: a
    deep-network recipe (SGD with momentum, global pruning) that trains in
    about a minute an epoch on a 2-core CPU. Layer names as in `resnet18`
    (`stage{i}_block1_conv1`, ...).

    Args:
        input_shape, num_classes, dropout: as for `resnet18`.
        name: the model's name. Defaults to `"resnet8"`.

    Returns:
        A built functional `keras.Model` whose output is class probabilities.
    """
    return _cifar_resnet(SMALL_STAGES, input_shape, num_classes, dropout, name)


def _cifar_resnet(stages, input_shape, num_classes, dropout, name):
    dropout = resolve_dropout(dropout, name, kinds=("conv",))
    inputs = keras.Input(input_shape, name="input")
    x = conv_bn(inputs, stages[0][0], "stem_conv")
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    x = dropout_after(x, dropout, "conv", "stem")
    for stage, (filters, blocks) in enumerate(stages, start=1):
        for block in range(1, blocks + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(x, filters, strides, f"stage{stage}_block{block}", dropout)
    x = keras.layers.GlobalAveragePooling2D(data_format=DATA_FORMAT, name="avgpool")(x)
    outputs = classifier(x, (), num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)


def _basic_block(x, filters, strides, name, dropout):
    shortcut = x
    x = conv_bn(x, filters, f"{name}_conv1", strides=strides)
    x = keras.layers.Activation("relu", name=f"{name}_relu1")(x)
    x = dropout_after(x, dropout, "conv", f"{name}_conv1")
    x = conv_bn(x, filters, f"{name}_conv2")
    # A 1x1 projection where the shape changes, as in open_lth (He et al.'s
    # CIFAR nets pad with zeros instead): the paper's 274K count includes it.
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = conv_bn(shortcut, filters, f"{name}_shortcut", strides=strides, kernel_size=1)
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    x = keras.layers.Activation("relu", name=f"{name}_relu2")(x)
    return dropout_after(x, dropout, "conv", f"{name}_conv2")
