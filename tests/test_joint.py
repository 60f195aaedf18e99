"""A round's ticket and controls trained as one program: the same numbers as one at a time."""

import json

import keras
import numpy as np
import pytest
from helpers import VAL, X, Y

import keras_lottery as kl
from keras_lottery.search import joint as joint_module
from keras_lottery.search.training import Trainer

CONTROLS = ["random_reinit", "random_pruning", "inverted"]


def seeded_mlp(seed=0):
    """Dropout with a seed: torch then draws it from the layer's own generator."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((12,)),
        kl.MaskedDense(40, activation="relu", name="fc1"),
        keras.layers.Dropout(0.2, seed=3),
        kl.MaskedDense(20, activation="relu", name="fc2"),
        kl.MaskedDense(3, activation="softmax", name="out"),
    ], name="mlp")
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def run(directory, joint=True, data_order="per_round", **kwargs):
    settings = dict(rounds=2, controls=CONTROLS, data_order=data_order, joint=joint,
                    eval_every=4, validation_data=VAL, test_data=(X[60:120], Y[60:120]),
                    epochs=2, batch_size=20, verbose=1, seed=3, directory=directory)
    settings.update(kwargs)
    search = kl.TicketSearch(seeded_mlp(), X, Y, **settings)
    return search, search.run()


@pytest.fixture
def joint_calls(monkeypatch):
    """How many trainings went through the joint program, per call."""
    calls = []
    train = joint_module.JointTrainer.train

    def counted(self, round_, members):
        calls.append([kind for kind, _, _ in members])
        return train(self, round_, members)

    monkeypatch.setattr(joint_module.JointTrainer, "train", counted)
    return calls


def same_runs(a, b, exact=True):
    """Every record (but its time), and every array kept, equal bit for bit;
    or, not `exact`, masks and counts equal and numbers to float rounding."""
    records = [json.loads((a / "rounds" / p.name).read_text())
               for p in sorted((a / "rounds").glob("*.json"))]
    others = [json.loads(p.read_text()) for p in sorted((b / "rounds").glob("*.json"))]
    assert len(records) == len(others)
    for mine, theirs in zip(records, others):
        mine.pop("wall_time"), theirs.pop("wall_time")
        if exact:
            assert mine == theirs, (mine["round"], mine["kind"])
        else:
            _close(mine, theirs)
    files = sorted(p.relative_to(a) for p in a.rglob("*.npz"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.npz"))
    for name in files:
        with np.load(a / name) as mine, np.load(b / name) as theirs:
            assert sorted(mine) == sorted(theirs)
            for key in mine:
                if exact or not np.issubdtype(mine[key].dtype, np.floating):
                    np.testing.assert_array_equal(mine[key], theirs[key],
                                                  err_msg=f"{name} {key}")
                else:
                    np.testing.assert_allclose(mine[key], theirs[key], rtol=1e-4, atol=1e-6,
                                               err_msg=f"{name} {key}")


def _close(mine, theirs):
    if isinstance(mine, dict):
        assert sorted(mine) == sorted(theirs)
        for key in mine:
            _close(mine[key], theirs[key])
    elif isinstance(mine, list):
        assert len(mine) == len(theirs)
        for one, other in zip(mine, theirs):
            _close(one, other)
    elif isinstance(mine, float):
        assert mine == pytest.approx(theirs, rel=1e-4, abs=1e-6)
    else:
        assert mine == theirs


def compiled_by_torch():
    """Whether models compiled as the presets compile run through
    `torch.compile`, whose kernels depend on what the process compiled before
    (its dynamic-shape decisions): two trainings in one process then agree
    to float rounding, not bit for bit."""
    return keras.backend.backend() == "torch" and kl.fast_compile_settings()["jit_compile"]


def test_a_joint_round_equals_its_trainings_one_at_a_time(tmp_path, joint_calls, capsys):
    _, alone = run(tmp_path / "alone", joint=False)
    assert not joint_calls
    search, together = run(tmp_path / "joint")
    # Both pruned rounds trained as one program of the ticket and its three controls.
    assert joint_calls == [["ticket", *CONTROLS]] * 2
    assert "joint:" not in capsys.readouterr().out
    same_runs(tmp_path / "alone", tmp_path / "joint")
    assert [(r.round, r.kind) for r in together.records] == [
        (r.round, r.kind) for r in alone.records]
    # The records say what each trained: its own curves, test values and early stop.
    for record in together.records:
        assert record.curves["iteration"][-1] == record.iterations == 20
        assert "test_accuracy" in record.final and "train_accuracy" in record.final
    # The model the user holds is the search's, not a copy: a ticket is ready from it.
    assert search.ticket(2) is search.model


def test_joint_may_be_turned_on_when_resuming_and_changes_no_number(tmp_path, joint_calls):
    run(tmp_path / "run", joint=False, rounds=1)
    _, resumed = run(tmp_path / "run", joint=True, rounds=2)
    assert joint_calls == [["ticket", *CONTROLS]]  # Round 2 only.
    run(tmp_path / "alone", joint=False, rounds=2)
    same_runs(tmp_path / "run", tmp_path / "alone")
    assert len(resumed.records) == 9


def test_a_round_killed_after_some_members_were_kept_resumes_the_others(
        tmp_path, joint_calls, monkeypatch):
    from keras_lottery.search.run_directory import SearchStore

    save = SearchStore.save_training
    saved = []

    def killed(self, record, *args, **kwargs):
        if record.round == 1 and record.kind == "random_pruning":
            raise KeyboardInterrupt
        saved.append((record.round, record.kind))
        return save(self, record, *args, **kwargs)

    monkeypatch.setattr(SearchStore, "save_training", killed)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut")
    assert saved == [(0, "ticket"), (1, "ticket"), (1, "random_reinit")]
    monkeypatch.setattr(SearchStore, "save_training", save)
    joint_calls.clear()
    run(tmp_path / "cut")
    # What was kept is not trained again; the round's other two train as one.
    assert joint_calls == [["random_pruning", "inverted"], ["ticket", *CONTROLS]]
    run(tmp_path / "alone", joint=False)
    same_runs(tmp_path / "cut", tmp_path / "alone")


def test_what_cannot_share_a_program_trains_one_at_a_time_said_once(
        tmp_path, joint_calls, capsys):
    _, own = run(tmp_path / "own", data_order="per_training")
    out = capsys.readouterr().out
    assert out.count("joint:") == 1
    assert "data_order='per_round'" in out and "A round trains as one with" in out
    assert not joint_calls
    # The data orders are the default's: the same numbers as without `joint`.
    run(tmp_path / "default", joint=False, data_order="per_training")
    same_runs(tmp_path / "own", tmp_path / "default")

    run(tmp_path / "callbacks", callbacks=[keras.callbacks.Callback()])
    assert "callbacks of your own" in capsys.readouterr().out
    assert not joint_calls


@pytest.mark.parametrize("build, reason", [
    (lambda: _compiled(keras.Sequential([
        keras.Input((12,)), kl.MaskedDense(3, kernel_regularizer="l2", name="out")])),
     "regularization"),
    (lambda: _compiled(keras.Sequential([keras.Input((12,)), kl.MaskedDense(3, name="out")]),
                       keras.optimizers.Adam(0.01, global_clipnorm=1.0)), "global_clipnorm"),
])
def test_models_and_optimizers_that_couple_members_are_named(build, reason):
    search = kl.TicketSearch(build(), X, Y, rounds=1, controls=["random_pruning"],
                             data_order="per_round", joint=True, verbose=0)
    trainer = joint_module.JointTrainer(
        Trainer(search.model, search.optimizer, search.config, (X, Y)),
        search.compile_config)
    assert reason in trainer.why_not()


def _compiled(model, optimizer="adam"):
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_unseeded_dropout_keeps_torch_one_at_a_time():
    from helpers import compiled_mlp

    search = kl.TicketSearch(compiled_mlp(dropout=0.2), X, Y, rounds=1,
                             controls=["random_pruning"], data_order="per_round", joint=True,
                             verbose=0)
    trainer = joint_module.JointTrainer(
        Trainer(search.model, search.optimizer, search.config, (X, Y)),
        search.compile_config)
    reason = trainer.why_not()
    if keras.backend.backend() == "torch":
        assert "give those layers a seed" in reason
    else:
        assert reason is None


def test_a_joint_round_out_of_memory_trains_one_at_a_time(tmp_path, monkeypatch, capsys):
    def exhausted(self, round_, members):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate")

    monkeypatch.setattr(joint_module.JointTrainer, "train", exhausted)
    run(tmp_path / "full")
    out = capsys.readouterr().out
    assert out.count("do not fit in memory side by side") == 1
    run(tmp_path / "alone", joint=False)
    same_runs(tmp_path / "full", tmp_path / "alone")


def test_another_error_of_a_joint_round_is_raised(tmp_path, monkeypatch):
    def broken(self, round_, members):
        raise RuntimeError("something else")

    monkeypatch.setattr(joint_module.JointTrainer, "train", broken)
    with pytest.raises(RuntimeError, match="something else"):
        run(tmp_path / "run")


@pytest.mark.parametrize("setting, value, expected", [
    ("data_order", "paired", r"data_order.*per_training.*per_round.*'paired'"),
    ("joint", "yes", r"joint"),
])
def test_bad_joint_settings_are_refused_naming_them(setting, value, expected):
    with pytest.raises(ValueError, match=expected):
        kl.TicketSearch(seeded_mlp(), X, Y, **{setting: value})


def test_a_model_that_cannot_be_copied_trains_one_at_a_time(tmp_path, monkeypatch, capsys):
    def uncopyable(*args, **kwargs):
        raise ValueError("a layer Keras cannot rebuild from its config")

    monkeypatch.setattr(joint_module, "_Program", uncopyable)
    run(tmp_path / "run", rounds=1)
    out = capsys.readouterr().out
    assert out.count("could not be copied side by side (a layer Keras cannot rebuild") == 1
    run(tmp_path / "alone", joint=False, rounds=1)
    same_runs(tmp_path / "run", tmp_path / "alone")


def test_per_round_gives_the_controls_the_tickets_seed_and_per_training_their_own():
    from keras_lottery.search.training import seed_for

    for order, expected in (("per_round", "ticket"), ("per_training", "random_pruning")):
        search = kl.TicketSearch(seeded_mlp(), X, Y, rounds=1, data_order=order, seed=4,
                                 controls=["random_pruning"], verbose=0)
        trainer = Trainer(search.model, search.optimizer, search.config, (X, Y))
        assert trainer.data_seed(2, "random_pruning") == seed_for(4, 2, expected)


def test_a_second_run_asks_again_whether_its_rounds_can_share_a_program(
        tmp_path, monkeypatch, capsys):
    train = joint_module.JointTrainer.train
    calls = []

    def stopped_at_round_2(self, round_, members):
        calls.append(round_)
        if round_ == 2:
            raise KeyboardInterrupt
        return train(self, round_, members)

    monkeypatch.setattr(joint_module.JointTrainer, "train", stopped_at_round_2)
    search = kl.TicketSearch(seeded_mlp(), X, Y, rounds=2, controls=["random_pruning"],
                             data_order="per_round", joint=True, epochs=1, batch_size=20,
                             directory=tmp_path, verbose=1)
    with pytest.raises(KeyboardInterrupt):
        search.run()
    assert calls == [1, 2]
    # The same search run again, now with a callback: round 2 trains one at a time.
    result = search.run(callbacks=[keras.callbacks.Callback()])
    assert calls == [1, 2]
    out = capsys.readouterr().out
    assert out.count("joint:") == 1 and "callbacks of your own expect one model" in out
    assert [(r.round, r.kind) for r in result.records][-2:] == [(2, "ticket"),
                                                                (2, "random_pruning")]


def test_a_lost_ticket_record_is_trained_alone_and_its_kept_controls_not_again(
        tmp_path, joint_calls):
    run(tmp_path / "run")
    (tmp_path / "run" / "rounds" / "002_ticket.json").unlink()
    joint_calls.clear()
    _, result = run(tmp_path / "run")
    assert joint_calls == []  # The ticket alone was left to train.
    assert len(result.records) == len({(r.round, r.kind) for r in result.records}) == 9
    run(tmp_path / "alone", joint=False)
    same_runs(tmp_path / "run", tmp_path / "alone")


def test_a_subclassed_model_is_not_copied():
    class Own(keras.Sequential):
        pass

    model = Own([keras.Input((12,)), kl.MaskedDense(3, name="out")])
    search = kl.TicketSearch(_compiled(model), X, Y, rounds=1, controls=["random_pruning"],
                             data_order="per_round", joint=True, verbose=0)
    trainer = joint_module.JointTrainer(
        Trainer(search.model, search.optimizer, search.config, (X, Y)), search.compile_config)
    assert "Own is not a Sequential or Functional model" in trainer.why_not()
