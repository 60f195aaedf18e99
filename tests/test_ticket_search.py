"""TicketSearch: exact density ladder, exact rewinds, controls, resume, bad input."""

import json

import keras
import numpy as np
import pytest
from helpers import (
    VAL,
    X,
    Y,
    CallOrderNet,
    RoundStarts,
    assert_rewound,
    compiled_mlp,
    search,
    to_numpy,
)

import keras_lottery as kl
from keras_lottery.search.training import REINIT_OFFSET, seed_for
from keras_lottery.search import state

def test_density_ladder_is_exact_per_layer():
    s = search(rounds=4)
    result = s.run()
    sizes = {"mlp/fc1/kernel": 480, "mlp/fc2/kernel": 800, "mlp/out/kernel": 60}
    for record in result.tickets():
        r = record.round
        masks = s.masks(r, "ticket")
        for path, size in sizes.items():
            rate = 0.1 if path == "mlp/out/kernel" else 0.2
            assert abs(masks[path].sum() - size * (1 - rate) ** r) <= 1, (r, path)
            assert record.layer_densities[path] == masks[path].sum() / size
        assert record.density == pytest.approx(sum(m.sum() for m in masks.values()) / 1340)
    assert [r.round for r in result.tickets()] == [0, 1, 2, 3, 4]


def test_rewind_to_theta0_is_exact_and_masks_only_shrink():
    starts = RoundStarts()
    model = compiled_mlp()
    theta0 = state.snapshot(model)
    s = search(model, rounds=3, callbacks=[starts])
    s.run()
    for r, (start, masks) in enumerate(zip(starts.starts, starts.masks)):
        assert_rewound(start, theta0, masks, f"round {r}")
        if r:
            for path, mask in masks.items():
                assert not (mask & ~starts.masks[r - 1][path]).any()
                assert mask.sum() < starts.masks[r - 1][path].sum()


def test_each_round_gets_a_fresh_optimizer_and_the_step_compiles_once():
    starts = OptimizerStarts()
    model = compiled_mlp()
    builds = []
    original = model.make_train_function

    def counting(force=False):
        if model.train_function is None or force:
            builds.append(1)
        return original(force)

    model.make_train_function = counting
    # The Python body of train_step runs once per trace on TF and JAX.
    traces = []
    train_step = model.train_step

    def counting_step(*args, **kwargs):
        traces.append(1)
        return train_step(*args, **kwargs)

    model.train_step = counting_step
    traces_at_start = []
    marker = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: traces_at_start.append(len(traces)))
    search(model, rounds=2, epochs=2, callbacks=[starts, marker],
           controls=["random_pruning"]).run()
    if keras.backend.backend() != "torch":  # torch runs train_step eagerly, every step
        # Traced during the first training only (TF traces twice on its first call).
        assert 1 <= traces_at_start[1] <= 2 and len(traces) == traces_at_start[1]
    first = starts.states[0]
    assert len(starts.states) == 5
    assert int(first["iteration"]) == 0
    assert first["learning_rate"] == pytest.approx(0.01)
    moments = [p for p in first if p.endswith(("_momentum", "_velocity"))]
    assert len(moments) == 12 and all(not first[p].any() for p in moments)
    for later in starts.states[1:]:
        assert later.keys() == first.keys()
        assert all(np.array_equal(later[p], first[p]) for p in first)
    assert len(builds) == 1  # one trace for the whole search, not one per round


class OptimizerStarts(keras.callbacks.Callback):
    """Records the optimizer's variables as each training begins."""

    def on_train_begin(self, logs=None):
        self.states = getattr(self, "states", [])
        optimizer = self.model.optimizer
        # Keyed without the optimizer's own (per-process numbered) name.
        self.states.append({v.path.split("/", 1)[1]: to_numpy(v) for v in optimizer.variables})


