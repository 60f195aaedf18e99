"""Presets carry the paper's hyperparameters and build a search that trains."""

import keras
import numpy as np
import pytest
from helpers import to_numpy

from keras_lottery import presets
from keras_lottery.pruning import PruneRates
from keras_lottery.schedules import LinearWarmup


def test_paper_hyperparameters():
    lenet = presets.get("lenet_300_100_mnist")
    assert (lenet.optimizer, lenet.learning_rate, lenet.batch_size, lenet.iterations) == (
        "adam", 1.2e-3, 60, 50_000)
    assert lenet.prune_rates == PruneRates(0.2, by_kind={"output": 0.1})
    assert presets.get("conv6_cifar10").prune_rates.by_kind == {"conv": 0.15, "output": 0.1}
    assert presets.get("conv2_cifar10_dropout").dropout == 0.5
    assert presets.get("conv2_cifar10_dropout").learning_rate == 3e-4
    vgg = presets.get("vgg19_cifar10")
    assert vgg.global_pruning and vgg.warmup_steps == 10_000 and vgg.decay_at == (56_000, 84_000)
    resnet = presets.get("resnet18_cifar10")
    assert (resnet.learning_rate, resnet.warmup_steps, resnet.batch_size) == (0.03, 20_000, 128)


def test_optimizer_follows_warmup_then_step_decay():
    optimizer = presets.get("vgg19_cifar10").optimizer_instance()
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.momentum == 0.9
    schedule = optimizer._learning_rate
    assert isinstance(schedule, LinearWarmup)
    values = [float(to_numpy(schedule(s))) for s in (0, 5_000, 10_000, 60_000, 90_000)]
    np.testing.assert_allclose(values, [0.0, 0.05, 0.1, 0.01, 0.001], rtol=1e-5)
    plain = presets.get("vgg19_cifar10_no_warmup").optimizer_instance()
    assert float(to_numpy(plain._learning_rate(0))) == pytest.approx(0.1)
    adam = presets.get("lenet_300_100_mnist").optimizer_instance()
    assert isinstance(adam, keras.optimizers.Adam)
    assert float(to_numpy(adam.learning_rate)) == pytest.approx(1.2e-3)


def test_iterations_become_whole_epochs():
    lenet = presets.get("lenet_300_100_mnist")
    assert lenet.epochs(55_000) == 55  # 917 iterations an epoch: 55 epochs = 50,435
    assert presets.get("lenet_300_100_mnist", iterations=10).epochs(55_000) == 1


def test_overrides_and_bad_names():
    assert presets.get("conv2_cifar10", learning_rate=0.01, rounds=3).rounds == 3
    with pytest.raises(ValueError, match=r"Expected `name` among .*Received: name='lenet'"):
        presets.get("lenet")
    with pytest.raises(ValueError, match=r"Expected overrides among .*Received: \['speed'\]"):
        presets.get("conv2_cifar10", speed=2)
    with pytest.raises(ValueError, match="Expected `optimizer` 'adam' or 'sgd'"):
        presets.get("conv2_cifar10", optimizer="rmsprop").optimizer_instance()
