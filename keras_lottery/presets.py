"""The paper's experiments as named presets: network, data and hyperparameters.

`TicketSearch.from_preset("lenet_300_100_mnist").run()` runs one with no
other argument; any field below, or any `TicketSearch` argument, overrides.
Numbers are from Frankle & Carbin (2019), Figure 2 and sections 2-4.
"""

import dataclasses
import math

import keras

from keras_lottery import checks
from keras_lottery.pruning.rules import PruneRates
from keras_lottery.schedules import LinearWarmup, step_decay
from keras_lottery.runtime.speed import fast_compile_settings
from keras_lottery.search.settings import BY_NAME, EXCLUSIVE, SETTINGS, Setting, check_settings


def _positive(name, value):
    return checks.positive(name, value)


def _count(name, value):
    return checks.integer(name, value, 1)


def _dropout(name, value):
    return None if value is None else checks.fraction(name, value, zero=True)


def _optimizer(name, value):
    return checks.choice(name, value, ("adam", "sgd"))


def _momentum(name, value):
    return checks.number(name, value, 0, 1, high_open=True)


def _warmup(name, value):
    return checks.integer(name, value, 0)


def _text_level(name, value):
    return checks.choice(name, value, ("char", "byte"))


def _sequence_length(name, value):
    return None if value is None else checks.integer(name, value, 1)


# A preset's training settings, beside the search's (`search.settings.SETTINGS`):
# checked here, and the CLI's flags and help made from them.
TRAINING_SETTINGS = (
    Setting("iterations", None, "training iterations per round, rounded up to whole epochs",
            _count, flag=dict(type=int)),
    Setting("batch_size", None, "examples per iteration", _count, flag=dict(type=int)),
    Setting("learning_rate", None, "peak learning rate", _positive, flag=dict(type=float)),
    Setting("optimizer", None, "adam or sgd", _optimizer, flag=dict(choices=("adam", "sgd"))),
    Setting("momentum", None, "SGD momentum", _momentum, flag=dict(type=float)),
    Setting("warmup_steps", None, "iterations of linear learning-rate warmup from 0",
            _warmup, flag=dict(type=int)),
    Setting("sequence_length", None, "tokens per window (language-model presets)",
            _sequence_length, flag=dict(type=int)),
    Setting("dropout", None, "dropout rate after hidden dense layers (language models: after "
            "the embeddings and each attention, feed-forward or LSTM layer)", _dropout,
            flag=dict(type=float)),
    Setting("level", "char", "token level of a text: char or byte", _text_level),
)
# The search settings a preset sets; any other one is the search's default.
SEARCH_FIELDS = ("prune_rates", "rounds", "budget", "eval_every")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One experiment's settings, the paper's unless overridden."""

    network: str  # A `keras_lottery.models` name.
    dataset: str  # A `keras_lottery.datasets` name.
    optimizer: str  # "adam" or "sgd".
    learning_rate: float  # Peak learning rate.
    batch_size: int  # Examples per iteration.
    iterations: int  # Training iterations per round (rounded up to whole epochs).
    prune_rates: PruneRates  # Fraction of remaining weights pruned per round.
    rounds: int  # Pruned rounds after the dense one.
    budget: str = "uniform"  # "global": rank weights across layers (VGG, ResNet).
    momentum: float = 0.0  # SGD momentum.
    decay_at: tuple = ()  # Iterations at which the rate is divided by 10.
    warmup_steps: int = 0  # Linear warmup from 0 over this many iterations.
    dropout: float | None = None  # Dropout rate after hidden dense layers.
    eval_every: int = 100  # Iterations between early-stop evaluations.
    validation_size: int = 5000  # Training examples held out (texts: 5% by keras_lottery.text).
    # Language models only (keras_lottery.text): tokens per window, and token level.
    sequence_length: int | None = None
    level: str = "char"

    def __post_init__(self):
        # Overrides come from users and the CLI: refuse what would train wrong,
        # with the same check as the search or the CLI flag of that name.
        declared = {s.name: s for s in (*TRAINING_SETTINGS, *SETTINGS)}
        for field in dataclasses.fields(self):
            if field.name in declared:
                value = declared[field.name].checked(getattr(self, field.name))
                object.__setattr__(self, field.name, value)
        checks.integer("validation_size", self.validation_size, 0)
        if self.rounds is None:
            raise ValueError("Expected `rounds` an integer >= 1. Received: rounds=None")

    def optimizer_instance(self) -> keras.optimizers.Optimizer:
        """A new optimizer with this preset's learning-rate schedule."""
        rate = self.learning_rate
        if self.decay_at:
            rate = step_decay(self.learning_rate, self.decay_at)
        if self.warmup_steps:
            rate = LinearWarmup(rate, self.warmup_steps)
        if self.optimizer == "adam":
            return keras.optimizers.Adam(rate)
        if self.optimizer == "sgd":
            return keras.optimizers.SGD(rate, momentum=self.momentum)
        raise ValueError(f"Expected `optimizer` 'adam' or 'sgd'. Received: {self.optimizer!r}")

    def epochs(self, train_examples: int) -> int:
        """Whole epochs covering `iterations` on `train_examples` examples."""
        return max(1, math.ceil(self.iterations / math.ceil(train_examples / self.batch_size)))


