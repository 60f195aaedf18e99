"""Where the paper's networks put dropout: a rate and the kind of layer it follows.

The builders in `keras_lottery.models` take `dropout=None | float | DropoutConfig`.
"""

import dataclasses
import numbers

import keras

from keras_lottery import checks

# Which layers a `DropoutConfig` puts dropout after.
DROPOUT_LAYERS = ("fc", "conv", "all")
_KIND_NAMES = {"fc": "hidden dense", "conv": "convolutional"}


@dataclasses.dataclass(frozen=True)
class DropoutConfig:
    """Dropout after every hidden dense layer, every convolution, or both.

    The paper's dropout experiments (Conv-2/4/6, Figure 9) use
    `DropoutConfig(0.5)`: dropout after each hidden fully-connected layer.
    A dense layer's dropout follows its activation; a convolution's follows
    its activation (after batch normalization where there is one). The
    output layer never gets dropout, and a rate of 0 adds no layers.

    Example:

    >>> model = keras_lottery.models.conv2(dropout=DropoutConfig(0.5))
    >>> [layer.name for layer in model.layers if "dropout" in layer.name]
    ['fc1_dropout', 'fc2_dropout']
    """

    rate: float  # Fraction of units dropped, in [0, 1).
    layers: str = "fc"  # "fc" (hidden dense layers), "conv" or "all".

    def __post_init__(self):
        rate = checks.fraction("rate", self.rate, zero=True)
        checks.choice("layers", self.layers, DROPOUT_LAYERS)
        # Frozen: `object.__setattr__` is how a dataclass normalizes a field.
        object.__setattr__(self, "rate", rate)


def resolve_dropout(dropout, network: str, kinds: tuple) -> DropoutConfig | None:
    """The `DropoutConfig` a builder's `dropout` argument means, or None for none.

    `kinds` are the layer kinds `network` has ("fc", "conv"). A config that
    would add no dropout to this network is refused rather than ignored.
    """
    if dropout is None:
        return None
    if isinstance(dropout, DropoutConfig):
        config = dropout
    elif isinstance(dropout, numbers.Real) and not isinstance(dropout, bool):
        config = DropoutConfig(checks.fraction("dropout", dropout, zero=True))
    else:
        raise ValueError(
            "Expected `dropout` None, a rate in [0, 1) or a "
            f"`DropoutConfig`. Received: dropout={dropout!r}"
        )
    if config.rate == 0:
        return None
    if config.layers != "all" and config.layers not in kinds:
        allowed = (*kinds, "all")
        raise ValueError(
            f"{network} has no {_KIND_NAMES[config.layers]} layers to put dropout "
            f"after. Expected `dropout` layers in {allowed}, e.g. "
            f"DropoutConfig({config.rate}, layers={allowed[0]!r}). "
            f"Received: dropout={dropout!r}"
        )
    return config


def dropout_after(x, config: DropoutConfig | None, kind: str, name: str):
    """`x` followed by a Dropout named `{name}_dropout` if `config` covers `kind`."""
    if config is None or config.layers not in (kind, "all"):
        return x
    return keras.layers.Dropout(config.rate, name=f"{name}_dropout")(x)
