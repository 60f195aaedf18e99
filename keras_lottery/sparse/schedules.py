"""Pruning schedules: at which optimizer steps masks update, and to what sparsity.

They mean what `tfmot.sparsity.keras` schedules mean, so a tfmot user's
arguments give the same sparsity at every step: a schedule prunes at step
`t` (the optimizer's iteration count, 0 before the first update) when
`begin_step <= t`, `t <= end_step` (or `end_step == -1` where allowed) and
`(t - begin_step) % frequency == 0`.
"""

import keras

from keras_lottery import checks


class PruningSchedule:
    """A schedule: subclasses define `sparsity(step)`, the target at `step`.

    Args:
        begin_step: first step that prunes, >= 0.
        end_step: last step that may prune, >= `begin_step`; -1 (where the
            schedule allows it) prunes to the end of training.
        frequency: steps between two updates, >= 1.
    """

    allows_no_end = False

    def __init__(self, begin_step: int, end_step: int, frequency: int):
        self.begin_step = checks.integer("begin_step", begin_step, 0)
        low = -1 if self.allows_no_end else 0
        self.end_step = checks.integer("end_step", end_step, low)
        if self.end_step != -1 and self.end_step < self.begin_step:
            raise ValueError(
                f"Expected `end_step` >= `begin_step` ({self.begin_step}), or -1 to prune to "
                f"the end of training. Received: end_step={end_step!r}"
                if self.allows_no_end else
                f"Expected `end_step` >= `begin_step` ({self.begin_step}). "
                f"Received: end_step={end_step!r}")
        self.frequency = checks.integer("frequency", frequency, 1)

    def prunes_at(self, step: int) -> bool:
        """Whether masks update at optimizer step `step`."""
        in_range = step >= self.begin_step and (self.end_step == -1 or step <= self.end_step)
        return in_range and (step - self.begin_step) % self.frequency == 0

    def sparsity(self, step: int) -> float:
        """The target sparsity at `step` (the share of weights pruned)."""
        raise NotImplementedError(
            f"Expected {type(self).__name__} to define `sparsity(step)`, or `__call__(step)` "
            "returning (prunes at step, sparsity) as a tfmot schedule does. Received neither.")

    def __call__(self, step: int) -> tuple[bool, float]:
        """`(prunes at step, sparsity at step)`, as a tfmot schedule answers."""
        return self.prunes_at(step), self.sparsity(step)

    def last_pruning_step(self, steps: int) -> int | None:
        """The last step below `steps` at which masks update (None: none)."""
        last = steps - 1 if self.end_step == -1 else min(self.end_step, steps - 1)
        if last < self.begin_step:
            return None
        return last - (last - self.begin_step) % self.frequency

    @property
    def final_sparsity(self) -> float:
        """The sparsity it aims at: its value at `end_step` (at `begin_step` with no end)."""
        return self(self.begin_step if self.end_step == -1 else self.end_step)[1]

    def get_config(self) -> dict:
        return {"begin_step": self.begin_step, "end_step": self.end_step,
                "frequency": self.frequency}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({settings})"


@keras.saving.register_keras_serializable(package="keras_lottery")
class ConstantSparsity(PruningSchedule):
    """One sparsity from `begin_step` on, reapplied every `frequency` steps.

    Args:
        target_sparsity: share of weights pruned, in [0, 1).
        begin_step: first step that prunes. Defaults to 0.
        end_step: last step that may prune; -1: to the end. Defaults to -1.
        frequency: steps between updates. Defaults to 100.

    Example:

    >>> ConstantSparsity(0.9, begin_step=1000)(1000)
    (True, 0.9)
    """

    allows_no_end = True

    def __init__(self, target_sparsity: float, begin_step: int = 0, end_step: int = -1,
                 frequency: int = 100):
        super().__init__(begin_step, end_step, frequency)
        self.target_sparsity = checks.fraction("target_sparsity", target_sparsity, zero=True)

    def sparsity(self, step):
        return self.target_sparsity

    @property
    def final_sparsity(self):
        return self.target_sparsity

    def get_config(self):
        return {"target_sparsity": self.target_sparsity, **super().get_config()}


@keras.saving.register_keras_serializable(package="keras_lottery")
class PolynomialDecay(PruningSchedule):
    """Sparsity rising from `initial_sparsity` to `final_sparsity` between
    `begin_step` and `end_step` on a polynomial (Zhu & Gupta 2017).

    Masks update every `frequency` steps in that range, to

        s(t) = final + (initial - final) * (1 - (t - begin) / (end - begin)) ** power

    with the fraction clipped to [0, 1], so `final_sparsity` holds after `end_step`.

    Args:
        initial_sparsity: sparsity at `begin_step`, in [0, 1).
        final_sparsity: sparsity from `end_step` on, in [0, 1).
        begin_step: first step that prunes.
        end_step: last step that prunes, >= `begin_step`.
        power: exponent of the decay. Defaults to 3.
        frequency: steps between updates. Defaults to 100.

    Reference:
        Zhu & Gupta, "To prune, or not to prune", 2017.
    """

    def __init__(self, initial_sparsity: float, final_sparsity: float, begin_step: int,
                 end_step: int, power: float = 3, frequency: int = 100):
        super().__init__(begin_step, end_step, frequency)
        self.initial_sparsity = checks.fraction("initial_sparsity", initial_sparsity, zero=True)
        self.final_sparsity_ = checks.fraction("final_sparsity", final_sparsity, zero=True)
        self.power = checks.positive("power", power)

    @property
    def final_sparsity(self):
        return self.final_sparsity_

    def sparsity(self, step):
        span = self.end_step - self.begin_step
        done = 1.0 if span == 0 else min(1.0, max(0.0, (step - self.begin_step) / span))
        return self.final_sparsity_ + (self.initial_sparsity - self.final_sparsity_) * (
            1 - done) ** self.power

    def get_config(self):
        return {"initial_sparsity": self.initial_sparsity,
                "final_sparsity": self.final_sparsity_, **super().get_config(),
                "power": self.power}


def as_schedule(name, value) -> PruningSchedule:
    if not isinstance(value, PruningSchedule):
        raise ValueError(
            f"Expected `{name}` a keras_lottery pruning schedule (ConstantSparsity, "
            f"PolynomialDecay or a PruningSchedule subclass). Received: {name}={value!r}")
    return value
