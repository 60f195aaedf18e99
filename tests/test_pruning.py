"""Pure pruning functions: exact counts, monotone masks, ties, rates, bad input."""

import numpy as np
import pytest

from keras_lottery.pruning import rules as pruning
from keras_lottery.pruning.rules import PruneRates, WeightInfo

RNG = np.random.default_rng(7)


def weights(**shapes):
    return {path: RNG.normal(size=shape) for path, shape in shapes.items()}


@pytest.mark.parametrize(
    "remaining, rate, expected",
    [(10, 0.2, 2), (5, 0.3, 2), (5, 0.1, 1), (4, 0.1, 0), (10, 0.25, 3),
     (3, 0.5, 2), (1, 0.49, 0), (1, 0.5, 1), (0, 0.5, 0), (266_200, 0.2, 53_240), (7, 0.0, 0)],
)
def test_prune_count_rounds_half_up(remaining, rate, expected):
    assert pruning.prune_count(remaining, rate) == expected


def test_magnitude_prune_removes_the_smallest_per_layer():
    w = {"a": np.array([[0.5, -3.0], [0.1, 2.0]]), "b": np.array([-1.0, 4.0, 0.2, -0.3, 5.0])}
    masks = pruning.magnitude_prune(w, rate=0.5)
    np.testing.assert_array_equal(masks["a"], [[False, True], [False, True]])
    # 0.5 * 5 = 2.5 rounds up to 3: 0.2, -0.3 and -1.0 go.
    np.testing.assert_array_equal(masks["b"], [False, True, False, False, True])
    assert all(mask.dtype == bool for mask in masks.values())


def test_iterative_masks_only_shrink_with_exact_counts():
    w = weights(fc1=(30, 20), fc2=(20, 10), out=(10, 3))
    rates = {"fc1": 0.2, "fc2": 0.2, "out": 0.1}
    masks = {path: np.ones(value.shape, bool) for path, value in w.items()}
    for _ in range(6):
        # Fresh "trained" weights each round, as after retraining.
        w = {path: RNG.normal(size=value.shape) for path, value in w.items()}
        new = pruning.magnitude_prune(w, masks, rates)
        for path in w:
            remaining = int(masks[path].sum())
            assert not (new[path] & ~masks[path]).any(), "a pruned weight came back"
            assert new[path].sum() == remaining - pruning.prune_count(remaining, rates[path])
        masks = new


def test_pruned_weights_are_never_ranked_again():
    w = {"a": np.array([0.0, 0.0, 5.0, 6.0, 7.0])}
    masks = {"a": np.array([1, 0, 1, 1, 1])}
    new = pruning.magnitude_prune(w, masks, rate=0.5)
    np.testing.assert_array_equal(new["a"], [False, False, False, True, True])


def test_ties_break_by_position():
    w = {"a": np.ones((2, 3))}
    new = pruning.magnitude_prune(w, rate=0.5)
    np.testing.assert_array_equal(new["a"], [[False, False, False], [True, True, True]])
    w = {"b": np.ones(2), "a": np.ones(2)}
    new = pruning.global_magnitude_prune(w, rate=0.5)
    np.testing.assert_array_equal(new["a"], [False, False])
    np.testing.assert_array_equal(new["b"], [True, True])
    assert list(new) == ["b", "a"]


def test_global_prunes_across_layers_where_layerwise_does_not():
    w = {"small": np.full(10, 0.01) + np.arange(10) * 1e-4, "large": np.arange(1.0, 11.0)}
    layerwise = pruning.magnitude_prune(w, rate=0.5)
    glob = pruning.global_magnitude_prune(w, rate=0.5)
    assert layerwise["small"].sum() == 5 and layerwise["large"].sum() == 5
    assert glob["small"].sum() == 0 and glob["large"].sum() == 10
    # The global count is exact over all remaining weights.
    w = weights(a=(7, 3), b=(11,))
    masks = pruning.magnitude_prune(w, rate=0.3)
    remaining = sum(m.sum() for m in masks.values())
    new = pruning.global_magnitude_prune(w, masks, rate=0.3)
    assert sum(m.sum() for m in new.values()) == remaining - pruning.prune_count(remaining, 0.3)
    assert all(not (new[p] & ~masks[p]).any() for p in w)


def test_global_keeps_exactly_the_largest_magnitudes():
    w = weights(a=(8, 5), b=(13,), c=(2, 2, 3))
    new = pruning.global_magnitude_prune(w, rate=0.6)
    everything = np.concatenate([np.abs(v).ravel() for v in w.values()])
    kept = np.concatenate([np.abs(w[p][new[p]]) for p in w])
    assert kept.size == everything.size - pruning.prune_count(everything.size, 0.6)
    np.testing.assert_array_equal(np.sort(kept), np.sort(everything)[-kept.size:])


def test_random_prune_matches_magnitude_counts_and_is_seeded():
    w = weights(a=(20, 10), b=(15,))
    masks = pruning.magnitude_prune(w, rate=0.2)
    rates = {"a": 0.2, "b": 0.5}
    magnitude = pruning.magnitude_prune(w, masks, rates)
    random = pruning.random_prune(masks, rates, seed=3)
    for path in w:
        assert random[path].sum() == magnitude[path].sum()
        assert not (random[path] & ~masks[path]).any()
    again = pruning.random_prune(masks, rates, seed=3)
    other = pruning.random_prune(masks, rates, seed=4)
    assert all(np.array_equal(random[p], again[p]) for p in w)
    assert not all(np.array_equal(random[p], other[p]) for p in w)


