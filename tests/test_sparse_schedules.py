"""Pruning schedules with tfmot's meaning, and the pure functions of dynamic sparse
training (drop, grow, cosine decay, random masks)."""

import math

import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.pruning import dynamic, planning, rules


def _tfmot_prunes(step, begin, end, frequency):
    # tfmot's rule, written out: in range and on the frequency grid.
    return step >= begin and (end == -1 or step <= end) and (step - begin) % frequency == 0


def test_polynomial_decay_gives_zhu_and_gupta_sparsity_at_every_step():
    schedule = kl.PolynomialDecay(0.2, 0.8, begin_step=100, end_step=1100, frequency=50)
    for step in range(0, 1400, 7):
        fraction = min(1.0, max(0.0, (step - 100) / 1000))
        expected = 0.8 + (0.2 - 0.8) * (1 - fraction) ** 3
        assert schedule.sparsity(step) == pytest.approx(expected, abs=1e-12)
        assert schedule.prunes_at(step) == _tfmot_prunes(step, 100, 1100, 50)
    assert schedule(100) == (True, pytest.approx(0.2))
    assert schedule(1100) == (True, pytest.approx(0.8))
    assert schedule(1150) == (False, pytest.approx(0.8))  # After end_step: held, no update.
    assert kl.PolynomialDecay(0, 0.5, 0, 10, power=1).sparsity(5) == pytest.approx(0.25)


def test_constant_sparsity_prunes_on_its_grid_to_the_end():
    schedule = kl.ConstantSparsity(0.9, begin_step=30, frequency=20)
    due = [t for t in range(200) if schedule.prunes_at(t)]
    assert due == list(range(30, 200, 20))
    assert all(schedule.sparsity(t) == 0.9 for t in range(200))
    bounded = kl.ConstantSparsity(0.5, begin_step=0, end_step=45, frequency=10)
    assert [t for t in range(100) if bounded.prunes_at(t)] == [0, 10, 20, 30, 40]
    assert bounded.last_pruning_step(1000) == 40 and schedule.last_pruning_step(100) == 90
    assert schedule.last_pruning_step(30) is None


def test_a_schedule_ported_from_tfmot_defines_call_only():
    class Halfway(kl.PruningSchedule):  # tfmot's contract: __call__ -> (prunes, sparsity).
        def __call__(self, step):
            return step % 10 == 0, 0.5

    schedule = Halfway(0, 100, 10)
    assert schedule.final_sparsity == 0.5
    with pytest.raises(NotImplementedError, match="define `sparsity\\(step\\)`, or `__call__"):
        kl.PruningSchedule(0, 10, 1).sparsity(3)


def test_schedules_round_trip_through_their_config():
    for schedule in (kl.ConstantSparsity(0.7, 5, 50, 5),
                     kl.PolynomialDecay(0.1, 0.9, 10, 90, power=2, frequency=10)):
        again = type(schedule).from_config(schedule.get_config())
        assert [again(t) for t in range(100)] == [schedule(t) for t in range(100)]


@pytest.mark.parametrize("make, message", [
    (lambda: kl.PolynomialDecay(0.1, 0.9, 100, 50), "Expected `end_step` >= `begin_step` (100)"),
    (lambda: kl.ConstantSparsity(0.5, 100, 50), "Expected `end_step` >= `begin_step` (100)"),
    (lambda: kl.PolynomialDecay(0.1, 1.0, 0, 50), "Expected `final_sparsity` in [0, 1)"),
    (lambda: kl.ConstantSparsity(-0.1), "Expected `target_sparsity` in [0, 1)"),
    (lambda: kl.ConstantSparsity(0.5, frequency=0), "Expected `frequency` an integer >= 1"),
    (lambda: kl.PolynomialDecay(0.1, 0.5, 0, -1), "Expected `end_step` an integer >= 0"),
    (lambda: kl.ConstantSparsity(0.5, begin_step=-2), "Expected `begin_step` an integer >= 0"),
])
def test_bad_schedules_are_refused_naming_the_argument(make, message):
    with pytest.raises(ValueError) as raised:
        make()
    assert message in str(raised.value) and "Received" in str(raised.value)


