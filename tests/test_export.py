"""Tickets rebuilt from a run directory alone (`keras_lottery.search.export`, `keras-lottery export`)."""

import json
import shutil
import warnings

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import cli
from keras_lottery.search import state
from keras_lottery.search.export import export_ticket, load_ticket
from keras_lottery.pruning.rules import keep_count


def _mlp():
    """Automatic layer names: a second build names its layers (and paths) otherwise."""
    model = kl.prunable(keras.Sequential([
        keras.Input((20,)), keras.layers.Dense(12, activation="relu"),
        keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]))
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 20)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")


def _search(model, directory):
    x, y = _data()
    return kl.TicketSearch(model, x, y, rounds=2, structure="neurons", rewind_step=2,
                           prune_rates=kl.PruneRates(0.3, by_kind={"output": 0.0}),
                           epochs=1, batch_size=16, verbose=0, directory=directory)


def _values(model):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.variables]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    directory = tmp_path_factory.mktemp("export") / "run"
    search = _search(_mlp(), directory)
    search.run()
    return search, directory


def test_a_loaded_ticket_is_the_search_ticket(searched):
    search, directory = searched
    x, _ = _data()
    for round_ in (0, 1, 2):
        expected = _values(search.ticket(round_))  # Rewind weights (iteration 2) and masks.
        loaded = load_ticket(directory, round_)
        assert all(np.array_equal(a, b) for a, b in zip(_values(loaded), expected, strict=True))
        np.testing.assert_array_equal(loaded.predict(x, verbose=0),
                                      search.ticket(round_).predict(x, verbose=0))
    # Not θ0: rewound to iteration 2, the weights the search keeps in rewind.npz.
    rewound = state.snapshot(load_ticket(directory, 2)).values()  # In the model's order.
    assert any(not np.array_equal(a, b) for a, b in zip(rewound, search.theta0.values()))
    # The last finished round by default.
    assert all(np.array_equal(a, b) for a, b in zip(
        _values(load_ticket(directory)), _values(load_ticket(directory, 2)), strict=True))


@pytest.mark.parametrize("form", ["plain", "shrunk", "masked"])
def test_exported_tickets_reload_and_predict_the_same(searched, tmp_path, form):
    _, directory = searched
    x, _ = _data()
    ticket = load_ticket(directory, 2)
    export_ticket(directory, tmp_path / "ticket.keras", 2, form)
    again = keras.models.load_model(tmp_path / "ticket.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), ticket.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    stock = all(type(layer).__module__.startswith("keras.") for layer in again.layers)
    assert stock == (form != "masked")
    hidden = [layer.units for layer in again.layers][:2]
    kept = [keep_count(12, 0.7**2), keep_count(8, 0.7**2)]  # 30% of neurons a round.
    if form == "shrunk":
        assert hidden == kept
    else:
        assert hidden == [12, 8]
        kernel = keras.ops.convert_to_numpy(again.layers[0].kernel)
        assert (~kernel.any(axis=0)).sum() == 12 - kept[0]  # Whole neurons of zeros.


def test_model_config_written_again_when_missing_under_new_names(searched, tmp_path):
    """A directory without model.json (older runs): refused with the way out; a
    resume writes it, here from a rebuild whose automatic paths differ."""
    search, original = searched
    directory = tmp_path / "run"
    shutil.copytree(original, directory)
    (directory / "model.json").unlink()
    with pytest.raises(ValueError, match="running it again adds it"):
        load_ticket(directory, 1)
    rebuilt = _mlp()
    assert rebuilt.layers[0].name != search.model.layers[0].name
    before = (directory / "rounds" / "002_ticket.json").stat().st_mtime_ns
    _search(rebuilt, directory).run()
    assert (directory / "rounds" / "002_ticket.json").stat().st_mtime_ns == before
    config = json.loads((directory / "model.json").read_text())
    assert rebuilt.layers[0].name in json.dumps(config)
    assert all(np.array_equal(a, b) for a, b in zip(
        _values(load_ticket(directory, 1)), _values(search.ticket(1)), strict=True))


def test_bad_input_refused_before_anything_is_written(searched, tmp_path):
    _, directory = searched
    with pytest.raises(ValueError, match=r"finished ticket rounds \[0, 1, 2\].*round=3"):
        load_ticket(directory, 3)
    with pytest.raises(ValueError, match="`out` to be a file name ending in .keras.*model.h5"):
        export_ticket(directory, tmp_path / "model.h5")
    with pytest.raises(ValueError, match="`form` among.*form='small'"):
        export_ticket(directory, tmp_path / "model.keras", form="small")
    with pytest.raises(ValueError, match="not a run directory"):
        load_ticket(tmp_path)
    with pytest.raises(ValueError, match="`out` in an existing folder.*does not exist"):
        export_ticket(directory, tmp_path / "missing" / "model.keras")
    with pytest.raises(SystemExit, match="keras-lottery export: .*round=7"):
        cli.main(["export", str(directory), "--round", "7", "--out", str(tmp_path / "t.keras")])
    with pytest.raises(SystemExit, match="--import no_such_module"):
        cli.main(["export", str(directory), "--import", "no_such_module", "--out",
                  str(tmp_path / "t.keras")])
    assert not list(tmp_path.iterdir())
    seeds = tmp_path / "seeds"
    shutil.copytree(directory, seeds / "seed_0")
    with pytest.raises(ValueError, match=r"a folder of seed runs: pass one of \[.*seed_0"):
        load_ticket(seeds)


def test_a_model_config_of_another_model_is_refused(searched, tmp_path):
    _, original = searched
    directory = tmp_path / "run"
    shutil.copytree(original, directory)
    config = json.loads((directory / "model.json").read_text())
    text = json.dumps(config).replace('"activation": "relu"', '"activation": "tanh"', 1)
    (directory / "model.json").write_text(text)
    with pytest.raises(ValueError, match=r"model.json to describe the model.*other layers"):
        load_ticket(directory, 1)


def custom_loss(y_true, y_pred):  # Not registered with Keras: found only by custom_objects.
    return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)


def test_one_shot_dropout_batchnorm_and_a_loss_of_ones_own(tmp_path):
    model = kl.prunable(keras.Sequential([
        keras.Input((20,)), keras.layers.Dense(12, activation="relu"),
        keras.layers.BatchNormalization(), keras.layers.Dropout(0.3), keras.layers.Dense(3)]))
    model.compile(keras.optimizers.SGD(0.05), custom_loss)
    x, y = _data()
    search = kl.TicketSearch(model, x, y, one_shot=[0.5, 0.2], epochs=1, batch_size=16,
                             verbose=0, directory=tmp_path / "run")
    search.run()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        uncompiled = load_ticket(tmp_path / "run", 2)
    assert any("left uncompiled" in str(w.message) for w in caught)
    assert uncompiled.compiled is False
    for round_ in (1, 2):  # Batch-norm statistics and dropout's seed state too.
        loaded = load_ticket(tmp_path / "run", round_, custom_objects={"custom_loss": custom_loss})
        assert loaded.compiled and loaded.loss is custom_loss
        assert all(np.array_equal(a, b) for a, b in zip(
            _values(loaded), _values(search.ticket(round_)), strict=True))
