"""Several seeds' searches run round by round, their rounds trained as one program."""

import json

import pytest
from helpers import VAL, X, Y
from test_joint import CONTROLS, compiled_by_torch, same_runs, seeded_mlp

import keras_lottery as kl
from keras_lottery.search import joint as joint_module


def search(directory, seed, data_order="shared", joint=True, **kwargs):
    settings = dict(rounds=2, controls=CONTROLS, data_order=data_order, joint=joint,
                    eval_every=4, validation_data=VAL, test_data=(X[60:120], Y[60:120]),
                    epochs=2, batch_size=20, verbose=1, seed=seed, directory=directory)
    settings.update(kwargs)
    return kl.TicketSearch(seeded_mlp(seed), X, Y, **settings)


@pytest.fixture
def programs(monkeypatch):
    """Each program trained: `[(seed, round, kind), ...]` of its members."""
    calls = []
    train_many = joint_module.JointTrainer.train_many

    def counted(self, parts):
        calls.append([(trainer.config.seed, round_, kind)
                      for trainer, round_, members in parts for kind, _, _ in members])
        return train_many(self, parts)

    monkeypatch.setattr(joint_module.JointTrainer, "train_many", counted)
    return calls


def test_seeds_trained_together_equal_each_seed_alone(tmp_path, programs, capsys):
    seeds = (3, 4)
    results = kl.run_together([search(tmp_path / f"together_{s}", s) for s in seeds])
    # The dense rounds as one program, then each pruned round's eight trainings.
    assert programs == [[(3, 0, "ticket"), (4, 0, "ticket")]] + [
        [(s, r, kind) for s in seeds for kind in ("ticket", *CONTROLS)] for r in (1, 2)]
    assert "joint:" not in capsys.readouterr().out
    for seed, result in zip(seeds, results):
        alone = search(tmp_path / f"alone_{seed}", seed, joint=False).run()
        same_runs(tmp_path / f"together_{seed}", tmp_path / f"alone_{seed}")
        assert [r.final for r in result.records] == [r.final for r in alone.records]
    # The seeds differ: their own starts and masks, on one data order.
    assert results[0].records[-1].final != results[1].records[-1].final


def test_shared_order_is_seed_zeros_per_round_order():
    from keras_lottery.search.training import Trainer, seed_for

    trainers = [Trainer(s.model, s.optimizer, s.config, (X, Y)) for s in (
        search(None, 5, controls=["random_pruning"]), search(None, 0, data_order="per_round"))]
    for trainer in trainers:
        assert trainer.data_seed(2, "random_pruning") == seed_for(0, 2, "ticket")


def test_seeds_of_their_own_data_orders_train_apart_said_once(tmp_path, programs, capsys):
    own = dict(data_order="per_round", rounds=1, controls=["random_pruning"])
    results = kl.run_together([search(tmp_path / f"own_{s}", s, **own) for s in (3, 4)])
    out = capsys.readouterr().out
    assert out.count("train apart") == 1 and "data_order='shared'" in out
    # Each seed's round still trains its ticket and controls as one.
    assert sorted(programs) == [[(s, 1, "ticket"), (s, 1, "random_pruning")] for s in (3, 4)]
    search(tmp_path / "alone", 4, joint=False, **own).run()
    same_runs(tmp_path / "own_4", tmp_path / "alone")
    assert len(results[0].records) == 3


def test_an_interrupted_together_run_resumes_to_the_same_numbers(tmp_path, monkeypatch,
                                                                programs):
    train_many = joint_module.JointTrainer.train_many

    def stopped_at_round_2(self, parts):
        if parts[0][1] == 2:
            raise KeyboardInterrupt
        return train_many(self, parts)

    one = dict(controls=["random_pruning"], rounds=3)
    with monkeypatch.context() as patched:
        patched.setattr(joint_module.JointTrainer, "train_many", stopped_at_round_2)
        with pytest.raises(KeyboardInterrupt):
            kl.run_together([search(tmp_path / f"run_{s}", s, **one) for s in (3, 4)])
    # Seed 4 alone for a round: it is one round ahead when the two resume together.
    search(tmp_path / "run_4", 4, **{**one, "rounds": 2}).run()
    programs.clear()
    kl.run_together([search(tmp_path / f"run_{s}", s, **one) for s in (3, 4)])
    # Seed 3's round 2 first (the one behind leads), then both seeds' round 3 as one.
    assert programs == [[(3, 2, "ticket"), (3, 2, "random_pruning")],
                        [(s, 3, kind) for s in (3, 4) for kind in ("ticket", "random_pruning")]]
    for seed in (3, 4):
        search(tmp_path / f"alone_{seed}", seed, joint=False, **one).run()
        same_runs(tmp_path / f"run_{seed}", tmp_path / f"alone_{seed}")


