"""Bad input, damaged run directories and offline use: a clear answer before any work."""

import json
import re
import socket

import keras
import numpy as np
import pytest
from helpers import X, Y, compiled_mlp, search

import keras_lottery as kl
from keras_lottery import cli
from keras_lottery.data import datasets
from keras_lottery.search import run_directory, state


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
    ("verbose 7", dict(verbose=7), r"Expected `verbose` an integer in \[0, 2\]. Received: verbose=7"),
    ("seed text", dict(seed="abc"), r"Expected `seed` an integer >= 0. Received: seed='abc'"),
    ("rounds -3", dict(rounds=-3), r"Expected `rounds` an integer >= 1. Received: rounds=-3"),
    ("one_shot 2", dict(one_shot=[2]), r"`one_shot` densities in \(0, 1\)"),
    ("criterion", dict(criterion="obd"), r"Expected `criterion` among"),
    ("monitor without validation", dict(monitor="val_accuracy"),
     r"Expected `validation_data` with `monitor`"),
    ("test_curves text", dict(test_curves="yes"),
     r"Expected `test_curves` True or False. Received: test_curves='yes'"),
    ("rounds 0", dict(rounds=0), r"Expected `rounds` an integer >= 1. Received: rounds=0"),
    ("rounds 1.5", dict(rounds=1.5), r"`rounds` an integer"),
    ("prune_rates 1.0", dict(prune_rates=1.0),
     r"Expected `default` in \[0, 1\). Received: default=1.0"),
    ("prune_rates -0.2", dict(prune_rates=-0.2), r"in \[0, 1\)"),
    ("prune_rates unknown layer", dict(prune_rates=kl.PruneRates(0.2, by_layer={"fc9": 0.1})),
     r"unknown names: \['fc9'\]"),
    ("rewind_step -1", dict(rewind_step=-1), r"`rewind_step` an integer >= 0"),
    ("rewind_step past the dense run", dict(rewind_step=11),
     r"`rewind_step` within the dense run of 10 iterations"),
    ("eval_every 0", dict(eval_every=0), r"`eval_every` an integer >= 1"),
    ("target_density 1.2", dict(target_density=1.2), r"`target_density` in \(0, 1\)"),
    ("one_shot 1.0", dict(one_shot=[0.5, 1.0]), r"`one_shot` densities in \(0, 1\)"),
    ("controls shuffle", dict(controls=["shuffle"]), r"`controls` among .*Received unknown \['shuffle'\]"),
    ("validation_split", dict(validation_split=0.1),
     r"Received `validation_split`: use `validation_data`"),
    ("one_shot below the unpruned share",
     dict(one_shot=[0.01], prune_rates=kl.PruneRates(0.2, by_layer={"fc2": 0.0})),
     r"`one_shot` above 0.5970, the share of weights kept in layers with rate 0"),
    ("target_density below the unpruned share",
     dict(target_density=0.5, prune_rates=kl.PruneRates(0.2, by_layer={"fc2": 0.0})),
     r"`target_density` above 0.5970"),
    ("criterion l1", dict(criterion="l1"), r"Expected `criterion` among .*Received: criterion='l1'"),
    ("snip without one_shot", dict(criterion="snip"),
     r"Expected `one_shot` densities with criterion 'snip'"),
    ("erk with two rates", dict(budget="erk"),
     r"one nonzero rate for budget='erk'.*Received rates \[0.1, 0.2\]"),
    ("budget layer", dict(budget="layer"), r"Expected `budget` among 'uniform', 'global', 'erk'"),
    ("budget global with two rates", dict(budget="global"), r"one nonzero rate for budget='global'"),
    ("global_pruning removed", dict(global_pruning=True), r"`global_pruning`.*budget=\"global\""),
    ("structure_score removed", dict(structure_score="l2"), r"`structure_score`.*Structure\(kind, score="),
    ("a typo of a setting", dict(prune_rate=0.5), r"unknown argument `prune_rate`.*Did you mean `prune_rates`"),
]