def test_a_trained_model_is_refused_unless_its_weights_are_meant_as_theta0():
    model = compiled_mlp()
    model.fit(X, Y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"untrained model.*taken 7 steps.*initial_weights='current'"):
        search(model, rounds=1)
    pretrained = kl.get_weights(model)
    s = search(model, rounds=1, initial_weights="current")
    assert int(to_numpy(s.model.optimizer.iterations)) == 0  # A fresh optimizer.
    for path, value in pretrained.items():
        np.testing.assert_array_equal(s.theta0[path], value)  # Rewinds to the pretrained weights.


class StateAt(keras.callbacks.Callback):
    def __init__(self, iteration):
        super().__init__()
        self.iteration, self.seen, self.captured = iteration, 0, None

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.iteration and self.captured is None:
            self.captured = state.snapshot(self.model)


def test_late_rewinding_restores_iteration_k():
    probe, starts = StateAt(7), RoundStarts()
    s = search(rewind_step=7, rounds=1, callbacks=[probe, starts])
    s.run()
    theta_k = probe.captured
    round1, masks = starts.starts[1], starts.masks[1]
    for key, value in theta_k.items():
        expected = value * masks[key] if key in masks else value
        np.testing.assert_array_equal(round1[key], expected)
    assert not np.array_equal(theta_k["mlp/fc1/kernel"], s.theta0["mlp/fc1/kernel"])


def test_controls_reinit_and_random_pruning():
    starts = RoundStarts()
    s = search(rounds=1, controls=["random_reinit", "random_pruning"], callbacks=[starts])
    result = s.run()
    assert [(r.round, r.kind) for r in result.records] == [
        (0, "ticket"), (1, "ticket"), (1, "random_reinit"), (1, "random_pruning")]
    ticket_masks = starts.masks[1]
    # Random reinit: the ticket's masks on new weights.
    for path, mask in ticket_masks.items():
        np.testing.assert_array_equal(starts.masks[2][path], mask)
        assert not np.array_equal(starts.starts[2][path], starts.starts[1][path])
        assert np.all(starts.starts[2][path][~mask] == 0)
    fresh = state.fresh_initialization(
        s.model, seed_for(0, 1, "random_reinit") + REINIT_OFFSET)
    np.testing.assert_array_equal(
        starts.starts[2]["mlp/fc1/kernel"],
        fresh["mlp/fc1/kernel"] * ticket_masks["mlp/fc1/kernel"])
    # Random pruning: same per-layer counts, other positions, rewound to θ0.
    for path, mask in ticket_masks.items():
        random_mask = starts.masks[3][path]
        assert random_mask.sum() == mask.sum() and not np.array_equal(random_mask, mask)
        np.testing.assert_array_equal(starts.starts[3][path], s.theta0[path] * random_mask)
    assert result.record(1, "random_pruning").density == result.record(1).density


def test_one_shot_prunes_each_density_from_the_dense_run():
    starts = RoundStarts()
    s = search(one_shot=[0.5, 0.2], callbacks=[starts])
    result = s.run()
    assert [r.round for r in result.tickets()] == [0, 1, 2]
    dense_trained = s._trained(0)
    for i, target in [(1, 0.5), (2, 0.2)]:
        masks = starts.masks[i]
        # The overall density is the target, to within rounding...
        assert abs(sum(m.sum() for m in masks.values()) / 1340 - target) < 3 / 1340
        assert result.record(i).density == pytest.approx(target, abs=3 / 1340)
        # ...and the layers keep the iterative per-kind ratio: 0.8^r and 0.9^r.
        r = np.log(masks["mlp/fc1/kernel"].mean()) / np.log(0.8)
        assert abs(masks["mlp/out/kernel"].sum() - 60 * 0.9 ** r) <= 1
        assert abs(masks["mlp/fc2/kernel"].sum() - 800 * 0.8 ** r) <= 1
        # Pruned by magnitude of the *dense* run's weights.
        kept = np.abs(dense_trained["mlp/fc1/kernel"][masks["mlp/fc1/kernel"]])
        pruned = np.abs(dense_trained["mlp/fc1/kernel"][~masks["mlp/fc1/kernel"]])
        assert kept.min() >= pruned.max()