def test_random_masks_like_keeps_per_layer_counts_only():
    w = weights(a=(30, 10), b=(40,))
    masks = pruning.magnitude_prune(w, rate=0.7)
    control = pruning.random_masks_like(masks, seed=0)
    for path in w:
        assert control[path].sum() == masks[path].sum()
        assert control[path].shape == masks[path].shape
    assert not np.array_equal(control["a"], masks["a"])
    again = pruning.random_masks_like(masks, seed=0)
    assert all(np.array_equal(control[p], again[p]) for p in w)


def test_density():
    assert pruning.density({"a": np.array([1, 0, 0, 0]), "b": np.ones(4)}) == 5 / 8
    assert pruning.density({}) == 1.0


def test_prune_rates_precedence():
    infos = {
        "conv/kernel": WeightInfo("conv", "conv"),
        "fc/kernel": WeightInfo("fc", "dense"),
        "out/kernel": WeightInfo("out", "dense", is_output=True),
        "emb/embeddings": WeightInfo("emb", "embedding"),
        "special/kernel": WeightInfo("special", "dense", is_output=True),
    }
    rates = PruneRates(
        0.2, by_kind={"conv": 0.15, "output": 0.1}, by_layer={"special": 0.0}
    ).resolve(infos)
    assert rates == {
        "conv/kernel": 0.15,
        "fc/kernel": 0.2,
        "out/kernel": 0.1,
        "emb/embeddings": 0.2,
        "special/kernel": 0.0,
    }


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan"), "0.2", None, True])
def test_rate_outside_unit_interval_is_rejected(rate):
    w = weights(a=(4,))
    with pytest.raises(ValueError,
                       match=r"Expected `rate` (a finite number )?in \[0, 1\). Received: rate="):
        pruning.magnitude_prune(w, rate=rate)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        pruning.global_magnitude_prune(w, rate=rate)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        pruning.random_prune({"a": np.ones(4)}, rate=rate)


def test_bad_rates_in_rules_are_rejected():
    with pytest.raises(ValueError, match=r"Expected `rate\['b'\]` in \[0, 1\)"):
        pruning.magnitude_prune(weights(a=(4,), b=(3,)), rate={"a": 0.1, "b": 1.0})
    with pytest.raises(ValueError, match=r"Received none for \['b'\]"):
        pruning.magnitude_prune(weights(a=(4,), b=(3,)), rate={"a": 0.1})
    with pytest.raises(ValueError, match=r"by_kind\['conv'\]"):
        PruneRates(0.2, by_kind={"conv": 2.0})
    with pytest.raises(ValueError, match=r"Expected `by_kind` keys in .*Received: 'lstm'"):
        PruneRates(0.2, by_kind={"lstm": 0.1})
    with pytest.raises(ValueError, match=r"Expected `default` in \[0, 1\)"):
        PruneRates(1.0)
    with pytest.raises(ValueError, match=r"Received unknown names: \['nope'\]"):
        PruneRates(by_layer={"nope": 0.1}).resolve({"a/kernel": WeightInfo("a", "dense")})


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"masks\['a'\] to have the shape .*\(4,\).*\(5,\)"):
        pruning.magnitude_prune(weights(a=(4,)), {"a": np.ones(5)})


def test_mismatched_keys_are_rejected():
    with pytest.raises(ValueError, match=r"missing masks for \['b'\]"):
        pruning.magnitude_prune(weights(a=(4,), b=(2,)), {"a": np.ones(4)})


@pytest.mark.parametrize("bad", [np.array([0, 1, 2, 1]), np.array([0.5, 1, 1, 1]), np.array([-1, 1, 0, 1])])
def test_non_binary_mask_is_rejected(bad):
    with pytest.raises(ValueError, match=r"Expected binary masks .*masks\['a'\]"):
        pruning.magnitude_prune(weights(a=(4,)), {"a": bad})
    with pytest.raises(ValueError, match="Expected binary masks"):
        pruning.random_masks_like({"a": bad})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_rejected(bad):
    w = {"a": np.array([1.0, bad, 2.0])}
    with pytest.raises(ValueError, match=r"Expected finite weights. Received weights\['a'\] with 1 NaN"):
        pruning.magnitude_prune(w)
    with pytest.raises(ValueError, match="Expected finite weights"):
        pruning.global_magnitude_prune(w)


def test_empty_or_wrong_type_is_rejected():
    with pytest.raises(ValueError, match="non-empty dict"):
        pruning.magnitude_prune({})
    with pytest.raises(ValueError, match="non-empty dict"):
        pruning.magnitude_prune([np.ones(3)])
    with pytest.raises(TypeError, match="Expected `masks` to be a dict"):
        pruning.random_masks_like(np.ones(3))
    with pytest.raises(ValueError, match="numeric weights"):
        pruning.magnitude_prune({"a": np.array(["x", "y"])})


def test_inputs_are_not_modified():
    w = weights(a=(5, 5))
    masks = {"a": np.ones((5, 5))}
    before_w, before_m = w["a"].copy(), masks["a"].copy()
    pruning.magnitude_prune(w, masks, 0.5)
    pruning.global_magnitude_prune(w, masks, 0.5)
    pruning.random_prune(masks, 0.5)
    np.testing.assert_array_equal(w["a"], before_w)
    np.testing.assert_array_equal(masks["a"], before_m)
