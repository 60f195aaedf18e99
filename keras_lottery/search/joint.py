"""A round's trainings as one program: the ticket and its controls side by side.

The trainings of a round start from their own weights with their own masks.
With `data_order="per_round"` they also read the same batches in the same
order, and are then independent copies of one network fed one stream: built
into one Keras model (one input, one output and one loss per member) they
train in a single `fit`, every step updating every member. A small network
alone leaves most of a CPU's or GPU's width idle; side by side they fill it.

Nothing couples the members: the joint loss is the sum of theirs, so the
only term that reaches a member's weights is its own loss, and the optimizer
updates each variable from its own gradient and slots. Each member therefore
computes what it would alone: bit for bit on JAX, TensorFlow and torch on a
CPU (`tests/test_joint.py` compares every record, mask and weight), but with
`torch.compile`, whose kernels depend on what the process compiled before
(to float rounding then); on a GPU, as far as its kernels are deterministic
between two programs. What would
couple them, or could not be split per member, makes the round fall back to
one training at a time (`JointTrainer.why_not`): the numbers are the same
either way, only the time differs.
"""

import gc
import json
import time
import typing

import keras
import numpy as np

from keras_lottery import _keras
from keras_lottery.masking.masks import apply_masks
from keras_lottery.runtime import distribution, speed
from keras_lottery.search import state
from keras_lottery.search.callbacks import IterationCounter, PeriodicEvaluation, Reseed
from keras_lottery.search.training import FreshOptimizer, check_exact_zeros

# `fit` settings that mean the same for one output as for several.
SHARED_FIT = ("epochs", "batch_size", "steps_per_epoch", "shuffle")
# What a user is told a joint round needs, when one falls back.
NEEDS = ("data_order='per_round' or 'shared', no callbacks of your own, no instability "
         "measurement, array data, one device, and a Sequential or Functional model of one "
         "input and one output without regularization losses (the whole list: "
         "docs/search.md, 'A round's trainings side by side')")