def test_global_pruning_and_target_density():
    s = search(rounds=6, budget="global", target_density=0.55,
               prune_rates=kl.PruneRates(0.2, by_kind={"output": 0.0}))
    result = s.run()
    densities = [r.density for r in result.tickets()]
    assert densities[-1] <= 0.55 < densities[-2]  # stopped at the target
    masks = s.masks(len(densities) - 1, "ticket")
    assert masks["mlp/out/kernel"].all()  # rate 0 excludes it from the ranking
    chosen = masks["mlp/fc1/kernel"].sum() + masks["mlp/fc2/kernel"].sum()
    assert abs(chosen - 1280 * 0.8 ** (len(densities) - 1)) <= 1


def test_test_set_is_evaluated_at_the_early_stop_and_final_states_only():
    # The same trainings with test curves and without: the test values at the
    # early-stop and final points are the same numbers, measured there only.
    test = (X[60:140], Y[60:140])
    settings = dict(rounds=2, epochs=3, eval_every=3, validation_data=VAL, test_data=test,
                    monitor="val_accuracy")
    curved = search(compiled_mlp(), test_curves=True, **settings).run()
    kept = search(compiled_mlp(), **settings).run()
    not_last = 0
    for a, b in zip(curved.records, kept.records):
        assert not any(k.startswith("test_") for k in b.curves)
        assert {k for k in a.curves if not k.startswith("test_")} == set(b.curves)
        for key in b.curves:
            assert a.curves[key] == b.curves[key], key
        best = int(np.argmax(a.curves["val_accuracy"]))
        not_last += best != len(a.curves["iteration"]) - 1
        for key in ("test_loss", "test_accuracy"):
            assert b.early_stop[key] == a.curves[key][best] == a.early_stop[key]
            assert b.final[key] == a.curves[key][-1] == a.final[key]
    # Equal curves in later rounds also show each round pruned from the final
    # state: the early-stop state evaluated in between was put back.
    assert not_last, "every early stop fell on the last point: the test proves less"


def test_early_stop_tracking_records_curves():
    s = search(rounds=1, epochs=2, eval_every=5, validation_data=VAL, test_data=VAL,
               test_curves=True)
    result = s.run()
    record = result.record(1)
    assert record.iterations == 20
    assert record.curves["iteration"] == [5, 10, 15, 20]
    best = int(np.argmin(record.curves["val_loss"]))
    assert record.early_stop_iteration == record.curves["iteration"][best]
    assert record.early_stop["val_loss"] == min(record.curves["val_loss"])
    assert record.final["val_accuracy"] == record.curves["val_accuracy"][-1]
    # Independent check of the last point against Keras' own evaluate.
    loss, accuracy = s.model.evaluate(*VAL, verbose=0)
    assert record.final["val_loss"] == pytest.approx(loss, rel=1e-4)
    assert record.final["val_accuracy"] == pytest.approx(accuracy)
    assert "train_loss" in record.final


def test_search_result_round_trip():
    result = search(rounds=1, eval_every=5, validation_data=VAL,
                    controls=["random_pruning"]).run()
    again = kl.SearchResult.from_json(result.to_json())
    assert again == result
    lines = result.to_csv().splitlines()
    assert lines[0].split(",")[:5] == ["round", "kind", "density", "iterations", "wall_time"]
    assert len(lines) == 1 + len(result.records)
    assert "early_stop_iteration" in lines[0]
    assert "random_pruning" in result.summary()


def interrupt_at(round_to_stop):
    class Interrupt(keras.callbacks.Callback):
        count = 0

        def on_train_begin(self, logs=None):
            Interrupt.count += 1

        def on_train_batch_end(self, batch, logs=None):
            if Interrupt.count == round_to_stop + 1 and batch == 3:
                raise KeyboardInterrupt

    return Interrupt()


