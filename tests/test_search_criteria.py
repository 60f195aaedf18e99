"""The search with other criteria, budgets and ablation controls, and pruning at initialization."""

import keras
import numpy as np
import pytest
from helpers import X, Y, RoundStarts, assert_rewound, compiled_mlp, search

import keras_lottery as kl
from keras_lottery.pruning import criteria, planning, rules as pruning, saliency
from keras_lottery.search import state


class RoundEnds(keras.callbacks.Callback):
    """Records each training's trained prunable weights."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_train_end(self, logs=None):
        self.weights.append(kl.get_weights(self.model))


def logits_mlp(seed=0):
    """The test MLP with a linear output layer, for SynFlow's |w| network."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((12,)), kl.MaskedDense(40, activation="relu", name="fc1"),
        kl.MaskedDense(20, activation="relu", name="fc2"), kl.MaskedDense(3, name="out"),
    ], name="mlp")
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


@pytest.mark.parametrize("name", ["large_init", "magnitude_increase", "movement"])
def test_iterative_rounds_prune_by_the_criterion(name):
    ends = RoundEnds()
    model = compiled_mlp()
    theta0 = {p: w for p, w in state.snapshot(model).items() if p in kl.get_masks(model)}
    s = search(model, rounds=2, criterion=name, callbacks=[ends])
    s.run()
    start = planning.densities(s.initial_masks)
    previous = s.masks(0)
    for r in (1, 2):
        scores = criteria.after_training_scores(name, ends.weights[r - 1], theta0)
        expected = planning.iterative_masks(previous, scores, s.rates, start, r)
        for path in expected:
            np.testing.assert_array_equal(s.masks(r)[path], expected[path])
        previous = expected
    # Not the paper's masks: the criterion made a difference.
    large_final = planning.iterative_masks(s.masks(0), criteria.large_final(ends.weights[0]),
                                           s.rates, start, 1)
    assert any(not np.array_equal(s.masks(1)[p], large_final[p]) for p in large_final)


@pytest.mark.parametrize("name", ["snip", "grasp", "synflow"])
def test_pruning_at_initialization_scores_theta0(name):
    starts = RoundStarts()
    model = logits_mlp()
    theta0 = state.snapshot(model)
    criterion = criteria.Criterion(name, examples=50, iterations=3)
    s = search(model, one_shot=[0.5, 0.1], criterion=criterion, budget="global",
               prune_rates=0.2, callbacks=[starts])
    result = s.run()
    reference = logits_mlp()  # θ0 again, untrained
    for r, density in ((1, 0.5), (2, 0.1)):
        expected = saliency.prune_at_initialization(reference, criterion, density, s.rates,
                                                    (X, Y), "global")
        for path in expected:
            np.testing.assert_array_equal(s.masks(r)[path], expected[path])
        kept = sum(int(m.sum()) for m in expected.values())
        assert kept == pruning.keep_count(1340, density)
        assert result.record(r).density == pytest.approx(kept / 1340)
        # Trained from θ0, pruned weights zero.
        assert_rewound(starts.starts[r], theta0, s.masks(r), f"round {r}")


def test_ablation_controls_train_like_the_ticket():
    starts = RoundStarts()
    model = logits_mlp()
    s = search(model, one_shot=[0.3], criterion="snip", budget="global", prune_rates=0.2,
               controls=["random_pruning", "inverted", "signed_constant", "random_reinit"],
               callbacks=[starts])
    result = s.run()
    ticket = s.masks(1)
    # Shuffled within each layer: the same count per layer, other positions.
    shuffled = s.masks(1, "random_pruning")
    for path in ticket:
        assert shuffled[path].sum() == ticket[path].sum()
    assert any(not np.array_equal(shuffled[p], ticket[p]) for p in ticket)
    # Inverted: the same budget, the highest scores pruned.
    expected = saliency.prune_at_initialization(logits_mlp(), "snip", 0.3, s.rates, (X, Y),
                                                "global", invert=True)
    for path in ticket:
        np.testing.assert_array_equal(s.masks(1, "inverted")[path], expected[path])
    # Signed constant: the ticket's masks, ±std of the layer's θ0 where kept.
    kinds = [r.kind for r in result.records]
    begin = starts.starts[kinds.index("signed_constant")]
    for path, mask in ticket.items():
        std = s.theta0[path].std()
        np.testing.assert_allclose(np.abs(begin[path][mask]), std, rtol=1e-6)
        np.testing.assert_array_equal(np.sign(begin[path]), np.sign(s.theta0[path]) * mask)
        np.testing.assert_array_equal(s.masks(1, "signed_constant")[path], mask)
    assert len({r.iterations for r in result.records}) == 1