_LENET = PruneRates(0.2, by_kind={"output": 0.1})
_CONV = {  # conv rate per network; fc 20%, output 10%
    "conv2": PruneRates(0.2, by_kind={"conv": 0.1, "output": 0.1}),
    "conv4": PruneRates(0.2, by_kind={"conv": 0.1, "output": 0.1}),
    "conv6": PruneRates(0.2, by_kind={"conv": 0.15, "output": 0.1}),
}
_GLOBAL_CONV = PruneRates(0.2, by_kind={"dense": 0.0})  # fc (the output) not pruned

PRESETS = {
    "lenet_300_100_mnist": Preset(
        "lenet_300_100", "mnist", "adam", 1.2e-3, 60, 50_000, _LENET, rounds=15),
    "lenet_300_100_fashion_mnist": Preset(
        "lenet_300_100", "fashion_mnist", "adam", 1.2e-3, 60, 50_000, _LENET, rounds=15),
    "conv2_cifar10": Preset("conv2", "cifar10", "adam", 2e-4, 60, 20_000, _CONV["conv2"], 20),
    "conv4_cifar10": Preset("conv4", "cifar10", "adam", 3e-4, 60, 25_000, _CONV["conv4"], 20),
    "conv6_cifar10": Preset("conv6", "cifar10", "adam", 3e-4, 60, 30_000, _CONV["conv6"], 20),
    # Dropout experiments (section 3): rate 0.5, their own learning rates.
    "conv2_cifar10_dropout": Preset(
        "conv2", "cifar10", "adam", 3e-4, 60, 20_000, _CONV["conv2"], 20, dropout=0.5),
    "conv4_cifar10_dropout": Preset(
        "conv4", "cifar10", "adam", 2e-4, 60, 25_000, _CONV["conv4"], 20, dropout=0.5),
    "conv6_cifar10_dropout": Preset(
        "conv6", "cifar10", "adam", 2e-4, 60, 30_000, _CONV["conv6"], 20, dropout=0.5),
    # Deep networks (section 4): SGD with momentum, global pruning, warmup.
    "vgg19_cifar10": Preset(
        "vgg19", "cifar10", "sgd", 0.1, 64, 112_000, _GLOBAL_CONV, 20, budget="global",
        momentum=0.9, decay_at=(56_000, 84_000), warmup_steps=10_000),
    "vgg19_cifar10_no_warmup": Preset(
        "vgg19", "cifar10", "sgd", 0.1, 64, 112_000, _GLOBAL_CONV, 20, budget="global",
        momentum=0.9, decay_at=(56_000, 84_000)),
    "resnet18_cifar10": Preset(
        "resnet18", "cifar10", "sgd", 0.03, 128, 30_000, _GLOBAL_CONV, 20, budget="global",
        momentum=0.9, decay_at=(20_000, 25_000), warmup_steps=20_000),
    "resnet18_cifar10_no_warmup": Preset(
        "resnet18", "cifar10", "sgd", 0.1, 128, 30_000, _GLOBAL_CONV, 20, budget="global",
        momentum=0.9, decay_at=(20_000, 25_000)),
    # Not in the paper: the deep-network recipe (SGD 0.1 with momentum, no
    # warmup, global pruning of the convolutions) on a ResNet small enough
    # for a CPU: for the instability analysis, halving the weights each
    # round to 12.5% in 3 rounds, one epoch a training.
    "resnet8_fashion_mnist": Preset(
        "resnet8", "fashion_mnist", "sgd", 0.1, 60, 917, PruneRates(0.5, by_kind={"dense": 0.0}),
        3, budget="global", momentum=0.9),
    # Not in the paper: MNIST-1D, pruned as LeNet to ~10% in 11 rounds, with
    # the reference's protocol (Greydanus 2020: Adam 1e-2, batch 100, 6,000
    # steps), 500 of the 4,000 training sequences held out for the
    # early-stop criterion; `_reference` trains on all 4,000 and keeps no
    # validation set, exactly as the reference does (final accuracy only).
    "mlp_mnist1d": Preset(
        "mlp", "mnist1d", "adam", 1e-2, 100, 6_000, _LENET, rounds=11, validation_size=500),
    "mlp_mnist1d_reference": Preset(
        "mlp", "mnist1d", "adam", 1e-2, 100, 6_000, _LENET, rounds=11, validation_size=0),
    # Not in the paper: character-level language models (Yu et al. 2020 found
    # tickets in LSTM and transformer LMs), sized to train in minutes on a
    # CPU; every kind pruned 20% per round (output 10%), 10 rounds to ~11%.
    # Text is cut 90/5/5 into windows of `sequence_length` (keras_lottery.data.text).
    **{f"{network}_{text}": Preset(
        network, text, "adam", 1e-3, 32, 2_000, _LENET, rounds=10, eval_every=200,
        sequence_length=128) for network in ("transformer_lm", "lstm_lm")
       for text in ("jargon", "tiny_shakespeare")},
}