class JointTrainer:
    """Trains several trainings of one round as one compiled program.

    Args:
        trainer: the search's `training.Trainer` (model, settings, data): each
            member's record is made as its records are.
        compile_config: `model.get_compile_config()` as the search took it.
    """

    def __init__(self, trainer, compile_config):
        self.trainer, self.compile_config = trainer, compile_config
        self._programs = {}  # Members -> _Program, compiled once per `run()`.
        self._same_data = {}  # id(other JointTrainer) -> (it, whether its data are these).

    def why_not(self):
        """Why this search's rounds cannot train as one (a sentence), else None."""
        trainer, model = self.trainer, self.trainer.model
        config = trainer.config
        if config.data_order == "per_training":
            return ("each training draws its own data order (data_order='per_training'); "
                    "with data_order='per_round' or 'shared' a round's trainings read its "
                    "ticket's")
        if trainer.callbacks:
            return "callbacks of your own expect one model per training"
        if config.instability:
            return "the instability measurement trains each round's ticket on its own"
        other = sorted(set(config.fit) - set(SHARED_FIT))
        if other:
            return f"the fit settings {other} apply to one output"
        if not (_array(trainer.x) and _array(trainer.y)):
            return "the training data is not an array x and an array y (a dataset's " \
                   "batches cannot be handed to several outputs)"
        if distribution.active_distribution() is not None or distribution.tf_strategy(model):
            return "the model trains on several devices"
        # Exactly these: a subclass may train its own way (train_step,
        # compute_loss), which the joint model, a plain one, would not.
        if type(model) not in (keras.Sequential, _keras.functional_class()):
            return f"{type(model).__name__} is not a Sequential or Functional model to copy"
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            return "the model has several inputs or outputs"
        if model.losses or any(getattr(layer, "activity_regularizer", None)
                               for layer in _keras.sublayers(model)):
            return "the model adds regularization losses, which its compiled loss counts " \
                   "in one total"
        compiled = self.compile_config or {}
        if compiled.get("loss_weights") is not None:
            return "the model's loss has loss_weights"
        optimizer = model.optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return "a loss-scale optimizer (mixed_float16) skips every member's step " \
                   "when one overflows"
        if getattr(optimizer, "global_clipnorm", None):
            return "global_clipnorm clips all members' gradients by one norm"
        # Kept on the optimizer object, not in its configuration: a copy would lose them.
        if _keras.excludes_from_weight_decay(optimizer):
            return "the optimizer excludes variables from weight decay"
        if keras.backend.backend() == "torch" and _unseeded_noise(model):
            return ("on torch, a Dropout layer without a seed draws from torch's one "
                    "global generator, so side by side the members would draw other noise "
                    "than alone; give those layers a seed")
        return None

    def train(self, round_, members):
        """Trains `members`, `[(kind, start, masks)]` of round `round_`, as one.

        Returns `[(record, trained)]`, one per member: its `RoundRecord` and
        its trained state (a `state.snapshot` keyed as the search's model's).
        Raises `CannotShare` if the model cannot be copied side by side or a
        new program fails before its first step ends (whatever the cause, the
        members then train alone, where a real error shows again), and what
        `fit` raised later; `is_out_of_memory` tells which of those should
        rather train the members one at a time (after `release`).
        """
        return self.train_many([(self.trainer, round_, members)])[0]

    def train_many(self, parts):
        """Trains the members of several searches' rounds as one program.

        `parts` is `[(trainer, round_, members)]`: each a search's `Trainer`
        and what `train` takes; every trainer after this one's must be one
        it `shares` a program with. Returns one `train` result per part, in
        which a member whose training went wrong (it diverged) holds the
        error that training alone would have raised, for its search to raise.
        """
        flat = [_Member(trainer, round_, kind, start, masks)
                for trainer, round_, members in parts for kind, start, masks in members]
        try:
            program = self._program(len(flat))
            keys = [program.keys(index, member.trainer.model)
                    for index, member in enumerate(flat)]
        except Exception as error:  # noqa: BLE001 - any failure to copy: one at a time
            raise CannotShare(f"the model could not be copied side by side ({error})") \
                from error
        for copy, key, member in zip(program.copies, keys, flat):
            state.restore(copy, key.to_copy(member.start))
            apply_masks(copy, key.to_copy(member.masks))
        program.optimizer.reset()
        first = flat[0].trainer
        seed = first.data_seed(flat[0].round, "ticket")  # Every member's: one data order.
        keras.utils.set_random_seed(seed)
        counters = [member.trainer.counter(_MemberIterations, _MemberEvaluation, member=copy)
                    for copy, member in zip(program.copies, flat)]
        y = {name: first.y for name in program.names}
        speed.create_gradients(program.model)
        began = time.perf_counter()
        try:
            history = program.model.fit(
                first.x, y, callbacks=[Reseed(seed), *counters],
                verbose=2 if first.verbose == 2 else 0, **first.config.fit)
        except Exception as error:
            if program.trained or is_out_of_memory(error):
                raise
            # A loss or metric compiled for one named output, say: not the
            # members' fault, nothing trained; they go on one at a time.
            raise CannotShare(f"the joint program failed to train ({error})") from error
        program.trained = True
        share = (time.perf_counter() - began) / len(flat)
        found = [self._result(member, name, copy, key, counter, history.history, share)
                 for member, name, copy, key, counter in zip(
                     flat, program.names, program.copies, keys, counters)]
        results = []
        for _, _, members in parts:
            results.append(found[:len(members)])
            found = found[len(members):]
        return results

    @staticmethod
    def _result(member, name, copy, key, counter, history, share):
        """`(record, trained state)` of one member after the joint `fit`, or
        the error its training alone would have raised."""
        try:
            check_exact_zeros(copy, key.to_copy(member.masks))
            prefix = f"{name}_"
            final = {f"train_{k[len(prefix):]}": float(v[-1])
                     for k, v in history.items() if v and k.startswith(prefix)}
            # Its time: its share of the joint fit, then its own evaluations
            # after it (as if it had begun that share before now).
            record = member.trainer.record(member.round, member.kind, member.masks, copy,
                                           counter, final, time.perf_counter() - share)
        except Exception as error:  # noqa: BLE001 - its search's to raise (its own data)
            if is_out_of_memory(error):
                raise
            return error
        return record, key.from_copy(state.snapshot(copy))

    def shares(self, other, round_, other_round) -> str | None:
        """Why another search's round `other_round` (`other`: its
        `JointTrainer`) cannot train in one program with this search's round
        `round_`, else None."""
        mine, trainer = self.trainer, other.trainer
        if trainer.data_seed(other_round, "ticket") != mine.data_seed(round_, "ticket"):
            return ("their data orders differ (with data_order='shared' every seed's round "
                    "reads the same batches)")
        if trainer.config.fit != mine.config.fit:
            return "their fit settings differ"
        if id(other) not in self._same_data:  # Compared once per run.
            self._same_data[id(other)] = (other, _same(trainer.x, mine.x)
                                          and _same(trainer.y, mine.y))
        if not self._same_data[id(other)][1]:
            return "their training data differ (or could not be compared)"
        try:
            alike = _signature(trainer.model) == _signature(mine.model)
        except Exception:  # noqa: BLE001 - a layer whose config fails: not comparable
            alike = False
        if not alike:
            return "their networks differ (or could not be compared)"
        if _compiled(other.compile_config) != _compiled(self.compile_config):
            return "their models are compiled differently"
        return None

    def release(self):
        """Lets go of every program (copies, optimizer slots, compiled steps)."""
        self._programs.clear()
        gc.collect()

    def _program(self, members):
        if members not in self._programs:
            # One program held at a time: a round of other members (the dense
            # rounds of several seeds, say) seldom comes back.
            self.release()
            self._programs[members] = _Program(self.trainer.model, self.compile_config,
                                               members)
        return self._programs[members]