def test_resume_after_interruption_gives_the_uninterrupted_result(tmp_path):
    settings = dict(rounds=3, controls=["random_pruning"], seed=5)
    full = search(compiled_mlp(dropout=0.2), directory=tmp_path / "full", **settings)
    full.run()
    # Stops in the middle of the 4th training (round 2's ticket).
    broken = search(compiled_mlp(dropout=0.2), directory=tmp_path / "cut",
                    callbacks=[interrupt_at(3)], **settings)
    with pytest.raises(KeyboardInterrupt):
        broken.run()
    files = sorted(p.name for p in (tmp_path / "cut" / "rounds").glob("*.json"))
    assert files == ["000_ticket.json", "001_random_pruning.json", "001_ticket.json"]
    resumed = search(compiled_mlp(seed=99, dropout=0.2), directory=tmp_path / "cut", **settings)
    result = resumed.run()
    assert [(r.round, r.kind) for r in result.records] == [
        (r.round, r.kind) for r in kl.SearchResult.from_json(
            (tmp_path / "full" / "result.json").read_text()).records]
    for r in range(4):
        for kind in ["ticket", "random_pruning"] if r else ["ticket"]:
            expected, got = full.masks(r, kind), resumed.masks(r, kind)
            for path in expected:
                np.testing.assert_array_equal(got[path], expected[path], err_msg=f"{r} {kind}")
    for key, value in full.theta0.items():
        np.testing.assert_array_equal(resumed.theta0[key], value)


def test_controls_can_run_later_from_a_saved_search(tmp_path):
    search(rounds=1, directory=tmp_path).run()
    later = search(rounds=1, directory=tmp_path, controls=["random_reinit"])
    result = later.run()
    assert [(r.round, r.kind) for r in result.records] == [
        (0, "ticket"), (1, "ticket"), (1, "random_reinit")]


def test_resume_with_another_configuration_is_an_error(tmp_path):
    search(rounds=1, directory=tmp_path).run()
    with pytest.raises(ValueError, match=r"differs in \['prune_rates'\]"):
        search(rounds=1, directory=tmp_path, prune_rates=0.3).run()
    with pytest.raises(ValueError, match=r"differs in \['fit'\]"):
        search(rounds=1, directory=tmp_path, batch_size=10).run()
    saved = json.loads((tmp_path / "search.json").read_text())
    assert saved["config"]["prune_rates"]["default"] == 0.2


def test_ticket_is_ready_to_train():
    s = search(rounds=1)
    s.run()
    model = s.ticket(1)
    masks = s.masks(1, "ticket")
    for path, mask in kl.get_masks(model).items():
        np.testing.assert_array_equal(mask, masks[path])
        np.testing.assert_array_equal(kl.get_weights(model)[path], s.theta0[path] * mask)
    model.fit(X, Y, epochs=1, verbose=0)
    assert all(np.all(kl.get_weights(model)[p][~m] == 0) for p, m in masks.items())


def test_plain_keras_model_is_converted():
    plain = keras.Sequential([keras.Input((12,)), keras.layers.Dense(8, name="h"),
                              keras.layers.Dense(3, activation="softmax", name="o")])
    plain.compile("sgd", "sparse_categorical_crossentropy")
    s = kl.TicketSearch(plain, X, Y, rounds=1, epochs=1, verbose=0)
    assert isinstance(s.model.get_layer("h"), kl.MaskedDense)
    assert s.run().record(1).density < 1


def test_search_over_a_subclassed_model():
    keras.utils.set_random_seed(0)
    model = CallOrderNet(name="net")
    model(X[:1])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    infos = kl.weight_infos(model)
    # The output layer is the one called last, though defined first.
    assert infos["net/head/kernel"].is_output and not infos["net/body/kernel"].is_output
    starts = RoundStarts()
    s = search(model, rounds=2, controls=["random_reinit"], callbacks=[starts],
               validation_data=VAL)
    result = s.run()
    assert [(r.round, r.kind) for r in result.records] == [
        (0, "ticket"), (1, "ticket"), (1, "random_reinit"), (2, "ticket"), (2, "random_reinit")]
    masks = s.masks(2, "ticket")
    assert masks["net/head/kernel"].sum() == round(48 * 0.9 ** 2)  # The output layer's rate.
    assert masks["net/body/kernel"].sum() == round(192 * 0.8 ** 2)
    for i in (0, 1, 3):  # The ticket rounds' trainings.
        assert_rewound(starts.starts[i], s.theta0, starts.masks[i], f"training {i}")
    stored = kl.get_weights(s.model)
    for path, mask in masks.items():
        assert np.all(stored[path][~mask] == 0)


