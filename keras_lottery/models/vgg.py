"""VGG-19 for CIFAR-10, with batch normalization, as the paper trains it."""

import keras

from keras_lottery.models.blocks import DATA_FORMAT, classifier, conv_bn, max_pool
from keras_lottery.models.dropout import dropout_after, resolve_dropout

# Filters of the 3x3 convolutions, "pool" for a 2x2 max pool.
PLAN = (
    64, 64, "pool",
    128, 128, "pool",
    256, 256, 256, 256, "pool",
    512, 512, 512, 512, "pool",
    512, 512, 512, 512,
)


def vgg19(input_shape=(32, 32, 3), num_classes=10, dropout=None, name="vgg19"):
    """VGG-19, CIFAR variant: 16 convolutions, global average pool, fc 10.

    Convolutions `conv1` to `conv16` (2x64, pool, 2x128, pool, 4x256, pool,
    4x512, pool, 4x512), each 3x3 "same" and followed by batch normalization
    (`conv{i}_bn`) and a relu (`conv{i}_relu`); pools `pool1` to `pool4`;
    then `avgpool` (global average) and `output` (softmax). As in Liu et
    al. (2019) and open_lth's `cifar_vgg_19`, there are no hidden dense
    layers. 20,024,000 prunable weights on CIFAR-10 (the paper: 20.0M).
    Convolutions and the output layer are masked, with Gaussian Glorot
    kernels; the convolutions have no bias (batch normalization's `beta`
    is theirs), the output layer a zero one.

    Args:
        input_shape: `(height, width, channels)` of one image, at least
            16x16 to survive four pools. Defaults to `(32, 32, 3)`.
        num_classes: units of the softmax output layer. Defaults to `10`.
        dropout: None, or a `DropoutConfig` with `layers="conv"` or
            `"all"` to put dropout after each convolution's relu. A bare
            rate means `layers="fc"`, which this network has none of, and
            is refused. Defaults to `None`.
        name: the model's name. Defaults to `"vgg19"`.

    Returns:
        A built functional `keras.Model` whose output is class probabilities.

    Example:

    >>> model = vgg19()
    >>> keras_lottery.sparsity_report(model).total
    20024000

    Reference:
        - [Frankle & Carbin, 2019](https://arxiv.org/abs/1803.03635),
          Figure 2 and Appendix I.
        - [Liu et al., 2019](https://arxiv.org/abs/1810.05270), the CIFAR
          VGG-19 it follows.
    """
    dropout = resolve_dropout(dropout, "vgg19", kinds=("conv",))
    inputs = keras.Input(input_shape, name="input")
    x, convs, pools = inputs, 0, 0
    for spec in PLAN:
        if spec == "pool":
            pools += 1
            x = max_pool(f"pool{pools}")(x)
            continue
        convs += 1
        x = conv_bn(x, spec, f"conv{convs}")
        x = keras.layers.Activation("relu", name=f"conv{convs}_relu")(x)
        x = dropout_after(x, dropout, "conv", f"conv{convs}")
    x = keras.layers.GlobalAveragePooling2D(data_format=DATA_FORMAT, name="avgpool")(x)
    outputs = classifier(x, (), num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)