# What a search's trainings yield once they have saved what they were sent.
SAVED = "saved"


def serve_jointly(requests) -> list:
    """Trains what searches offered as one program (`TicketSearch._start`).

    `requests` is `[(joint, round_, members)]`, each a search's `JointTrainer`
    and round, the first's sharing a program with the others' (`shares`).
    Answers each with its `[(record, trained)]`; or, where they cannot train
    as one, with why (a sentence, after letting go of the programs); or None
    for a lone training, which has nothing to share.
    """
    joint, round_, members = requests[0]
    if len(requests) == 1 and len(members) == 1:
        return [None]
    reason = None
    try:
        if len(requests) == 1:
            return [joint.train(round_, members)]
        return joint.train_many([(j.trainer, r, m) for j, r, m in requests])
    except CannotShare as error:
        reason = str(error)
    except Exception as error:  # noqa: BLE001 - a device out of memory only
        if not is_out_of_memory(error):
            raise
        count = sum(len(m) for _, _, m in requests)
        reason = f"round {round_}'s {count} trainings do not fit in memory side by side"
    # Out of the `except`: its traceback holds the failed fit.
    for each, _, _ in requests:  # Those that led earlier programs too.
        each.release()
    return [reason] * len(requests)


class CannotShare(Exception):
    """The members cannot train as one program; the message says why."""


def is_out_of_memory(error) -> bool:
    """Whether `error` says a device ran out of memory (JAX, TensorFlow, torch)."""
    text = f"{type(error).__name__} {error}".lower()
    return any(sign in text for sign in ("resource_exhausted", "resourceexhausted",
                                         "out of memory", "outofmemory"))


class _Program:
    """`members` copies of `model` side by side in one compiled model.

    Each copy is built in its own name scope (`member_<i>/...`): two copies
    with one variable path would be one parameter to torch. States and masks
    cross between a search's model and a copy by position (`keys`): the
    copies' variables are the network's, in its order.
    """

    def __init__(self, model, compile_config, members):
        self.names = [f"member_{i}" for i in range(members)]
        self.copies = []
        self.trained = False  # Whether a fit of it has ended.
        for name in self.names:
            with keras.name_scope(name):
                copy = keras.models.clone_model(model)
            # The joint model's outputs are named by their layer: one name each.
            copy.name = name
            # Compiled as the search's model was (`clone_model` compiles from the
            # model's current configuration), for the evaluations outside `fit`.
            copy.compile(**_compile_arguments(compile_config))
            self.copies.append(copy)
        self._signature = _signature(model)
        self._own = {}  # id(model) -> (model, its state keys): the models whose states cross.
        self._theirs = []  # Each copy's state keys.
        for copy in self.copies:
            if _signature(copy) != self._signature:
                raise ValueError("its copy has other variables than the model")
            self._theirs.append(list(state.state_variables(copy)))
        inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
        self.model = keras.Model(
            inputs, {name: copy(inputs) for name, copy in zip(self.names, self.copies)},
            name=f"joint_{members}")
        # One loss and a fresh set of metrics per member (metric objects hold state).
        per_member = [_compile_arguments(compile_config) for _ in self.names]
        arguments = per_member[0]
        self.model.compile(
            optimizer=arguments["optimizer"],
            loss={name: arguments["loss"] for name in self.names},
            metrics=_by_member(self.names, per_member, "metrics"),
            weighted_metrics=_by_member(self.names, per_member, "weighted_metrics"),
            run_eagerly=arguments.get("run_eagerly", False),
            jit_compile=arguments.get("jit_compile", "auto"),
            steps_per_execution=arguments.get("steps_per_execution", 1))
        self.optimizer = FreshOptimizer(self.model, None)

    def keys(self, index: int, model) -> "_Keys":
        """How a state or masks of `model` (the search's model, or another
        search's of the same network) cross to copy `index` and back: by
        position, the variables of both being the network's, in its order."""
        if id(model) not in self._own:
            if _signature(model) != self._signature:
                raise ValueError(f"{model.name} is not the network the copies were made of")
            # Kept with the model: an id is only unique while its object lives.
            self._own[id(model)] = (model, list(state.state_variables(model)))
        return _Keys(self._own[id(model)][1], self._theirs[index])