def test_an_output_layer_that_cannot_be_found_must_be_named():
    model = CallOrderNet(name="net")
    model.body.build((None, 12))
    model.head.build((None, 16))  # Built without a call: no call order to read.
    assert all(info.is_output is None for info in kl.weight_infos(model).values())
    with pytest.raises(ValueError, match=r"output layer is unknown.*by_layer=\{name: rate\}"):
        kl.rates_for(model, kl.PruneRates(0.2, by_kind={"output": 0.1}))
    rates = kl.rates_for(model, kl.PruneRates(0.2, by_kind={"output": 0.1}, by_layer={"head": 0.1}))
    assert rates == {"head/kernel": 0.1, "body/kernel": 0.2}  # Built outside the model.


TOKENS = np.random.default_rng(12).integers(0, 16, size=(64, 8)).astype("int32")
TOKEN_LABELS = (TOKENS[:, 0] < 8).astype("int32")
SEQUENCE_MODELS = {
    "causal_transformer": lambda: kl.models.causal_transformer(
        vocab_size=16, sequence_length=8, embed_dim=8, num_heads=2, ff_dim=16),
    "lstm_classifier": lambda: kl.models.lstm_classifier(
        vocab_size=16, sequence_length=8, embed_dim=8, units=8),
}


@pytest.mark.parametrize("name", sorted(SEQUENCE_MODELS))
def test_search_over_attention_and_recurrent_models(name):
    """Exact zeros, exact rewinds and the per-kind ladder on real sequence shapes."""
    keras.utils.set_random_seed(0)
    model = SEQUENCE_MODELS[name]()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    starts = RoundStarts()
    s = kl.TicketSearch(model, TOKENS, TOKEN_LABELS, rounds=2, epochs=1, batch_size=16,
                        verbose=0, callbacks=[starts], controls=["random_reinit"])
    s.run()
    infos = kl.weight_infos(s.model)
    kinds = {info.kind for info in infos.values()}
    assert kinds == ({"embedding", "attention", "dense"} if name == "causal_transformer"
                     else {"embedding", "recurrent_input", "recurrent", "dense"})
    assert [p for p, info in infos.items() if info.is_output] == ["output/kernel"]
    for reinit, ticket in ((2, 1), (4, 3)):  # Trainings: 0, 1, 1 reinit, 2, 2 reinit.
        for path, mask in starts.masks[ticket].items():
            np.testing.assert_array_equal(starts.masks[reinit][path], mask)
            assert not np.array_equal(starts.starts[reinit][path], s.theta0[path] * mask)
            assert np.all(starts.starts[reinit][path][~mask] == 0)
    for r, i in enumerate((0, 1, 3)):
        start, masks = starts.starts[i], starts.masks[i]
        assert_rewound(start, s.theta0, masks, f"round {r}")
        for path, mask in masks.items():
            rate = 0.1 if path == "output/kernel" else 0.2
            assert abs(mask.sum() - mask.size * (1 - rate) ** r) <= 1, (r, path)
    stored = kl.get_weights(s.model)
    for path, mask in starts.masks[-1].items():
        assert np.all(stored[path][~mask] == 0), path
        assert np.count_nonzero(stored[path][mask]) == mask.sum(), path


