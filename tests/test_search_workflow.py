"""The search in a real Keras workflow: callbacks, any loss and metric, honest resume,
one story per search (run twice, ticket, pruned or trained models), progress."""

import json

import keras
import numpy as np
import pytest
from helpers import VAL, X, Y, RoundStarts, compiled_mlp, search, to_numpy

import keras_lottery as kl
from keras_lottery.search import run_directory
from keras_lottery.runtime.evaluation import evaluate

RNG = np.random.default_rng(21)


# -- callbacks see the search's evaluations ---------------------------------


class Seen(keras.callbacks.Callback):
    """Records every epoch's logs, and the validation loss it measures itself."""

    def __init__(self):
        super().__init__()
        self.logs, self.val_loss = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))
        self.val_loss.append(evaluate(self.model, VAL)["loss"])


def test_stock_callbacks_see_validation_metrics(tmp_path):
    seen = Seen()
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0)
    best = keras.callbacks.ModelCheckpoint(tmp_path / "best.keras", monitor="val_accuracy",
                                           mode="max", save_best_only=True)
    csv = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    s = search(rounds=1, epochs=4, validation_data=VAL, test_data=VAL, eval_every=3,
               callbacks=[seen, stop, best, csv])
    result = s.run()
    # min_delta=10 makes every epoch "no improvement": each round stops after 2 epochs.
    assert [r.iterations for r in result.records] == [20, 20]  # 10 steps an epoch.
    assert {"val_loss", "val_accuracy", "test_loss", "test_accuracy", "loss",
            "accuracy"} <= set(seen.logs[0])
    # The curves keep the eval_every grid (callbacks or not); the epoch's logs
    # hold an evaluation at the epoch's end (iteration 10), for the logs only.
    first = result.record(0)
    assert first.curves["iteration"] == [3, 6, 9, 12, 15, 18, 20]
    without = search(rounds=1, epochs=2, validation_data=VAL, test_data=VAL,
                     eval_every=3).run().record(0)
    assert without.curves == first.curves
    assert [logs["val_loss"] for logs in seen.logs[:2]] == pytest.approx(seen.val_loss[:2])
    assert seen.logs[1]["val_loss"] == pytest.approx(first.curves["val_loss"][-1])
    # One ModelCheckpoint serves every training: it holds the best epoch end of the search.
    saved = keras.models.load_model(tmp_path / "best.keras")
    best_seen = max(logs["val_accuracy"] for logs in seen.logs)
    assert evaluate(saved, VAL)["accuracy"] == pytest.approx(best_seen)
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    assert "val_loss" in header and "val_accuracy" in header


def test_early_stop_criterion_is_configurable():
    result = search(rounds=1, epochs=2, validation_data=VAL, eval_every=2,
                    monitor="val_accuracy").run()
    for record in result.records:
        curve = record.curves["val_accuracy"]
        assert record.early_stop["val_accuracy"] == max(curve)
        assert record.early_stop_iteration == record.curves["iteration"][int(np.argmax(curve))]
    with pytest.raises(ValueError, match=r"`monitor` among the recorded quantities "
                                         r"\['val_accuracy', 'val_loss'\]. Received: monitor='val_auc'"):
        search(rounds=1, validation_data=VAL, monitor="val_auc").run()
    with pytest.raises(ValueError, match="monitor='loss'"):
        search(rounds=1, monitor="loss")


# -- any loss and metric ----------------------------------------------------


def binary_logits():
    model = keras.Sequential([keras.Input((12,)), kl.MaskedDense(8, activation="relu"),
                              kl.MaskedDense(1)])
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0.0), keras.metrics.AUC(
                      from_logits=True)])
    return model, (X, (Y > 0).astype("float32")[:, None])