class _Keys:
    """A model's state keys against a copy's, position by position."""

    def __init__(self, own, theirs):
        self._to, self._from = dict(zip(own, theirs)), dict(zip(theirs, own))

    def to_copy(self, values: dict) -> dict:
        """A snapshot or masks of the model, keyed as the copy's."""
        return {self._to[k]: v for k, v in values.items()}

    def from_copy(self, values: dict) -> dict:
        return {self._from[k]: v for k, v in values.items()}


class _Member(typing.NamedTuple):
    """One training of a joint program: whose, which round and kind, from
    which start with which masks."""

    trainer: object
    round: int
    kind: str
    start: dict
    masks: dict


def _signature(model) -> str:
    """What two models must share for one to train as a copy of the other:
    their configuration (every layer's class and settings, and for a
    Functional model its graph: which operation reads which), with each
    layer's name replaced by its position (Keras numbers names per process),
    seeds and initializers left out (every variable, seed states included,
    is set from the start a member trains from); and each state variable's
    shape and dtype, in order."""
    positions = {layer.name: f"#{index}" for index, layer in
                 enumerate(_keras.sublayers(model, include_self=True))}

    def own(value):
        if isinstance(value, dict):
            return {k: own(v) for k, v in value.items()
                    if k != "seed" and not k.endswith("initializer")}
        if isinstance(value, (list, tuple)):
            return [own(v) for v in value]
        if isinstance(value, str):
            return positions.get(value, value)
        if hasattr(value, "tolist"):  # An array in a config: compared whole.
            return value.tolist()
        return value

    variables = [(tuple(v.shape), str(v.dtype)) for v in state.state_variables(model).values()]
    return json.dumps([own(model.get_config()), variables], sort_keys=True, default=str)


def _same(a, b) -> bool:
    """Whether two training arrays hold the same values (the same object, at
    best); False where they cannot be compared."""
    if a is b:
        return True
    try:
        a, b = keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
    except Exception:  # noqa: BLE001 - not to be compared: trained apart
        return False
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _compiled(config) -> str:
    """A compile configuration as text, without its optimizer's name (Keras
    numbers those per process: `adam`, `adam_1`, ...); metric names stay,
    being the records' keys."""
    config = dict(config or {})
    optimizer = config.get("optimizer")
    if isinstance(optimizer, dict) and isinstance(optimizer.get("config"), dict):
        config["optimizer"] = {**optimizer, "config": {
            k: v for k, v in optimizer["config"].items() if k != "name"}}
    return json.dumps(config, sort_keys=True, default=str)


def _array(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "__len__")


def _compile_arguments(compile_config) -> dict:
    """`compile` arguments from a compile configuration: new objects each call
    (metrics hold state: each member needs its own)."""
    return dict(keras.saving.deserialize_keras_object(compile_config))


def _by_member(names, arguments, key):
    found = {name: a.get(key) for name, a in zip(names, arguments)}
    return None if all(v is None for v in found.values()) else found


def _unseeded_noise(model) -> bool:
    """Whether a Dropout layer has neither a seed nor a noise shape: on torch,
    Keras then calls torch's own dropout, drawing from its global generator."""
    # Exactly Dropout: SpatialDropout passes a noise shape when called.
    return any(type(layer) is keras.layers.Dropout and layer.rate > 0
               and layer.seed is None and layer.noise_shape is None
               for layer in _keras.sublayers(model, include_self=True))


class _MemberCounter:
    """Mixed into the search's counters for one copy: it follows the joint
    `fit` (iterations, evaluation points) but evaluates and keeps its copy."""

    def __init__(self, *args, member, **kwargs):
        super().__init__(*args, **kwargs)
        self.member = member

    @property
    def model(self):
        super().model  # Syncs the joint program's variables into the copies on JAX.
        return self.member


class _MemberIterations(_MemberCounter, IterationCounter):
    pass


class _MemberEvaluation(_MemberCounter, PeriodicEvaluation):
    pass