class Batches(keras.utils.PyDataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return X[i * 20 : (i + 1) * 20], Y[i * 20 : (i + 1) * 20]


def test_pydataset_input_and_dataset_validation():
    s = kl.TicketSearch(compiled_mlp(), rounds=1, epochs=1, verbose=0,
                        eval_every=5, validation_data=Batches())
    result = s.run(Batches())
    assert result.record(1).iterations == 10
    assert result.record(1).curves["iteration"] == [5, 10]


def test_rewind_step_must_end_an_execution():
    if keras.backend.backend() == "torch":
        pytest.skip("Keras' torch trainer runs one step per execution")
    model = compiled_mlp()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  steps_per_execution=4)
    # 7 steps an epoch: executions end at 4, 7, 11, 14.
    with pytest.raises(ValueError, match=r"nearest are \[7, 11\]|nearest are \[11, 7\]"):
        search(model, rounds=1, epochs=2, batch_size=30, rewind_step=8).run()
    s = search(model, rounds=1, epochs=2, batch_size=30, rewind_step=11)
    s.run()
    assert s.rewind_state is not s.theta0


def test_seeded_initializers_make_random_reinit_fail_at_once():
    keras.utils.set_random_seed(0)
    seeded = keras.Sequential([keras.Input((12,)), kl.MaskedDense(
        3, kernel_initializer=keras.initializers.GlorotNormal(seed=1))])
    seeded.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="initializers have fixed seeds"):
        kl.TicketSearch(seeded, X, Y, controls=["random_reinit"])


def test_run_takes_verbose_and_fit_settings():
    s = search(rounds=1, verbose=1)
    result = s.run(verbose=0, epochs=2)
    assert s.verbose == 0 and result.record(1).iterations == 20


def test_bad_models_and_missing_data_fail_before_training():
    with pytest.raises(ValueError, match="Expected a built model"):
        kl.TicketSearch(keras.Sequential([kl.MaskedDense(3)]))
    uncompiled = keras.Sequential([keras.Input((4,)), kl.MaskedDense(3)])
    with pytest.raises(ValueError, match="Expected a compiled model"):
        kl.TicketSearch(uncompiled)
    no_prunable = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    no_prunable.compile("sgd", "mse")
    with pytest.raises(ValueError, match="Expected a model with prunable layers"):
        kl.TicketSearch(no_prunable)
    with pytest.raises(ValueError, match="Expected `validation_data` with `eval_every`"):
        kl.TicketSearch(compiled_mlp(), X, Y, eval_every=10, verbose=0).run()
    with pytest.raises(ValueError, match="Expected training data"):
        kl.TicketSearch(compiled_mlp(), verbose=0).run()


def tf_dataset():
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((X, Y)).batch(20)


def torch_loader():
    import torch

    data = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y.astype("int64")))
    return torch.utils.data.DataLoader(data, batch_size=20)


@pytest.mark.parametrize("make", [tf_dataset, torch_loader], ids=["tf_data", "torch_dataloader"])
def test_datasets_train_and_validate_as_in_fit(make):
    s = kl.TicketSearch(compiled_mlp(), make(), rounds=1, epochs=1, verbose=0, shuffle=False,
                        eval_every=5, validation_data=make(), test_data=make())
    result = s.run()
    record = result.record(1)
    assert record.iterations == 10 and record.curves["iteration"] == [5, 10]
    loss, accuracy = s.model.evaluate(X, Y, verbose=0)
    assert record.final["test_accuracy"] == pytest.approx(accuracy)
    assert record.final["test_loss"] == pytest.approx(loss, rel=1e-4)


def test_iterations_are_counted_exactly_with_steps_per_execution():
    if keras.backend.backend() == "torch":
        pytest.skip("Keras' torch trainer runs one step per execution")
    model = compiled_mlp()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  steps_per_execution=4)
    # 200 examples at batch 30: 7 steps an epoch, the last execution holds 3.
    s = search(model, rounds=1, epochs=2, batch_size=30, eval_every=4, validation_data=VAL)
    record = s.run().record(1)
    assert record.iterations == 14
    # Evaluated at the end of the execution in which a multiple of 4 passed:
    # 4, then 11 (8 passed at 8..11), then 14 (12 passed) and the end.
    assert record.curves["iteration"] == [4, 11, 14]