def test_a_training_that_fails_stops_its_search_once_the_others_are_done(tmp_path,
                                                                          monkeypatch):
    check = joint_module.check_exact_zeros

    def seed_4_diverges(copy, masks):
        if diverging and copy is diverging[0]:
            raise RuntimeError("Expected finite weights after training.")
        return check(copy, masks)

    diverging = []
    result = joint_module.JointTrainer._result

    def first_copy_of_seed_4(member, name, copy, *args):
        if member.trainer.config.seed == 4 and member.round == 2 and not diverging:
            diverging.append(copy)
        return result(member, name, copy, *args)

    monkeypatch.setattr(joint_module, "check_exact_zeros", seed_4_diverges)
    monkeypatch.setattr(joint_module.JointTrainer, "_result", staticmethod(first_copy_of_seed_4))
    one = dict(controls=["random_pruning"])
    with pytest.raises(RuntimeError, match="finite weights"):
        kl.run_together([search(tmp_path / f"run_{s}", s, **one) for s in (3, 4)])
    # Seed 3 finished; seed 4 kept everything before its failed ticket of round 2.
    assert len(kl.load_result(tmp_path / "run_3").records) == 5
    assert [(r.round, r.kind) for r in kl.load_result(tmp_path / "run_4").records] == [
        (0, "ticket"), (1, "ticket"), (1, "random_pruning")]


def test_searches_that_cannot_share_say_why_and_train_on_their_own(tmp_path, capsys):
    mine = search(tmp_path / "a", 3, rounds=1, controls=[])
    other = search(tmp_path / "b", 4, rounds=1, controls=[], epochs=1)
    kl.run_together([mine, other])
    assert "searches 0 and 1 train apart: their fit settings differ" in capsys.readouterr().out
    search(tmp_path / "alone", 4, rounds=1, controls=[], epochs=1, joint=False).run()
    same_runs(tmp_path / "b", tmp_path / "alone")


def test_networks_of_other_layer_settings_train_apart(tmp_path, capsys):
    import keras

    mine = search(tmp_path / "a", 3, rounds=1, controls=[])
    model = seeded_mlp(4)
    # The same shapes, another activation: not a copy of the first network.
    other = keras.Sequential([keras.Input((12,)), *(
        kl.MaskedDense(40, activation="tanh", name="fc1") if layer.name == "fc1" else layer
        for layer in model.layers)])
    other.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    kl.run_together([mine, kl.TicketSearch(other, X, Y, rounds=1, data_order="shared",
                                           epochs=2, batch_size=20, seed=4, verbose=1)])
    assert "train apart: their networks differ" in capsys.readouterr().out


def test_functional_networks_wired_otherwise_train_apart(capsys):
    import keras

    def functional(op):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((12,))
        hidden = kl.MaskedDense(20, activation="relu", name="fc1")(inputs)
        # The same layers and variables; only an operation between them differs.
        outputs = kl.MaskedDense(3, activation="softmax", name="out")(op(hidden, 2.0))
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        return kl.TicketSearch(model, X, Y, rounds=1, data_order="shared", epochs=1,
                               batch_size=20, verbose=1)

    kl.run_together([functional(keras.ops.add), functional(keras.ops.multiply)])
    assert "train apart: their networks differ" in capsys.readouterr().out


def test_bad_searches_are_refused_before_any_training(tmp_path):
    one = search(tmp_path / "a", 3)
    with pytest.raises(ValueError, match="`searches` a list of TicketSearch"):
        kl.run_together(one)
    with pytest.raises(ValueError, match=r"`searches` at least one"):
        kl.run_together([])
    with pytest.raises(ValueError, match=r"Received: \['int'\]"):
        kl.run_together([one, 3])
    with pytest.raises(ValueError, match="one search twice"):
        kl.run_together([one, one])
    with pytest.raises(ValueError, match="its own directory"):
        kl.run_together([one, search(tmp_path / "a", 4)])
    with pytest.raises(ValueError, match="its own model"):
        kl.run_together([one, kl.TicketSearch(one.model, X, Y, rounds=1)])
    assert not (tmp_path / "a" / "rounds").exists()


@pytest.mark.slow  # Four searches end to end through the command line.
def test_seeds_on_the_command_line_train_together_with_a_shared_order(tmp_path, programs,
                                                                      capsys):
    from test_seeds import TINY

    from keras_lottery import cli
    from keras_lottery.search.run_directory import load_result
    from keras_lottery.search.run_lock import LOCK

    flags = [*TINY, "--controls", "random_pruning", "--data-order", "shared"]
    # Seed 2 is being run by another machine: seeds 0 and 1 train together without it.
    (tmp_path / "together" / "seed_2").mkdir(parents=True)
    (tmp_path / "together" / "seed_2" / LOCK).write_text(
        json.dumps({"host": "other", "pid": 1, "since": 0}))
    assert cli.main(["run", *flags, "--seeds", "0", "1", "2", "--joint",
                     "--out", str(tmp_path / "together")]) == 0
    assert "seed 2 skipped" in capsys.readouterr().out
    assert [len(p) for p in programs] == [2, 4]  # Round 0's two tickets; round 1's four.
    assert (tmp_path / "together" / "command.json").exists()
    assert cli.main(["run", *flags, "--seeds", "0", "1", "--out", str(tmp_path / "apart")]) == 0
    assert "2 seeds [0, 1]" in capsys.readouterr().out
    for seed in (0, 1):
        # The presets compile with torch.compile on torch: see `compiled_by_torch`.
        same_runs(tmp_path / "together" / f"seed_{seed}", tmp_path / "apart" / f"seed_{seed}",
                  exact=not compiled_by_torch())
        assert load_result(tmp_path / "together" / f"seed_{seed}").config["seed"] == seed