def multiclass_logits():
    model = keras.Sequential([
        keras.Input((12,)),
        kl.MaskedDense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(0.1)),
        kl.MaskedDense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model, (X, Y)


def multilabel():
    model = keras.Sequential([keras.Input((12,)), kl.MaskedDense(4, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=[keras.metrics.BinaryAccuracy()])
    return model, (X, (X[:, :4] > 0).astype("float32"))


def regression():
    model = keras.Sequential([keras.Input((12,)), kl.MaskedDense(8, activation="relu"),
                              kl.MaskedDense(1)])
    model.compile("adam", "mse", metrics=["mae"])
    return model, (X, X[:, :1] * 2.0, np.linspace(0.5, 1.5, len(X)).astype("float32"))


def two_outputs():
    inputs = keras.Input((12,))
    hidden = kl.MaskedDense(8, activation="relu")(inputs)
    outputs = {"label": kl.MaskedDense(3, activation="softmax", name="label")(hidden),
               "value": kl.MaskedDense(1, name="value")(hidden)}
    model = keras.Model(inputs, outputs)
    model.compile("adam", {"label": "sparse_categorical_crossentropy", "value": "mse"},
                  metrics={"label": ["accuracy"], "value": ["mae"]})
    return model, (X, {"label": Y, "value": X[:, :1]})


class ReadsInputs(keras.Model):
    """A model whose own loss reads the inputs: they must reach it in evaluation."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training)
        return loss + keras.ops.mean(keras.ops.abs(x[:, :1]))


def reads_inputs():
    inputs = keras.Input((12,))
    model = ReadsInputs(inputs, kl.MaskedDense(3, activation="softmax")(inputs))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, (X, Y)


@pytest.mark.parametrize("make", [binary_logits, multiclass_logits, multilabel, regression,
                                  two_outputs, reads_inputs])
def test_evaluation_is_what_model_evaluate_gives(make, monkeypatch):
    # Predictions are gathered and scored together; a large output is scored
    # in parts (here after every batch) with the same result.
    keras.utils.set_random_seed(0)
    model, data = make()
    model.fit(*data[:2], epochs=1, verbose=0)
    # Batches of 64 leave a short last one (8 of 200 examples). Compiled on
    # TensorFlow, Keras' evaluate averages a per-output loss over batches, not
    # examples (this and JAX's average), so two outputs take batches of 50.
    batch_size = 50 if make is two_outputs else 64
    expected = model.evaluate(data[0], data[1], sample_weight=data[2] if len(data) > 2 else None,
                              batch_size=batch_size, verbose=0, return_dict=True)
    whole = evaluate(model, data, batch_size=batch_size)
    monkeypatch.setattr("keras_lottery.runtime.evaluation._PENDING_ELEMENTS", 1)
    parts = evaluate(model, data, batch_size=batch_size)
    assert whole.keys() == parts.keys() == expected.keys()
    for name, value in expected.items():
        assert whole[name] == pytest.approx(float(value), rel=1e-5, abs=1e-6), name
        assert parts[name] == pytest.approx(float(value), rel=1e-5, abs=1e-6), name


def test_evaluation_of_batches_shaped_differently():
    # Padded sequence batches of their own lengths cannot be joined: each
    # shape is scored as its own part, weighted as model.evaluate weighs.
    inputs = keras.Input((None,), dtype="int32")
    outputs = kl.MaskedDense(3, activation="softmax")(keras.layers.Embedding(10, 4)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    parts = [(RNG.integers(0, 10, (8, length)), RNG.integers(0, 3, (8, length)))
             for length in (5, 7, 7)]
    got = evaluate(model, iter(parts))  # Batches as a loader yields them.
    each = [model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True) for x, y in parts]
    # Equal batch sizes: Keras weighs the loss and a metric per example.
    for name in ("loss", "accuracy"):
        assert got[name] == pytest.approx(np.mean([e[name] for e in each]), rel=1e-5), name


def test_evaluation_leaves_the_running_metrics_alone():
    model, data = multiclass_logits()
    model.fit(*data, epochs=1, verbose=0)
    before = [to_numpy(v) for v in model.metrics_variables]
    evaluate(model, VAL)
    for variable, value in zip(model.metrics_variables, before):
        np.testing.assert_array_equal(to_numpy(variable), value)


def test_every_compiled_metric_is_recorded():
    model, (x, y, weight) = regression()
    result = kl.TicketSearch(model, x, y, rounds=1, epochs=1, batch_size=20, verbose=0,
                             validation_data=(x[:50], y[:50])).run()
    record = result.record(1)
    assert {"val_loss", "val_mae"} <= set(record.curves) and "val_accuracy" not in record.curves
    header = result.to_csv().splitlines()[0].split(",")
    assert {"final_val_mae", "early_stop_val_mae", "final_train_mae"} <= set(header)


# -- resume is honest ---------------------------------------------------------


@pytest.mark.parametrize("change, differs", [
    (dict(learning_rate=0.02), "compile"),
    (dict(x=X * 2), "data.x"),
    (dict(validation_data=(X[:30], Y[:30])), "data.validation"),
])
def test_resume_refuses_what_would_change_the_numbers(tmp_path, change, differs):
    search(rounds=1, directory=tmp_path, validation_data=VAL).run()
    model = compiled_mlp()
    if "learning_rate" in change:
        model.compile(keras.optimizers.Adam(change["learning_rate"]),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
    s = kl.TicketSearch(model, change.get("x", X), Y, rounds=1, epochs=1, batch_size=20,
                        verbose=0, validation_data=change.get("validation_data", VAL),
                        directory=tmp_path)
    with pytest.raises(ValueError, match=rf"differs in \['{differs}'\]"):
        s.run()


def test_test_curves_and_jit_compile_of_an_earlier_search_resume(tmp_path):
    # Whether the test set was curved changes what a record stores, not its
    # numbers: a directory written before the option existed (always curved)
    # resumes, and so does one written with it either way.
    first = search(rounds=1, directory=tmp_path, validation_data=VAL, test_data=VAL,
                   test_curves=True).run()
    saved = json.loads((tmp_path / "search.json").read_text())
    del saved["config"]["test_curves"]
    (tmp_path / "search.json").write_text(json.dumps(saved))
    resumed = search(rounds=2, directory=tmp_path, validation_data=VAL, test_data=VAL)
    result = resumed.run()
    assert result.records[:2] == first.records
    assert "test_accuracy" in result.record(1).curves
    assert "test_accuracy" not in result.record(2).curves
    assert result.record(2).early_stop["test_accuracy"] >= 0
    # jit_compile: nothing on JAX (always compiled); elsewhere it changes the
    # numbers, and the message says how to resume a search begun before.
    model = compiled_mlp()
    model.compile(**{k: v for k, v in model.get_compile_config().items()
                     if k in ("optimizer", "loss", "metrics")}, jit_compile=True)
    again = search(model, rounds=2, directory=tmp_path, validation_data=VAL, test_data=VAL)
    if keras.backend.backend() == "jax":
        assert again.run().records == result.records
    else:
        with pytest.raises(ValueError, match=r"jit_compile: (False|'auto') then, True now.*"
                                             r"`--jit-compile (false|auto)`"):
            again.run()


def test_resume_names_what_differs_inside_the_compile_configuration(tmp_path):
    def auc_search():
        keras.utils.set_random_seed(0)
        model, (x, y) = binary_logits()
        return kl.TicketSearch(model, x, y, rounds=1, epochs=1, batch_size=20, verbose=0,
                               directory=tmp_path)

    auc_search().run()
    # Keras numbers the second AUC object afresh: auc_1.
    with pytest.raises(ValueError, match=r"differs at metrics\[1\]\.config\.name: 'auc(_\d+)?' then, 'auc_\d+' now"):
        auc_search().run()


def test_resume_compares_the_layers_not_only_their_shapes(tmp_path):
    search(rounds=1, directory=tmp_path).run()
    model = compiled_mlp()
    tanh = keras.Sequential([keras.Input((12,)), kl.MaskedDense(40, activation="tanh", name="fc1"),
                             keras.layers.Dropout(0.0), *model.layers[2:]], name="mlp")
    tanh.compile(**{k: v for k, v in model.get_compile_config().items()
                    if k in ("optimizer", "loss", "metrics")})
    with pytest.raises(ValueError, match=r"\['architecture'\].*'relu' then, 'tanh' now"):
        search(tanh, rounds=1, directory=tmp_path).run()


def test_an_old_fingerprint_is_refused_by_its_format(tmp_path):
    search(rounds=1, directory=tmp_path).run()
    (tmp_path / "search.json").write_text(json.dumps({"config": {}, "weights": {}}))
    with pytest.raises(ValueError, match="another version of keras-lottery"):
        search(rounds=1, directory=tmp_path).run()


def test_a_refused_run_leaves_the_search_as_it_was():
    s = search(rounds=1, validation_data=VAL)
    s.run()
    with pytest.raises(ValueError, match="Expected `validation_data` the model can be evaluated"):
        s.run(epochs=3, validation_data=(X[:5, :4], Y[:5]))
    assert s.config.fit["epochs"] == 1 and s.validation_data is VAL
    assert len(s.run().records) == 2
    with pytest.raises(ValueError, match="Expected `validation_data` with `monitor`"):
        search(rounds=1, monitor="val_accuracy").run()


def test_callback_log_entries_are_not_recorded_as_metrics():
    lower = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=0)
    record = search(rounds=1, validation_data=VAL, callbacks=[lower]).run().record(0)
    assert set(record.final) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}


def unnamed_mlp():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12,)), kl.MaskedDense(10, activation="relu"),
                              kl.MaskedDense(3, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    return model


def test_a_model_rebuilt_with_automatic_names_resumes(tmp_path):
    first = search(unnamed_mlp(), rounds=2, directory=tmp_path)
    first.run()
    again = search(unnamed_mlp(), rounds=2, directory=tmp_path)  # dense_2, dense_3 now
    assert set(kl.get_masks(again.model)) != set(kl.get_masks(first.model))
    result = again.run()  # Trains nothing: every record is on file.
    assert len(result.records) == 3
    renamed = dict(zip(kl.get_masks(first.model), kl.get_masks(again.model)))
    for r in range(3):
        for old, new in renamed.items():
            np.testing.assert_array_equal(again.masks(r)[new], first.masks(r)[old])
    assert set(result.record(2).layer_densities) == set(renamed.values())


@pytest.mark.slow  # A search killed once at every file write it makes.
def test_result_json_is_consistent_after_a_kill_at_any_write(tmp_path, monkeypatch):
    settings = dict(rounds=1, controls=["random_pruning"])
    full = search(compiled_mlp(), directory=tmp_path / "full", **settings).run()
    original = run_directory.RunDirectory._write
    writes = []
    monkeypatch.setattr(run_directory.RunDirectory, "_write",
                        lambda self, name, write: (writes.append(name), original(self, name, write)))
    search(compiled_mlp(), directory=tmp_path / "count", **settings).run()
    assert len(writes) == 15  # θ0, search, result, model; 2 x (masks, trained, record, result); 3 more.

    for kill_at in range(1, len(writes)):  # Killed right after write number `kill_at`.
        directory = tmp_path / f"kill{kill_at}"
        count = [0]

        def killing(self, name, write, count=count, kill_at=kill_at):
            if count[0] == kill_at:
                raise KeyboardInterrupt
            count[0] += 1
            original(self, name, write)

        monkeypatch.setattr(run_directory.RunDirectory, "_write", killing)
        with pytest.raises(KeyboardInterrupt):
            search(compiled_mlp(), directory=directory, **settings).run()
        monkeypatch.setattr(run_directory.RunDirectory, "_write", original)
        if (directory / "search.json").exists():  # What `keras-lottery report` shows.
            on_file = run_directory.load_result(directory).records
            assert [(r.round, r.kind) for r in on_file] == [
                (r.round, r.kind) for r in full.records[:len(on_file)]], kill_at
        result = search(compiled_mlp(), directory=directory, **settings).run()
        saved = json.loads((directory / "result.json").read_text())
        assert [(r["round"], r["kind"], r["density"]) for r in saved["records"]] == [
            (r.round, r.kind, r.density) for r in full.records], kill_at
        assert run_directory.load_result(directory).records == result.records


# -- one search, one story -----------------------------------------------------


class Trainings(keras.callbacks.Callback):
    count = 0

    def on_train_begin(self, logs=None):
        Trainings.count += 1


def test_run_twice_is_run_once():
    s = search(rounds=2, callbacks=[Trainings()])
    first = s.run()
    before = Trainings.count
    again = s.run()
    assert Trainings.count == before  # Nothing trained again.
    assert again.records == first.records
    with pytest.raises(ValueError, match=r"differs in \['fit'\]"):
        s.run(epochs=3)


def test_a_ticket_trained_in_between_does_not_disturb_the_search(tmp_path):
    settings = dict(rounds=2, directory=tmp_path, seed=3)
    reference = search(compiled_mlp(), rounds=2, seed=3, directory=tmp_path / "reference").run()

    class StopAtRound2(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if len(kl.get_masks(self.model)) and kl.sparsity_report(self.model).density < 0.7:
                raise KeyboardInterrupt

    s = search(compiled_mlp(), callbacks=[StopAtRound2()], **settings)
    with pytest.raises(KeyboardInterrupt):
        s.run()
    model = s.ticket(1)
    model.fit(X, Y, epochs=1, verbose=0)  # The optimizer steps.
    starts = RoundStarts()
    result = s.run(callbacks=[starts])
    assert int(starts.optimizers[0][1]) == 0  # Round 2 began with a fresh optimizer.
    for path, mask in reference_masks(tmp_path / "reference", 2).items():
        np.testing.assert_array_equal(s.masks(2)[path], mask)
    assert [r.density for r in result.records] == [r.density for r in reference.records]


def reference_masks(directory, round_):
    return run_directory.RunDirectory(directory).read_arrays(f"rounds/{round_:03d}_ticket_masks.npz")


def test_an_already_pruned_model_goes_on_down_from_its_density():
    model = compiled_mlp()
    masks = kl.random_prune(kl.get_masks(model), rate=0.5, seed=0)
    kl.apply_masks(model, masks)
    s = search(model, rounds=2)
    result = s.run()
    assert result.record(0).density == pytest.approx(0.5, abs=0.01)
    for r in (1, 2):
        for path, mask in s.masks(r).items():
            rate = 0.1 if path.endswith("out/kernel") else 0.2
            assert abs(mask.sum() - masks[path].sum() * (1 - rate) ** r) <= 1, (r, path)
            assert not (mask & ~masks[path]).any()


def test_progress_is_one_line_per_training(capsys):
    search(rounds=2, verbose=1, controls=["random_reinit"], validation_data=VAL,
           test_data=VAL).run()
    lines = [line for line in capsys.readouterr().out.splitlines() if "[keras-lottery]" in line]
    assert len(lines) == 5
    assert lines[0].startswith("[keras-lottery] round 0 ticket: density 100.00%, early stop")
    assert "accuracy" in lines[0] and "at most 4 trainings left, about" in lines[0]
    assert "left" not in lines[-1]