@pytest.mark.parametrize("what, change, message", SEARCH_CASES, ids=[c[0] for c in SEARCH_CASES])
def test_bad_search_input_is_refused_before_training(what, change, message):
    settings = dict(x=X, y=Y, rounds=1, epochs=1, batch_size=20, verbose=0,
                    callbacks=[Trainings()])
    settings.update(change)
    if "one_shot" in change and "rounds" not in change:
        del settings["rounds"]  # One-shot densities set the rounds.
    model = compiled_mlp()
    if settings.pop("model", None) == "object_loss":
        model.compile("adam", [keras.losses.SparseCategoricalCrossentropy()])
    before, weights = Trainings.count, state.snapshot(model)
    with pytest.raises(ValueError, match=message):
        kl.TicketSearch(model, settings.pop("x"), settings.pop("y"), **settings).run()
    assert Trainings.count == before
    after = state.snapshot(model)
    assert all(np.array_equal(weights[k], after[k]) for k in weights)


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
        assert "intact" in str(info.value) or "new directory" in str(info.value)
        # A finished round's masks are read again when asked for, and named then too.
        masks_of = re.fullmatch(r"rounds/(\d{3})_ticket_masks\.npz", name)
        if masks_of:
            with pytest.raises(run_directory.DamagedRunError, match=rf"damaged file .*{name}"):
                s.masks(int(masks_of[1]))


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
        # A finished training's masks are read when asked for, and named then.
        with pytest.raises(ValueError, match=rf"Delete rounds/{stem}_masks.npz and") as info:
            s.masks(2, stem[4:])
        # A run reads every ticket's masks (its controls are made from them), and a
        # finished control's masks only when asked for.
        if stem == "002_ticket":
            with pytest.raises(ValueError, match=rf"Delete rounds/{stem}_masks.npz and") as ran:
                s.run()
            assert str(ran.value) == str(info.value)
        else:
            s.run()
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
    (["--batch-size", "-1"], r"--batch-size: Expected `batch_size` an integer >= 1. Received: batch_size=-1"),
    (["--rounds", "-3"], r"--rounds: Expected `rounds` an integer >= 1. Received: rounds=-3"),
    (["--one-shot", "2"], r"--one-shot: Expected `one_shot` densities in \(0, 1\). Received: one_shot=\[2.0\]"),
    (["--learning-rate", "-0.1"], r"--learning-rate: Expected `learning_rate` > 0. Received: learning_rate=-0.1"),
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
    (dict(batch_size=0), r"Expected `batch_size` an integer >= 1"),
    (dict(dropout=1.5), r"Expected `dropout` in \[0, 1\)"),
    (dict(optimizer="rmsprop"), r"Expected `optimizer` among 'adam', 'sgd'"),
])
def test_bad_preset_overrides_are_refused_before_any_data(monkeypatch, override, message):
    monkeypatch.setattr(datasets, "load", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(ValueError, match=message):
        kl.TicketSearch.from_preset("lenet_300_100_mnist", **override)


def test_cli_refusals_are_one_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "load", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(SystemExit, match=r"^keras-lottery run: Expected `name` among .*'lenet9'"):
        cli.main(["run", "--preset", "lenet9", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"Expected `one_shot` or `rounds`, not both"):
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


# -- every kind of argument refused alike, before any work --------------------

CHECKS_REFUSE = [
    ("unknown data set", lambda tmp: datasets.load("imagenet"),
     r"Expected `name` among 'cifar10', .*Received: name='imagenet'"),
    ("empty data_dir", lambda tmp: datasets.mnist(data_dir=""),
     r"Expected `data_dir` a path \(.*not empty.*\). Received: data_dir=''"),
    ("empty data_dir by name", lambda tmp: datasets.load("cifar10", data_dir=""),
     r"Received: data_dir=''"),
    ("empty data_dir, generated data", lambda tmp: datasets.mnist1d(data_dir=""),
     r"Received: data_dir=''"),
    ("empty data_dir, text", lambda tmp: kl.text.jargon(data_dir=""), r"Received: data_dir=''"),
    ("empty text path", lambda tmp: kl.text.text_file(""),
     r"Expected `path` a path \(.*not empty\). Received: path=''"),
    ("unknown network", lambda tmp: kl.models.get("resnet20"),
     r"Expected `name` among 'lenet_300_100', .*Received: name='resnet20'"),
    ("empty run directory", lambda tmp: run_directory.RunDirectory(""),
     r"Expected `directory` a path \(.*not empty\). Received: directory=''"),
    ("empty export path", lambda tmp: kl.export_ticket(tmp, out=""),
     r"Expected `out` a path \(.*not empty\). Received: out=''"),
    # A bool is no number, though Python counts it as an int.
    ("bool patience", lambda tmp: kl.EarlyBird("neurons", patience=True),
     r"Expected `patience` an integer >= 1. Received: patience=True"),
    ("bool rate", lambda tmp: kl.PruneRates(False),
     r"Expected `default` a finite number in \[0, 1\). Received: default=False"),
    ("bool eval_every", lambda tmp: kl.fast_compile_settings(eval_every=True),
     r"Expected `eval_every` an integer >= 1 or None. Received: eval_every=True"),
    ("bool warmup_steps", lambda tmp: kl.schedules.LinearWarmup(0.1, warmup_steps=True),
     r"Expected `warmup_steps` an integer >= 1. Received: warmup_steps=True"),
    ("bool examples", lambda tmp: kl.Criterion("snip", examples=True),
     r"Expected `Criterion.examples` an integer >= 1"),
    ("bool N of N:M", lambda tmp: kl.Structure("n:m", n=True, m=4),
     r"Expected `n` an integer. Received: n=True"),
    ("bool hidden units", lambda tmp: kl.models.mlp(hidden=(8, True)),
     r"Expected `hidden` a non-empty list of integers >= 1. Received: hidden=\(8, True\)"),
    ("bool validation_size", lambda tmp: datasets.mnist1d(validation_size=True),
     r"Expected `validation_size` an integer. Received: validation_size=True"),
    ("bool sequence_length", lambda tmp: kl.text.text_splits("x" * 100, sequence_length=True),
     r"Expected `sequence_length` an integer >= 1. Received: sequence_length=True"),
    ("bool dropout", lambda tmp: kl.models.get("conv2", dropout=True),
     r"Expected `dropout` None, a rate in \[0, 1\) or a `DropoutConfig`"),
    ("integer in_place", lambda tmp: kl.strip(compiled_mlp(), in_place=np.int64(1)),
     r"Expected `in_place` True or False. Received: in_place=np.int64\(1\)"),
    ("number from_logits", lambda tmp: kl.metrics.Perplexity(from_logits=1),
     r"Expected `from_logits` True or False. Received: from_logits=1"),
]


@pytest.mark.parametrize("what, call, message", CHECKS_REFUSE, ids=[c[0] for c in CHECKS_REFUSE])
def test_checks_refuse(tmp_path, monkeypatch, what, call, message):
    monkeypatch.setattr(datasets, "_load_images", lambda *a: pytest.fail("data loaded"))
    monkeypatch.setattr(kl.text, "_local_text", lambda *a: pytest.fail("text searched for"))
    monkeypatch.setattr(kl.export, "load_ticket", lambda *a: pytest.fail("ticket loaded"))
    with pytest.raises(ValueError, match=message):
        call(tmp_path)


def test_numpy_scalars_pass_where_python_numbers_do():
    rates = kl.PruneRates(np.float32(0.5), by_kind={"output": np.float64(0.25)})
    assert (rates.default, rates.by_kind) == (0.5, {"output": 0.25})
    assert type(rates.default) is float and type(rates.by_kind["output"]) is float
    criterion = kl.Criterion("grasp", examples=np.int64(8), temperature=np.float32(2))
    assert (type(criterion.examples), type(criterion.temperature)) == (int, float)
    assert kl.fast_compile_settings(eval_every=np.int64(5))["steps_per_execution"] in (1, 5)
    bird = kl.EarlyBird("neurons", keep=np.float32(0.5), patience=np.int32(2),
                        stop=np.bool_(False))
    assert (bird.keep, bird.patience, bird.stop) == (0.5, 2, False)
    assert type(bird.patience) is int and bird.stop is False
    warmup = kl.schedules.LinearWarmup(np.float64(0.1), warmup_steps=np.int64(4))
    json.dumps(warmup.get_config())  # Python numbers, as a saved model's config needs.
    structure = kl.Structure("n:m", n=np.int64(2), m=np.int64(4))
    assert str(structure) == "2:4"
    json.dumps(structure.to_json())
    splits = kl.text.text_splits("abcd " * 100, sequence_length=np.int64(8),
                                 validation_fraction=np.float32(0.1))
    assert splits.train[0].shape[1] == 8
    model = kl.models.mlp(input_shape=(3,), hidden=(np.int64(4),), dropout=np.float32(0.5))
    assert [layer.units for layer in model.layers if hasattr(layer, "units")] == [4, 10]
    assert kl.prune_count(10, np.float32(0.25)) == 3
