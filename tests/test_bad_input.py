"""Bad input, damaged run directories and offline use: a clear answer before any work."""

import json
import re
import socket

import keras
import numpy as np
import pytest
from test_ticket_search import X, Y, compiled_mlp, search

import keras_lottery as kl
from keras_lottery import cli, datasets, run_directory, state


class Trainings(keras.callbacks.Callback):
    count = 0

    def on_train_begin(self, logs=None):
        Trainings.count += 1


def nan_x():
    x = X.copy()
    x[3, 2] = np.nan
    return x


# (what, how to build and run the search, the message expected)
SEARCH_CASES = [
    ("y missing", dict(y=None), r"Expected `x` arrays with their labels.*y=None"),
    ("x and y lengths", dict(y=Y[:50]), r"Expected `x` arrays of one length. Received lengths \[50, 200\]"),
    ("no examples", dict(x=X[:0], y=Y[:0]), r"Expected `x` with at least one example"),
    ("NaN in x", dict(x=nan_x()), r"Expected finite `x` x. Received 1 NaN"),
    ("labels out of range", dict(y=Y + 3), r"Expected `y` labels in \[0, 3\).*from 3 to 5"),
    ("validation shape", dict(validation_data=(X[:10, :5], Y[:10])),
     r"Expected `validation_data` the model can be evaluated on"),
    ("validation labels", dict(validation_data=(X[:10], Y[:10] + 7)),
     r"Expected `validation_data` labels in \[0, 3\)"),
    ("validation NaN", dict(validation_data=(nan_x(), Y)), r"Expected finite `validation_data` x"),
    ("sample weight NaN", dict(validation_data=(X, Y, np.where(Y > 0, np.nan, 1.0))),
     r"Expected finite `validation_data` sample_weight"),
    ("one_shot twice", dict(one_shot=[0.5, 0.5]), r"Expected distinct `one_shot` densities"),
    ("loss object labels", dict(model="object_loss", y=Y + 3), r"Expected `y` labels in \[0, 3\)"),
    ("batch_size 0", dict(batch_size=0), r"Expected `batch_size` an integer >= 1. Received: batch_size=0"),
    ("epochs -1", dict(epochs=-1), r"Expected `epochs` an integer >= 1"),
    ("verbose 7", dict(verbose=7), r"Expected `verbose` 0, 1 or 2. Received: verbose=7"),
    ("seed text", dict(seed="abc"), r"Expected `seed` an integer >= 0. Received: seed='abc'"),
    ("rounds -3", dict(rounds=-3), r"Expected `rounds` an integer >= 1. Received: rounds=-3"),
    ("one_shot 2", dict(one_shot=[2]), r"`one_shot` densities in \(0, 1\)"),
    ("criterion", dict(criterion="obd"), r"Expected `criterion` among"),
    ("monitor without validation", dict(monitor="val_accuracy"),
     r"Expected `validation_data` with `monitor`"),
    ("test_curves text", dict(test_curves="yes"),
     r"Expected `test_curves` True or False. Received: test_curves='yes'"),
]


@pytest.mark.parametrize("what, change, message", SEARCH_CASES, ids=[c[0] for c in SEARCH_CASES])
def test_bad_search_input_is_refused_before_training(what, change, message):
    settings = dict(x=X, y=Y, rounds=1, epochs=1, batch_size=20, verbose=0,
                    callbacks=[Trainings()])
    settings.update(change)
    model = compiled_mlp()
    if settings.pop("model", None) == "object_loss":
        model.compile("adam", [keras.losses.SparseCategoricalCrossentropy()])
    before = Trainings.count
    with pytest.raises(ValueError, match=message):
        kl.TicketSearch(model, settings.pop("x"), settings.pop("y"), **settings).run()
    assert Trainings.count == before


def test_data_given_to_run_is_the_data_checked():
    s = search(rounds=1, validation_data=(X[:10], Y[:10] + 7))
    with pytest.raises(ValueError, match=r"`validation_data` labels"):
        s.run()
    assert len(s.run(validation_data=(X[:10], Y[:10])).records) == 2
    with pytest.raises(ValueError, match=r"Expected finite `validation_data` x"):
        s.run(validation_data=(nan_x(), Y))


def test_a_file_is_not_a_run_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"Expected `directory` to be a folder.*which is a file"):
        search(directory=tmp_path / "file")