def test_lowest_is_a_stable_argsort_prefix():
    rng = np.random.default_rng(0)
    for _ in range(50):
        values = rng.integers(0, 5, size=rng.integers(1, 40)).astype(float)  # Many ties.
        count = int(rng.integers(0, values.size + 1))
        expected = set(np.argsort(values, kind="stable")[:count].tolist())
        assert set(rules.lowest(values, count).tolist()) == expected


def test_drop_and_grow_keeps_every_layer_count_and_follows_the_scores():
    rng = np.random.default_rng(1)
    weights = {"a": rng.normal(size=(20, 10)), "b": rng.normal(size=(30,))}
    masks = {"a": rng.random((20, 10)) < 0.3, "b": rng.random(30) < 0.5}
    scores = {p: rng.random(w.shape) for p, w in weights.items()}
    new, grown = dynamic.drop_and_grow(weights, masks, 0.3, scores)
    for path in weights:
        live = np.flatnonzero(masks[path])
        count = rules.prune_count(live.size, 0.3)
        assert new[path].sum() == masks[path].sum()  # Exactly constant.
        magnitude = np.abs(weights[path]).ravel()
        dropped = live[np.argsort(magnitude[live], kind="stable")[:count]]
        after = masks[path].ravel().copy()
        after[dropped] = False
        free = np.flatnonzero(~after)
        best = free[np.argsort(-scores[path].ravel()[free], kind="stable")[:count]]
        after[best] = True
        assert (new[path].ravel() == after).all()
        # Grown: the new live weights; one dropped and grown back is not (it keeps its value).
        newly = set(best.tolist()) - set(live.tolist())
        assert set(np.flatnonzero(grown[path]).tolist()) == newly


def test_a_weight_dropped_and_grown_back_keeps_its_value():
    weights = {"a": np.array([0.1, 0.2, 5.0, 0.0])}
    masks = {"a": np.array([True, True, True, False])}
    scores = {"a": np.array([9.0, 0.0, 0.0, 1.0])}  # The dropped 0.1 scores highest.
    new, grown = dynamic.drop_and_grow(weights, masks, 0.34, scores)  # Drops one.
    assert new["a"].tolist() == [True, True, True, False] and not grown["a"].any()


def test_cosine_drop_fraction_and_random_masks():
    assert dynamic.cosine_fraction(0.3, 0, 0, 100) == pytest.approx(0.3)
    assert dynamic.cosine_fraction(0.3, 50, 0, 100) == pytest.approx(0.15)
    assert dynamic.cosine_fraction(0.3, 25, 0, 100) == pytest.approx(
        0.15 * (1 + math.cos(math.pi / 4)))
    assert dynamic.cosine_fraction(0.3, 100, 0, 100) == 0.0
    masks = dynamic.random_sparse_masks({"a": (10, 10), "b": (7,)}, {"a": 0.25, "b": 0.01}, 3)
    assert masks["a"].sum() == 25 and masks["b"].sum() == 1  # At least one live weight.
    again = dynamic.random_sparse_masks({"b": (7,), "a": (10, 10)}, {"a": 0.25, "b": 0.01}, 3)
    assert all((masks[p] == again[p]).all() for p in masks)


def test_pruned_to_budgets_never_grow_and_hit_the_counts():
    rng = np.random.default_rng(2)
    scores = {"a": rng.random((50, 20)), "b": rng.random((20, 5))}
    masks = {p: np.ones(s.shape, bool) for p, s in scores.items()}
    uniform = planning.pruned_to(scores, masks, 0.1)
    assert uniform["a"].sum() == 100 and uniform["b"].sum() == 10
    overall = planning.pruned_to(scores, masks, 0.1, "global")
    assert sum(m.sum() for m in overall.values()) == 110
    erk = planning.pruned_to(scores, masks, 0.1, "erk")
    expected = rules.erk_densities({"a": (50, 20), "b": (20, 5)}, 0.1)
    for path in masks:
        assert erk[path].sum() == rules.keep_count(masks[path].size, expected[path])
    only_a = planning.pruned_to(scores, masks, 0.5, chosen=["a"])
    assert only_a["a"].sum() == 500 and only_a["b"].all()
    again = planning.pruned_to(scores, uniform, 0.5)  # Denser target: nothing grows back.
    assert all((again[p] == uniform[p]).all() for p in masks)
