"""Warmup and step decay: values at chosen steps, serialization, use in fit."""

import keras
import numpy as np
import pytest
from helpers import to_numpy

from keras_lottery.schedules import LinearWarmup, step_decay


def value(schedule, step):
    return float(to_numpy(schedule(step)))


def test_step_decay_divides_at_boundaries():
    lr = step_decay(0.1, [56_000, 84_000])
    assert [value(lr, s) for s in (0, 55_999, 56_001, 84_001)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.001])


@pytest.mark.parametrize(
    "step, expected", [(0, 0.0), (1, 0.1 / 10_000), (2_500, 0.025), (10_000, 0.1),
                       (56_001, 0.01), (90_000, 0.001)])
def test_warmup_into_step_decay(step, expected):
    lr = LinearWarmup(step_decay(0.1, [56_000, 84_000]), warmup_steps=10_000)
    assert value(lr, step) == pytest.approx(expected, rel=1e-5)


def test_warmup_to_a_constant():
    lr = LinearWarmup(0.03, warmup_steps=20_000)
    assert [value(lr, s) for s in (0, 5_000, 20_000, 30_000)] == pytest.approx(
        [0.0, 0.0075, 0.03, 0.03])


def test_serialization_round_trip_inside_an_optimizer():
    lr = LinearWarmup(step_decay(0.1, [50, 80]), warmup_steps=20)
    optimizer = keras.optimizers.SGD(lr, momentum=0.9)
    again = keras.optimizers.SGD.from_config(optimizer.get_config())
    schedule = again._learning_rate  # `learning_rate` gives the current value, not the schedule
    assert isinstance(schedule, LinearWarmup)
    for step in (0, 10, 20, 60, 90):
        assert value(schedule, step) == pytest.approx(value(lr, step))
    constant = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(LinearWarmup(0.5, 4)))
    assert value(constant, 2) == pytest.approx(0.25)


def test_the_optimizer_follows_the_schedule_during_fit():
    lr = LinearWarmup(0.1, warmup_steps=4)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(lr), "mse")
    x, y = np.ones((6, 3), "float32"), np.zeros((6, 1), "float32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert int(to_numpy(model.optimizer.iterations)) == 3
    assert float(to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.075)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(after=0.1, warmup_steps=0), r"`warmup_steps` an integer >= 1. Received: warmup_steps=0"),
     (dict(after=0.1, warmup_steps=2.5), r"warmup_steps=2.5"),
     (dict(after=-1.0, warmup_steps=3), r"Expected `after` a LearningRateSchedule or a positive"),
     (dict(after="fast", warmup_steps=3), r"Received: after='fast'")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LinearWarmup(**kwargs)
    with pytest.raises(ValueError, match="increasing positive `boundaries`"):
        step_decay(0.1, [10, 5])
