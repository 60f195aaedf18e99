"""Pruning criteria: the scores after training, at initialization, and the budgets."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.pruning import criteria, planning, rules as pruning, saliency

RNG = np.random.default_rng(3)
W1 = RNG.normal(size=(3, 2)).astype(np.float32)
W2 = RNG.normal(size=(2, 1)).astype(np.float32)
X = RNG.normal(size=(4, 3)).astype(np.float32)
Y = RNG.normal(size=(4, 1)).astype(np.float32)
MASK1 = np.array([[0, 1], [1, 1], [1, 1]], bool)


def linear_net():
    """x -> x W1 -> (x W1) W2, no biases, MSE: small enough to differentiate by hand."""
    model = keras.Sequential([
        keras.Input((3,)),
        kl.MaskedDense(2, use_bias=False, name="one"),
        kl.MaskedDense(1, use_bias=False, name="two"),
    ])
    model.compile("sgd", "mse")
    paths = list(kl.get_masks(model))
    kl.set_weights(model, {paths[0]: W1, paths[1]: W2})
    kl.apply_masks(model, {paths[0]: MASK1, paths[1]: np.ones((2, 1), bool)})
    return model, paths


def numpy_gradient(w1, w2, temperature=1.0):
    """Gradient of mean((x (w1*m) w2 / T - y)^2) in float64."""
    m1 = w1 * MASK1
    hidden = X.astype(np.float64) @ m1
    out = hidden @ w2 / temperature
    d_out = 2 * (out - Y) / out.size / temperature
    return (X.T @ (d_out @ w2.T)) * MASK1, hidden.T @ d_out


def test_after_training_scores_by_hand():
    final = {"a": np.array([1.0, -3.0, 0.5])}
    initial = {"a": np.array([-2.0, 1.0, 0.5])}
    scores = {name: criteria.after_training_scores(name, final, initial)["a"]
              for name in criteria.AFTER_TRAINING if name != "random"}
    np.testing.assert_array_equal(scores["large_final"], [1.0, 3.0, 0.5])
    np.testing.assert_array_equal(scores["large_init"], [2.0, 1.0, 0.5])
    np.testing.assert_array_equal(scores["magnitude_increase"], [-1.0, 2.0, 0.0])
    np.testing.assert_array_equal(scores["movement"], [3.0, 4.0, 0.0])
    one = criteria.after_training_scores("random", final, initial, seed=1)
    np.testing.assert_array_equal(one["a"], criteria.random_scores(final, seed=1)["a"])
    assert not np.array_equal(one["a"], criteria.random_scores(final, seed=2)["a"])
    # Pruning keeps the highest: one weight of three pruned by magnitude increase.
    kept = pruning.score_prune({"a": scores["magnitude_increase"]}, rate=0.3)["a"]
    np.testing.assert_array_equal(kept, [False, True, True])


def test_inverted_and_signed_constant():
    scores = {"a": np.array([1.0, 3.0, 2.0])}
    kept = pruning.score_prune(criteria.inverted(scores), rate=0.3)["a"]
    np.testing.assert_array_equal(kept, [True, False, True])
    start = {"a": np.array([[0.5, -2.0], [1.0, 0.0]], np.float32)}
    masks = {"a": np.array([[1, 1], [0, 1]], bool)}
    std = start["a"].std()
    np.testing.assert_allclose(criteria.signed_constant(masks, start)["a"],
                               [[std, -std], [0.0, 0.0]])


def test_snip_scores_by_hand():
    model, (p1, p2) = linear_net()
    g1, g2 = numpy_gradient(W1.astype(np.float64), W2.astype(np.float64))
    scores = saliency.snip_scores(model, X, Y)
    np.testing.assert_allclose(scores[p1], np.abs(g1 * W1), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(scores[p2], np.abs(g2 * W2), rtol=1e-4, atol=1e-7)
    assert scores[p1][0, 0] == 0  # pruned: no gradient through the mask


def test_grasp_scores_by_hand():
    model, (p1, p2) = linear_net()
    temperature = 2.0
    w1, w2 = W1.astype(np.float64), W2.astype(np.float64)
    g1, g2 = numpy_gradient(w1, w2, temperature)
    # H g by central differences of the exact gradient along g (a cubic in w).
    eps = 1e-4
    plus = numpy_gradient(w1 + eps * g1, w2 + eps * g2, temperature)
    minus = numpy_gradient(w1 - eps * g1, w2 - eps * g2, temperature)
    h1, h2 = [(a - b) / (2 * eps) for a, b in zip(plus, minus)]
    scores = saliency.grasp_scores(model, X, Y, temperature=temperature)
    np.testing.assert_allclose(scores[p1], w1 * h1, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(scores[p2], w2 * h2, rtol=1e-3, atol=1e-7)


def test_synflow_scores_by_hand():
    model, (p1, p2) = linear_net()
    a1, a2 = np.abs(W1) * MASK1, np.abs(W2)
    # R = 1^T |W1| |W2|: dR/d|W1|_ij = |W2|_j and dR/d|W2|_j = sum_i |W1|_ij.
    expected1 = np.ones((3, 1)) @ a2.T * a1
    expected2 = a1.sum(axis=0)[:, None] * a2
    scores = saliency.synflow_scores(model)
    np.testing.assert_allclose(scores[p1], expected1, rtol=1e-5)
    np.testing.assert_allclose(scores[p2], expected2, rtol=1e-5)
    # Scoring changed nothing in the model.
    np.testing.assert_array_equal(kl.get_weights(model)[p1], W1 * MASK1)


def test_synflow_and_grasp_score_the_logits_under_a_softmax():
    def net(softmax_layer):
        keras.utils.set_random_seed(1)
        layers = [keras.Input((3,)), kl.MaskedDense(5, activation="relu", name="h"),
                  kl.MaskedDense(4, activation=None if softmax_layer else "softmax", name="o")]
        model = keras.Sequential(layers + ([keras.layers.Softmax()] if softmax_layer else []))
        model.compile("sgd", "sparse_categorical_crossentropy")
        return model

    inside = net(softmax_layer=False)
    logits = keras.Sequential([keras.Input((3,)), inside.layers[0], kl.MaskedDense(4, name="o2")])
    kl.set_weights(logits, dict(zip(kl.get_masks(logits), kl.get_weights(inside).values())))
    for a, b in (zip(saliency.synflow_scores(inside).values(),
                                      saliency.synflow_scores(logits).values())):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    assert inside.layers[-1].activation is keras.activations.softmax  # put back
    y = np.array([0, 1, 2, 3])
    x = RNG.normal(size=(4, 3)).astype("float32")
    cooled = saliency.grasp_scores(inside, x, y, temperature=50.0)
    assert not np.allclose(list(cooled.values())[0],
                           list(saliency.grasp_scores(inside, x, y, temperature=1.0).values())[0])
    # A softmax after the output layer: R is constant, refused.
    with pytest.raises(ValueError, match="SynFlow needs its logits"):
        saliency.synflow_scores(net(softmax_layer=True))


def test_synflow_prunes_iteratively_to_the_exact_density():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), kl.MaskedDense(30, name="a"),
                              kl.MaskedDense(10, name="b")])
    model.compile("sgd", "mse")
    rates = {p: 0.2 for p in kl.get_masks(model)}
    criterion = criteria.Criterion("synflow", iterations=5)
    masks = saliency.prune_at_initialization(model, criterion, 0.1, rates, budget="global")
    assert sum(int(m.sum()) for m in masks.values()) == pruning.keep_count(900, 0.1)
    # Iterating is not the same as pruning once by the first scores.
    once = saliency.prune_at_initialization(model, criteria.Criterion("synflow", iterations=1),
                                            0.1, rates, budget="global")
    assert any(not np.array_equal(masks[p], once[p]) for p in masks)


def test_scores_at_initialization_needs_data_and_known_names():
    model, _ = linear_net()
    with pytest.raises(ValueError, match="Expected training data for criterion 'snip'"):
        saliency.scores_at_initialization(model, "snip")
    with pytest.raises(ValueError, match=r"Expected `criterion` among .*Received: criterion='l1'"):
        criteria.as_criterion("l1")
    with pytest.raises(ValueError, match="Criterion.iterations"):
        criteria.Criterion("synflow", iterations=0)
    scores = saliency.scores_at_initialization(model, criteria.Criterion("snip", examples=2),
                                               data=(X, Y))
    by_hand = saliency.snip_scores(model, X[:2], Y[:2])
    for path in scores:
        np.testing.assert_array_equal(scores[path], by_hand[path])


def test_erk_densities_by_hand():
    shapes = {"big": (100, 100), "small": (10, 10)}
    # raw: big 200/10000 = 0.02, small 20/100 = 0.2; budget 0.1 * 10100 = 1010.
    densities = pruning.erk_densities(shapes, 0.1)
    epsilon = 1010 / (0.02 * 10000 + 0.2 * 100)
    assert densities == pytest.approx({"big": 0.02 * epsilon, "small": 0.2 * epsilon})
    # At 0.5 the small layer would exceed 1: it stays dense, the big one takes the rest.
    densities = pruning.erk_densities(shapes, 0.5)
    assert densities["small"] == 1.0
    assert densities["big"] == pytest.approx((0.5 * 10100 - 100) / 10000)
    with pytest.raises(ValueError, match="ERK budget can reach"):
        pruning.erk_densities(shapes, 0.005, dense=("small",))


@pytest.mark.parametrize("budget", planning.BUDGETS)
def test_budgets_reach_the_target_exactly(budget):
    rng = np.random.default_rng(0)
    shapes = {"a": (50, 40), "b": (40, 10), "out": (10, 2)}
    scores = {p: rng.random(s) for p, s in shapes.items()}
    dense = {p: np.ones(s, bool) for p, s in shapes.items()}
    rates = {"a": 0.2, "b": 0.2, "out": 0.2}
    masks = planning.one_shot_masks(dense, scores, rates, 0.3, budget)
    assert pruning.density(masks) == pytest.approx(0.3, abs=2 / 2420)
    if budget == "erk":
        erk = pruning.erk_densities(shapes, 0.3)
        for path in shapes:
            assert masks[path].mean() == pytest.approx(erk[path], abs=1 / masks[path].size)
    # Iterating: round 2 at 0.8 ** 2 overall, nested in round 1.
    one = planning.iterative_masks(dense, scores, rates, planning.densities(dense), 1, budget)
    two = planning.iterative_masks(one, scores, rates, planning.densities(dense), 2, budget)
    assert pruning.density(two) == pytest.approx(0.64, abs=2 / 2420)
    assert all((two[p] <= one[p]).all() for p in shapes)


def test_autodiff_gives_zeros_for_a_value_that_does_not_reach_fn():
    from keras_lottery.runtime import autodiff

    def fn(tensors):
        return keras.ops.sum(tensors[0] ** 3)

    values = [np.array([1.0, 2.0], np.float32), np.array([5.0], np.float32)]
    value, grads = autodiff.gradient(fn, values)
    assert float(value) == pytest.approx(9.0)
    np.testing.assert_allclose(grads[0], [3.0, 12.0])
    np.testing.assert_array_equal(grads[1], [0.0])
    # H g for x^3: g = 3x^2, H = 6x, so H g = 18 x^3.
    product = autodiff.hessian_gradient_product(fn, values)
    np.testing.assert_allclose(product[0], [18.0, 144.0], rtol=1e-5)
    np.testing.assert_array_equal(product[1], [0.0])


def test_erk_caps_a_layer_already_below_its_share():
    shapes = {"big": (100, 100), "small": (10, 10)}
    densities = pruning.erk_densities(shapes, 0.3, caps={"small": 0.05})
    assert densities["small"] == 0.05
    assert densities["big"] == pytest.approx((0.3 * 10100 - 5) / 10000)


@pytest.mark.parametrize("budget", ["global", "erk"])
def test_one_shot_reaches_the_target_beside_a_pruned_layer_at_rate_0(budget):
    rng = np.random.default_rng(1)
    shapes = {"a": (50, 40), "b": (40, 10), "frozen": (10, 20)}
    scores = {p: rng.random(s) for p, s in shapes.items()}
    masks = {p: np.ones(s, bool) for p, s in shapes.items()}
    masks["frozen"].ravel()[:100] = False  # half pruned, never pruned again
    rates = {"a": 0.2, "b": 0.2, "frozen": 0.0}
    new = planning.one_shot_masks(masks, scores, rates, 0.2, budget)
    assert pruning.density(new) == pytest.approx(0.2, abs=1 / 2600)
    np.testing.assert_array_equal(new["frozen"], masks["frozen"])