def test_the_inverted_control_iterates_down_its_own_ladder():
    ends = RoundEnds()
    s = search(rounds=2, controls=["inverted"], callbacks=[ends])
    result = s.run()
    assert [(r.round, r.kind) for r in result.records] == [
        (0, "ticket"), (1, "ticket"), (1, "inverted"), (2, "ticket"), (2, "inverted")]
    start = planning.densities(s.initial_masks)
    # Round 1: the dense weights, the smallest magnitudes kept.
    first = planning.iterative_masks(s.masks(0), criteria.inverted(
        criteria.large_final(ends.weights[0])), s.rates, start, 1)
    # Round 2: from its own round-1 masks and trained weights (the 3rd training).
    second = planning.iterative_masks(first, criteria.inverted(
        criteria.large_final(ends.weights[2])), s.rates, start, 2)
    for path in first:
        np.testing.assert_array_equal(s.masks(1, "inverted")[path], first[path])
        np.testing.assert_array_equal(s.masks(2, "inverted")[path], second[path])
    assert result.record(2, "inverted").density == pytest.approx(result.record(2).density)
    assert any((s.masks(2, "inverted")[p] & ~s.masks(1)[p]).any() for p in first)


class Batches(keras.utils.PyDataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        return X[20 * index: 20 * index + 20], Y[20 * index: 20 * index + 20]


def test_snip_scores_the_first_batch_of_a_dataset():
    model = logits_mlp()
    s = kl.TicketSearch(model, Batches(), one_shot=[0.4], criterion="snip", epochs=1,
                        verbose=0, prune_rates=0.2, budget="global")
    s.run()
    expected = saliency.prune_at_initialization(logits_mlp(), "snip", 0.4, s.rates,
                                                (X[:20], Y[:20]), "global")
    for path, mask in expected.items():
        np.testing.assert_array_equal(s.masks(1)[path], mask)


def test_seeds_of_earlier_kinds_are_unchanged():
    from keras_lottery.search.training import seed_for

    assert [seed_for(0, 1, k) for k in ("ticket", "random_reinit", "random_pruning")] == [3, 4, 5]
    assert seed_for(2, 4, "random_pruning") == 2 * 7919 + 12 + 2
    later = {seed_for(s, r, k) for s in range(3) for r in range(20)
             for k in kl.results.RECORD_KINDS}
    assert len(later) == 3 * 20 * len(kl.results.RECORD_KINDS)


def test_erk_budget_in_the_search():
    s = search(rounds=2, budget="erk", prune_rates=0.2)
    result = s.run()
    shapes = {p: m.shape for p, m in s.masks(0).items()}
    for r in (1, 2):
        erk = pruning.erk_densities(shapes, 0.8 ** r)
        for path, density in result.record(r).layer_densities.items():
            assert density == pytest.approx(erk[path], abs=1 / np.prod(shapes[path]))
    # Denser small layers: the 3-unit output keeps more than the 40x20 layer.
    densities = result.record(2).layer_densities
    assert densities["mlp/out/kernel"] > densities["mlp/fc2/kernel"]


def test_same_seed_same_random_criterion_masks():
    first = search(rounds=1, criterion="random", seed=4)
    first.run()
    again = search(rounds=1, criterion="random", seed=4)
    again.run()
    other = search(rounds=1, criterion="random", seed=5)
    other.run()
    for path, mask in first.masks(1).items():
        np.testing.assert_array_equal(again.masks(1)[path], mask)
    assert any(not np.array_equal(other.masks(1)[p], m) for p, m in first.masks(1).items())


def test_a_config_saved_before_criteria_resumes(tmp_path):
    from keras_lottery.search import resume

    s = search(rounds=1, directory=tmp_path, budget="global", prune_rates=0.2)
    s.run()
    saved = resume.json_roundtrip(__import__("json").loads((tmp_path / "search.json").read_text()))
    current = dict(saved)
    old = {k: v for k, v in saved["config"].items() if k not in ("budget", "criterion")}
    assert resume.differences({**saved, "config": {**old, "global_pruning": True}}, current) == []
    assert resume.differences({**saved, "config": {**old, "global_pruning": False}},
                              current) == ["budget"]


def test_resume_refuses_another_criterion(tmp_path):
    search(rounds=1, directory=tmp_path).run()
    with pytest.raises(ValueError, match=r"differs in \['criterion'\]"):
        search(rounds=1, directory=tmp_path, criterion="movement").run()
