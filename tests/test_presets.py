"""Presets carry the paper's hyperparameters and build a search that trains."""

import keras
import numpy as np
import pytest
from helpers import to_numpy

from keras_lottery import presets
from keras_lottery.pruning.rules import PruneRates
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
    assert vgg.budget == "global" and vgg.warmup_steps == 10_000 and vgg.decay_at == (56_000, 84_000)
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
    with pytest.raises(ValueError, match="Expected `optimizer` among 'adam', 'sgd'"):
        presets.get("conv2_cifar10", optimizer="rmsprop").optimizer_instance()


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    """Tiny local copies in the layouts `keras_lottery.data.datasets` reads first."""
    directory = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for name, shape in [("mnist", (28, 28)), ("fashion_mnist", (28, 28)), ("cifar10", (32, 32, 3))]:
        labels = lambda n: np.arange(n, dtype="uint8") % 10  # noqa: E731 - every class present
        np.savez(directory / f"{name}.npz",
                 x_train=rng.integers(0, 256, (160, *shape), dtype="uint8"), y_train=labels(160),
                 x_test=rng.integers(0, 256, (20, *shape), dtype="uint8"), y_test=labels(20))
    # Texts for the language-model presets: 6,000 characters, 5% is two 128-character windows.
    (directory / "text").mkdir()
    words = "to be or not to be that is the question whether tis nobler".split()
    for name in ("jargon.txt", "tiny_shakespeare.txt"):
        (directory / "text" / name).write_text(" ".join(rng.choice(words, 1400))[:6000])
    return directory


# The small networks in the default run; the deep and language-model presets,
# which take 10-25 s each to build and step, in the slow one.
QUICK_PRESETS = [n for n in sorted(presets.PRESETS) if n.split("_")[0] in ("lenet", "conv2", "mlp",
                                                                             "resnet8")]


@pytest.mark.parametrize("name", [
    n if n in QUICK_PRESETS else pytest.param(n, marks=pytest.mark.slow)
    for n in sorted(presets.PRESETS)])
def test_every_preset_builds_and_trains_a_step(name, fake_data):
    import keras_lottery as kl

    preset = presets.get(name)
    # Language models on short windows and without torch.compile/XLA, whose compilation of
    # the LM presets takes minutes on 2 CPUs (measured: 1-3 min each on torch).
    short = {"sequence_length": 16, "jit_compile": False} if preset.sequence_length else {}
    search = kl.TicketSearch.from_preset(
        name, data_dir=fake_data, validation_size=20, limit=preset.batch_size,
        iterations=1, eval_every=1, rounds=1, verbose=0, **short)
    assert search.model.name.startswith(preset.network.split("_")[0])
    assert search.config.budget == preset.budget
    assert search.config.fit == {"epochs": 1, "batch_size": preset.batch_size}
    before = kl.get_weights(search.model)
    # Two steps: with warmup the first step's learning rate is exactly 0.
    search.model.fit(*search.validation_data, batch_size=10, epochs=1, verbose=0)
    after = kl.get_weights(search.model)
    assert any(not np.array_equal(before[p], after[p]) for p in before)


def test_same_seed_same_initialization(fake_data):
    import keras_lottery as kl

    first, second, other = (
        kl.TicketSearch.from_preset("mlp_mnist1d", seed=seed, limit=100, verbose=0)
        for seed in (3, 3, 4))
    assert all(np.array_equal(first.theta0[k], second.theta0[k]) for k in first.theta0)
    assert not np.array_equal(first.theta0["fc1/kernel"], other.theta0["fc1/kernel"])


def test_the_mnist1d_reference_protocol_trains_on_everything_and_reports_final_accuracy():
    import keras_lottery as kl

    preset = presets.get("mlp_mnist1d_reference")
    assert (preset.learning_rate, preset.batch_size, preset.iterations) == (1e-2, 100, 6000)
    search = kl.TicketSearch.from_preset("mlp_mnist1d_reference", iterations=40, rounds=1,
                                         verbose=0)
    assert len(search.x) == 4000 and search.validation_data is None
    assert search.config.eval_every is None
    result = search.run()
    assert all(r.early_stop == {} and 0 <= r.final["test_accuracy"] <= 1 for r in result.records)