def get(name: str, **overrides) -> Preset:
    """The preset `name`, with any of its fields overridden."""
    if name not in PRESETS:
        raise ValueError(f"Expected `name` among {sorted(PRESETS)}. Received: name={name!r}")
    fields = {f.name for f in dataclasses.fields(Preset)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"Expected overrides among {sorted(fields)}. Received: {unknown}")
    return dataclasses.replace(PRESETS[name], **overrides)


def check_search(name, overrides):
    """The checks `build_search` makes before any data loads: the preset's
    fields and the search's settings, by their own rules. Pops the preset's
    fields out of `overrides`; returns the preset and those fields."""
    fields = {f.name for f in dataclasses.fields(Preset)}
    preset_overrides = {k: overrides.pop(k) for k in list(overrides) if k in fields}
    # The search's settings as asked, checked by the search's own rules before any data
    # loads; the preset's own ones give way to what rules them out (transferred masks:
    # its ladder; one-shot densities: its rounds), the user's are refused beside them.
    asked = {k: v for k, v in {**overrides, **preset_overrides}.items() if k in BY_NAME}
    check_settings(asked)
    return get(name, **preset_overrides), preset_overrides


def build_search(search_class, name, *, data_dir=None, limit=None, **overrides):
    """A `search_class` (TicketSearch) set up for preset `name`.

    Loads the preset's data set (`data_dir` first, then tfds), builds and
    compiles its network with the backend's fastest settings
    (`keras_lottery.fast_compile_settings`; a `jit_compile=` override goes to
    `compile` instead), and passes every remaining override to the search.
    `limit` keeps only the first `limit` training examples (for quick runs).
    """
    preset, preset_overrides = check_search(name, overrides)
    ruled_out = set()
    if overrides.get("transfer") is not None:
        ruled_out |= {s.name for s in SETTINGS if s.decides_masks}
    for setting, excluded in EXCLUSIVE.items():
        if overrides.get(setting) is not None:
            ruled_out |= set(excluded)
    jit_compile = overrides.pop("jit_compile", None)  # As `model.compile` takes it.
    model, splits, (x, y) = build_training(preset, data_dir=data_dir, limit=limit,
                                           seed=overrides.get("seed", 0),
                                           jit_compile=jit_compile)
    language = preset.network in _language_models()
    # No held-out set (validation_size=0): no early-stop criterion, final values only.
    validation = splits.validation if len(splits.validation[1]) else None
    settings = dict(
        **{k: getattr(preset, k) for k in SEARCH_FIELDS
           if k not in ruled_out or k in preset_overrides},
        validation_data=validation, test_data=splits.test,
        epochs=preset.epochs(len(x)), batch_size=preset.batch_size,
    )
    if validation is None:
        settings.pop("eval_every", None)
    if language:  # A resume on another text is refused, naming the characters.
        settings["vocabulary"] = splits.vocabulary
    settings.update(overrides)
    return search_class(model, x, y, **settings)


