"""Learning-rate schedules of the paper: linear warmup, composable with any schedule.

Step decay is Keras' own `PiecewiseConstantDecay`; `step_decay` only spells
the paper's "divide by 10 at these iterations" in one call.
"""

import keras
from keras import ops

from keras_lottery import checks


@keras.saving.register_keras_serializable(package="keras_lottery")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Scales another schedule linearly from 0 to full over `warmup_steps`.

    The rate at step `s` is `after(s) * min(1, s / warmup_steps)`: from 0 at
    step 0 up to the wrapped schedule's value at `warmup_steps`, then that
    schedule unchanged. The paper warms VGG-19 up to 0.1 over 10K iterations
    and ResNet-18 to 0.03 over 20K.

    Args:
        after: the schedule to warm up into, or a constant learning rate.
        warmup_steps: iterations of the linear ramp, an integer >= 1.

    Example:

    >>> lr = LinearWarmup(step_decay(0.1, [56_000, 84_000]), warmup_steps=10_000)
    >>> optimizer = keras.optimizers.SGD(lr, momentum=0.9)

    Reference:
        Frankle & Carbin, "The Lottery Ticket Hypothesis", ICLR 2019, section 4.
    """

    def __init__(self, after, warmup_steps):
        warmup_steps = checks.integer("warmup_steps", warmup_steps, 1)
        if not isinstance(after, keras.optimizers.schedules.LearningRateSchedule):
            try:
                after = checks.positive("after", after)
            except ValueError:
                # Either of two kinds: the message names both.
                raise ValueError(
                    "Expected `after` a LearningRateSchedule or a positive learning "
                    f"rate. Received: after={after!r}"
                ) from None
        self.after = after
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        ramp = ops.minimum(1.0, step / float(self.warmup_steps))
        after = self.after(step) if callable(self.after) else self.after
        return ops.multiply(ops.cast(after, "float32"), ramp)

    def get_config(self):
        after = self.after
        if isinstance(after, keras.optimizers.schedules.LearningRateSchedule):
            after = keras.saving.serialize_keras_object(after)
        return {"after": after, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["after"], dict):
            config["after"] = keras.saving.deserialize_keras_object(config["after"])
        return cls(**config)


def step_decay(initial, boundaries, factor=0.1):
    """`initial`, multiplied by `factor` at each of `boundaries` (iterations).

    The paper's VGG-19 schedule is `step_decay(0.1, [56_000, 84_000])`.
    Returns Keras' `PiecewiseConstantDecay`.
    """
    boundaries = list(boundaries)
    if boundaries != sorted(boundaries) or any(b < 1 for b in boundaries):
        raise ValueError(
            f"Expected increasing positive `boundaries`. Received: boundaries={boundaries}"
        )
    values = [initial * factor**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