def test_partial_masks_must_say_so():
    model = compiled_mlp()
    first = next(iter(kl.get_masks(model)))
    with pytest.raises(ValueError, match=r"Expected `masks` for every prunable weight.*partial=True"):
        kl.apply_masks(model, {first: np.zeros((12, 40))})
    kl.apply_masks(model, {first: np.zeros((12, 40))}, partial=True)
    assert not kl.get_masks(model)[first].any()


# -- damaged run directories ------------------------------------------------


def finished_run(path):
    search(rounds=2, directory=path, rewind_step=10, epochs=2).run()
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_every_damaged_file_is_named_with_the_way_out(tmp_path, damage):
    reference = tmp_path / "reference"
    files = finished_run(reference)
    assert {"search.json", "theta0.npz", "rewind.npz", "result.json", "trained/002.npz",
            "rounds/001_ticket.json", "rounds/001_ticket_masks.npz"} <= set(files)
    for name in files:
        run = tmp_path / name.replace("/", "_")
        run.mkdir()
        for other in files:
            (run / other).parent.mkdir(parents=True, exist_ok=True)
            (run / other).write_bytes((reference / other).read_bytes())
        data = (run / name).read_bytes()
        (run / name).write_bytes({"truncate": data[: len(data) // 2], "empty": b"",
                                  "garbage": b"\x00\xff not a file of ours"}[damage])
        if name in ("result.json", "model.json"):  # Written again: nothing is lost.
            if name == "model.json":
                with pytest.raises(run_directory.DamagedRunError,
                                   match=r"model.json.*run the search again"):
                    kl.load_ticket(run)
            search(rounds=2, directory=run, rewind_step=10, epochs=2).run()
            json.loads((run / name).read_text())
            continue
        s = search(rounds=3, directory=run, rewind_step=10, epochs=2)
        with pytest.raises(run_directory.DamagedRunError, match=rf"damaged file .*{name}") as info:
            s.run()
            # Masks and trained weights of finished rounds are read when needed.
            for kind_round in range(3):
                s.masks(kind_round)
        assert "intact" in str(info.value) or "new directory" in str(info.value)


def test_a_damaged_round_is_trained_again_after_the_way_out(tmp_path):
    search(rounds=2, directory=tmp_path).run()
    (tmp_path / "rounds" / "002_ticket.json").write_text("{")
    with pytest.raises(ValueError, match=r"delete rounds/002_ticket.json and run again"):
        search(rounds=2, directory=tmp_path).run()
    (tmp_path / "rounds" / "002_ticket.json").unlink()
    again = search(rounds=2, directory=tmp_path)
    result = again.run()
    assert [r.round for r in result.records] == [0, 1, 2]
    reference = search(rounds=2, directory=tmp_path / "reference")
    assert result.records[2].final == reference.run().records[2].final


def test_the_way_out_of_damaged_masks_works(tmp_path):
    reference = search(rounds=2, controls=["inverted"], directory=tmp_path / "reference")
    reference.run()
    run = tmp_path / "run"
    search(rounds=2, controls=["inverted"], directory=run).run()
    for stem in ("002_ticket", "002_inverted"):
        (run / "rounds" / f"{stem}_masks.npz").write_bytes(b"")
        s = search(rounds=2, controls=["inverted"], directory=run)
        with pytest.raises(ValueError, match=r"Delete rounds/.*_masks.npz and") as info:
            s.run()
            s.masks(2, stem[4:])  # A finished training's masks are read when asked for.
        # Follow it: the masks and record, and the record that wrote the weights they need.
        for name in re.findall(r"rounds/\d{3}_[a-z_]+?(?:_masks\.npz|\.json)", str(info.value)):
            (run / name).unlink(missing_ok=True)
    again = search(rounds=2, controls=["inverted"], directory=run)
    result = again.run()
    assert sorted((r.round, r.kind) for r in result.records) == sorted(
        (r.round, r.kind) for r in reference.run().records)
    for kind in ("ticket", "inverted"):
        for path, mask in reference.masks(2, kind).items():
            np.testing.assert_array_equal(again.masks(2, kind)[path], mask)


# -- a finished search goes further down -------------------------------------


def test_a_finished_search_extends_with_more_rounds(tmp_path):
    first = search(rounds=2, directory=tmp_path)
    first.run()
    masks = [first.masks(r) for r in range(3)]
    before = Trainings.count
    longer = search(rounds=4, directory=tmp_path, callbacks=[Trainings()])
    result = longer.run()
    assert Trainings.count - before == 2  # rounds 3 and 4 only
    assert [r.round for r in result.records] == [0, 1, 2, 3, 4]
    for r in range(3):
        for path, mask in masks[r].items():
            np.testing.assert_array_equal(longer.masks(r)[path], mask)
    reference = search(rounds=4, directory=tmp_path / "reference").run()
    assert [r.density for r in result.records] == [r.density for r in reference.records]
    lower = search(rounds=8, target_density=0.3, directory=tmp_path).run()
    tickets = lower.tickets()
    assert tickets[-1].density <= 0.3 < tickets[-2].density
    saved = json.loads((tmp_path / "search.json").read_text())["config"]
    assert (saved["rounds"], saved["target_density"]) == (8, 0.3)
    # Fewer rounds: the later ones stay on file, out of the result.
    shorter = search(rounds=2, directory=tmp_path).run()
    assert [r.round for r in shorter.records] == [0, 1, 2]
    assert len(run_directory.load_result(tmp_path).records) == len(lower.records)


# -- the command line -------------------------------------------------------

TINY = ["--network", "mlp", "--dataset", "mnist1d", "--iterations", "35", "--limit", "200",
        "--verbose", "0"]

CLI_CASES = [
    (["--batch-size", "-1"], r"--batch-size: expected an integer >= 1, received -1"),
    (["--rounds", "-3"], r"--rounds: expected an integer >= 1, received -3"),
    (["--one-shot", "2"], r"--one-shot: expected a number in \(0, 1\), received 2"),
    (["--learning-rate", "-0.1"], r"--learning-rate: expected a number > 0, received -0.1"),
    (["--seed", "abc"], r"--seed: expected an integer, received 'abc'"),
    (["--rate", "1.5"], r"--rate: expected a number in \[0, 1\)"),
    (["--learning-rate", "inf"], r"--learning-rate: expected a finite number, received 'inf'"),
]


@pytest.mark.parametrize("extra, message", CLI_CASES, ids=[c[0][0] for c in CLI_CASES])
def test_bad_cli_settings_are_one_line_before_any_data(tmp_path, capsys, monkeypatch, extra,
                                                       message):
    monkeypatch.setattr(datasets, "load", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(SystemExit) as info:
        cli.main(["run", *TINY, *extra, "--out", str(tmp_path)])
    assert info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(message, error), error


@pytest.mark.parametrize("override, message", [
    (dict(learning_rate=-0.1), r"Expected `learning_rate` > 0. Received: learning_rate=-0.1"),
    (dict(batch_size=0), r"Expected `batch_size` > 0"),
    (dict(dropout=1.5), r"Expected `dropout` in \[0, 1\)"),
    (dict(optimizer="rmsprop"), r"Expected `optimizer` 'adam' or 'sgd'"),
])
def test_bad_preset_overrides_are_refused_before_any_data(monkeypatch, override, message):
    monkeypatch.setattr(datasets, "load", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(ValueError, match=message):
        kl.TicketSearch.from_preset("lenet_300_100_mnist", **override)


def test_cli_refusals_are_one_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "load", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(SystemExit, match=r"^keras-lottery run: Expected `name` among .*'lenet9'"):
        cli.main(["run", "--preset", "lenet9", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"--rounds \(iterative\) or --one-shot, not both"):
        cli.main(["run", *TINY, "--rounds", "3", "--one-shot", "0.5", "--out", str(tmp_path)])


# -- offline ----------------------------------------------------------------


def test_a_named_missing_data_folder_is_an_error_without_the_network(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_tfds_arrays", lambda *a: pytest.fail("tfds tried"))
    with pytest.raises(FileNotFoundError, match=r"`data_dir`=.*not a directory.*tfds was not tried"):
        datasets.load("mnist", data_dir=tmp_path / "missing")


def test_offline_tfds_fails_in_seconds(monkeypatch):
    import tensorflow_datasets as tfds

    def not_prepared(*args, download=True, **kwargs):
        assert not download, "a download was attempted"
        raise AssertionError("Dataset mnist: could not find data")

    def offline(*args, **kwargs):
        raise socket.gaierror("no network")

    monkeypatch.delenv(datasets.DATA_ENV_VAR, raising=False)
    monkeypatch.setattr(tfds, "load", not_prepared)
    monkeypatch.setattr(socket, "create_connection", offline)
    with pytest.raises(FileNotFoundError, match=r"cannot be reached .* looks offline"):
        datasets.load("mnist")


def test_state_is_untouched_by_a_refusal():
    model = compiled_mlp()
    before = state.snapshot(model)
    with pytest.raises(ValueError):
        kl.TicketSearch(model, X, Y[:10], rounds=1, verbose=0).run()
    after = state.snapshot(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)
