"""The behaviour every masked layer shares: mask variables, saving, refusals.

A masked layer is its Keras twin plus one non-trainable `<weight>_mask`
variable per prunable weight, multiplied into that weight inside `call()`.
"""

import keras
from keras import ops

class MaskedLayer:
    """Mixin for a Keras layer whose prunable weights are multiplied by masks.

    Subclasses list their prunable weights in `_prunable_attributes`, a dict
    from the public weight name (`"kernel"`) to the attribute holding its
    variable (`"_kernel"`), and set `prunable_kind`. They call
    `self._build_masks()` at the end of `build()` and use
    `self.masked("kernel")` in `call()`.

    The mixin must come first in the bases so that its `save_own_variables`,
    `load_own_variables`, `quantize` and `enable_lora` win.
    """

    _prunable_attributes: dict = {}
    prunable_kind: str = ""

    def _check_masked_kwargs(self, kwargs):
        # LoRA adds a low-rank delta to the kernel that the mask would not
        # cover; refuse it rather than train weights the mask says are gone.
        if kwargs.get("lora_rank"):
            raise ValueError(
                f"{type(self).__name__} does not support LoRA. Expected "
                f"`lora_rank=None`. Received: lora_rank={kwargs['lora_rank']}"
            )

    def _build_masks(self):
        for name, attribute in self._prunable_attributes.items():
            weight = getattr(self, attribute)
            mask = self.add_weight(
                name=f"{name}_mask",
                shape=weight.shape,
                initializer="ones",
                dtype=weight.dtype,
                trainable=False,
            )
            setattr(self, f"{name}_mask", mask)

    def masked(self, name):
        """The weight `name` multiplied by its mask, as a tensor."""
        weight = getattr(self, self._prunable_attributes[name])
        return ops.multiply(weight, getattr(self, f"{name}_mask"))

    def get_prunable_weights(self):
        """Returns `[(weight_variable, mask_variable), ...]`, one per weight.

        The protocol `keras_lottery` uses to find what it may prune, named as
        in tfmot. Empty until the layer is built.
        """
        if not self.built:
            return []
        return [
            (getattr(self, attribute), getattr(self, f"{name}_mask"))
            for name, attribute in self._prunable_attributes.items()
        ]

    # Keras' Dense/Conv/Embedding override saving to handle quantization and
    # LoRA and would drop the mask; the base `Layer` version saves every
    # variable in tracking order, masks included, which is what we want.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def quantize(self, mode=None, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} cannot be quantized while masked. "
            "Call `keras_lottery.strip(model)` first, then quantize the "
            "plain Keras model it returns."
        )

    def enable_lora(self, rank, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} does not support LoRA: the low-rank "
            "update would bypass the mask. Call `keras_lottery.strip(model)` "
            "first, then enable LoRA on the plain Keras model."
        )


def add_bias_and_activate(layer, outputs, channels, rank=None):
    """Bias and activation as Keras' convolutions and dense layers do them.

    `rank` is the number of spatial dimensions for a convolution (the bias is
    reshaped to broadcast over them), or None for a dense layer.
    """
    bias = getattr(layer, "bias", None)
    if bias is not None:
        if rank is not None:
            if layer.data_format == "channels_last":
                bias_shape = (1,) * (rank + 1) + (channels,)
            else:
                bias_shape = (1, channels) + (1,) * rank
            bias = ops.reshape(bias, bias_shape)
        outputs = ops.add(outputs, bias)
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return outputs