def _language_models():
    from keras_lottery import models

    return models.LANGUAGE_MODELS


def build_training(preset: Preset, *, data_dir=None, limit=None, seed=0, jit_compile=None):
    """`(model, splits, (x, y))`: `preset`'s network, built under `seed` and compiled
    with its optimizer and the backend's fastest settings, and its data.

    `limit` keeps the first `limit` training examples; `jit_compile` goes to
    `compile` instead of the fastest setting.
    """
    from keras_lottery.data import datasets
    from keras_lottery import models  # Heavy; only when a preset is built.

    language = preset.network in models.LANGUAGE_MODELS
    texts = ("jargon", "tiny_shakespeare")
    if language != (preset.dataset in texts):
        raise ValueError(
            f"Expected a language model with a text ({', '.join(texts)}), or another network "
            f"with another data set. Received network={preset.network!r} with "
            f"dataset={preset.dataset!r}."
        )
    if not language and preset.sequence_length is not None:
        raise ValueError(
            f"Expected `sequence_length` only for a language model. Received "
            f"sequence_length={preset.sequence_length} for {preset.network} on {preset.dataset}."
        )
    text = dict(sequence_length=preset.sequence_length, level=preset.level) if language else {}
    splits = datasets.load(preset.dataset, data_dir=data_dir,
                           validation_size=preset.validation_size, **text)
    x, y = splits.train
    if limit is not None:
        x, y = x[:limit], y[:limit]
    # θ0 follows from the seed: same seed, same initialization.
    keras.utils.set_random_seed(seed)
    settings = fast_compile_settings(preset.eval_every)
    if jit_compile is not None:
        settings["jit_compile"] = jit_compile
    if language:
        from keras_lottery import metrics

        model = models.LANGUAGE_MODELS[preset.network](
            vocab_size=splits.vocabulary.size, sequence_length=preset.sequence_length,
            dropout=preset.dropout)
        model.compile(preset.optimizer_instance(),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[metrics.BitsPerCharacter(), metrics.Perplexity()], **settings)
    else:
        model = models.get(preset.network, input_shape=x.shape[1:],
                           num_classes=int(splits.test[1].max()) + 1, dropout=preset.dropout)
        model.compile(preset.optimizer_instance(), "sparse_categorical_crossentropy",
                      metrics=["accuracy"], **settings)
    return model, splits, (x, y)
