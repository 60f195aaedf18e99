"""Masks in and out of a model, training with masks, and the sparsity report."""

import keras
import numpy as np
import pytest
from helpers import conv_sequential, to_numpy, token_functional

import keras_lottery as kl

RNG = np.random.default_rng(3)


def mlp():
    return keras.Sequential(
        [
            keras.Input((10,)),
            kl.MaskedDense(16, activation="relu", name="fc1"),
            kl.MaskedDense(8, activation="relu", name="fc2"),
            kl.MaskedDense(3, name="out"),
            keras.layers.Softmax(name="softmax"),
        ],
        name="mlp",
    )


def data(n=120):
    x = RNG.normal(size=(n, 10)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    return x, y


def effective_kernels(model):
    """What each masked layer computes with: its kernel as its own `call` reads it."""
    return {layer.kernel_mask.path.removesuffix("_mask"): to_numpy(layer.kernel)
            for layer in kl.masked_layers(model)}


def test_apply_masks_zeroes_stored_weights_and_reads_back():
    model = mlp()
    before = kl.get_weights(model)
    masks = kl.magnitude_prune(before, rate=0.5)
    kl.apply_masks(model, masks)
    after = kl.get_weights(model)
    for path, mask in kl.get_masks(model).items():
        np.testing.assert_array_equal(mask, masks[path])
        np.testing.assert_array_equal(after[path], before[path] * masks[path])
        assert np.count_nonzero(after[path]) == mask.sum()


def test_partial_mask_dict_touches_only_its_paths():
    model = mlp()
    # A Sequential model built from an `Input` prefixes paths with its name.
    with pytest.raises(ValueError, match=r"Received none for \['mlp/fc1/kernel', 'mlp/out/kernel'\]"):
        kl.apply_masks(model, {"mlp/fc2/kernel": np.zeros((16, 8))})
    kl.apply_masks(model, {"mlp/fc2/kernel": np.zeros((16, 8))}, partial=True)
    masks = kl.get_masks(model)
    assert masks["mlp/fc2/kernel"].sum() == 0
    assert masks["mlp/fc1/kernel"].all() and masks["mlp/out/kernel"].all()


@pytest.mark.parametrize("optimizer", ["adam", "sgd_momentum"])
def test_pruned_weights_stay_exactly_zero_through_fit(optimizer):
    model = mlp()
    x, y = data()
    masks = kl.magnitude_prune(kl.get_weights(model), rate=0.7)
    kl.apply_masks(model, masks)
    opt = keras.optimizers.Adam(0.05) if optimizer == "adam" else keras.optimizers.SGD(0.1, momentum=0.9)
    model.compile(opt, "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    stored, effective = kl.get_weights(model), effective_kernels(model)
    for path, mask in masks.items():
        assert np.all(stored[path][~mask] == 0) and np.all(effective[path][~mask] == 0)
        # The survivors did train.
        assert np.count_nonzero(stored[path][mask]) == mask.sum()
    assert kl.sparsity_report(model).remaining == sum(m.sum() for m in masks.values())


def test_mask_changed_between_fits_takes_effect():
    """On JAX a stale compiled step would keep training the old, full mask."""
    model = mlp()
    x, y = data()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    masks = kl.magnitude_prune(kl.get_weights(model), rate=0.5)
    masks["mlp/fc2/kernel"][:] = False  # Cut the network: outputs must stop depending on x.
    kl.apply_masks(model, masks)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # Same compiled step.
    stored = kl.get_weights(model)
    for path, mask in masks.items():
        assert np.all(stored[path][~mask] == 0), f"{path} trained through a zero mask"
    predictions = model.predict(x, verbose=0)
    np.testing.assert_allclose(predictions, np.broadcast_to(predictions[0], predictions.shape),
                               rtol=0, atol=1e-6)


def test_output_layers_are_found_through_the_graph():
    infos = kl.weight_infos(kl.prunable(token_functional()))
    assert {p for p, info in infos.items() if info.is_output} == {"logits/kernel"}
    assert infos["conv1d/kernel"].kind == "conv"
    assert infos["embedding/embeddings"].kind == "embedding"
    assert infos["einsum/kernel"].kind == "dense"
    assert infos["head/head_dense/kernel"].layer_name == "head_dense"
    infos = kl.weight_infos(kl.prunable(conv_sequential()))
    assert [p for p, info in infos.items() if info.is_output] == ["conv_net/output/kernel"]


def test_output_layer_inside_a_nested_model():
    inner = keras.Sequential([keras.Input((4,)), kl.MaskedDense(3, name="inner_out")], name="inner")
    inputs = keras.Input((5,))
    hidden = kl.MaskedDense(4, name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Activation("softmax")(inner(hidden)))
    infos = kl.weight_infos(model)
    assert infos["inner/inner_out/kernel"].is_output and not infos["hidden/kernel"].is_output


def test_rates_for_applies_kind_and_output_rules():
    model = kl.prunable(conv_sequential())
    rates = kl.rates_for(model, kl.PruneRates(0.2, by_kind={"conv": 0.1, "output": 0.05}))
    assert rates == {"conv_net/conv/kernel": 0.1, "conv_net/depthwise/kernel": 0.1,
                     "conv_net/hidden/kernel": 0.2, "conv_net/output/kernel": 0.05}
    assert set(kl.rates_for(model, 0.3).values()) == {0.3}


def test_sparsity_report_counts_and_table():
    model = mlp()
    masks = kl.magnitude_prune(kl.get_weights(model), rate=kl.rates_for(
        model, kl.PruneRates(0.2, by_kind={"output": 0.1})))
    kl.apply_masks(model, masks)
    report = kl.sparsity_report(model)
    rows = {row.path: row for row in report.rows}
    assert rows["mlp/fc1/kernel"].total == 160 and rows["mlp/fc1/kernel"].remaining == 128
    assert rows["mlp/fc2/kernel"].remaining == 128 - 26  # 0.2 * 128 = 25.6 -> 26
    assert rows["mlp/out/kernel"].remaining == 24 - 2  # 0.1 * 24 = 2.4 -> 2
    assert report.total == 160 + 128 + 24 and report.remaining == 128 + 102 + 22
    assert report.density == pytest.approx(252 / 312)
    # The biases are counted apart: unmasked, all remaining.
    assert [row.path for row in report.unmasked] == ["mlp/fc1/bias", "mlp/fc2/bias", "mlp/out/bias"]
    assert report.unmasked_total == 27
    assert report.prunable_share == pytest.approx(312 / 339)
    assert report.overall_density == pytest.approx((252 + 27) / 339)
    from_masks = kl.sparsity_report(masks)
    assert from_masks.rows == report.rows and from_masks.unmasked == ()
    data = report.to_dict()
    assert data["weights"][0] == {"path": "mlp/fc1/kernel", "shape": [10, 16], "total": 160,
                                  "remaining": 128, "density": 0.8}
    assert data["unmasked_total"] == 27 and data["unmasked"][2]["path"] == "mlp/out/bias"
    table = str(report).splitlines()
    assert table[0].split() == ["weight", "shape", "total", "remaining", "density"]
    assert table[2].split() == ["mlp/fc1/kernel", "10x16", "160", "128", "80.00%"]
    assert [line.split() for line in table[-3:]] == [
        ["prunable", "312", "252", "80.77%"],
        ["unmasked", "(3", "variables)", "27", "27", "100.00%"],
        ["all", "weights", "339", "279", "82.30%"],
    ]
    assert str(from_masks).splitlines()[-1].split() == ["prunable", "312", "252", "80.77%"]


def test_bad_masks_change_nothing():
    model = mlp()
    before = kl.get_weights(model)
    with pytest.raises(ValueError, match=r"Received unknown paths: \['nope/kernel'\]"):
        kl.apply_masks(model, {"mlp/fc1/kernel": np.zeros((10, 16)), "nope/kernel": np.ones(3)})
    with pytest.raises(ValueError, match=r"masks\['mlp/fc2/kernel'\] to have the shape .*\(16, 8\)"):
        kl.apply_masks(model, {"mlp/fc1/kernel": np.zeros((10, 16)),
                               "mlp/fc2/kernel": np.ones((8, 16))}, partial=True)
    with pytest.raises(ValueError, match="Expected binary masks"):
        kl.apply_masks(model, {"mlp/fc1/kernel": np.full((10, 16), 0.5)}, partial=True)
    assert all(mask.all() for mask in kl.get_masks(model).values())
    for path, value in kl.get_weights(model).items():
        np.testing.assert_array_equal(value, before[path])


def test_models_without_masks_or_unbuilt_are_rejected():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"without any: convert it with `keras_lottery.prunable"):
        kl.get_masks(plain)
    unbuilt = keras.Sequential([kl.MaskedDense(2, name="lazy")])
    with pytest.raises(ValueError, match=r"Expected a built model. Received unbuilt masked layers \['lazy'\]"):
        kl.get_weights(unbuilt)


def test_set_weights_rewinds_by_path_and_checks_first():
    model = mlp()
    theta0 = kl.get_weights(model)
    kl.set_weights(model, {p: np.zeros_like(v) for p, v in theta0.items()})
    assert all(not v.any() for v in kl.get_weights(model).values())
    kl.set_weights(model, theta0)
    for path, value in kl.get_weights(model).items():
        np.testing.assert_array_equal(value, theta0[path])
    with pytest.raises(ValueError, match=r"weights\['mlp/fc1/kernel'\] of shape \(10, 16\)"):
        kl.set_weights(model, {"mlp/fc2/kernel": np.zeros((16, 8)), "mlp/fc1/kernel": np.ones(3)})
    with pytest.raises(ValueError, match=r"`weights` keys .*unknown paths: \['x'\]"):
        kl.set_weights(model, {"x": np.ones(3)})
    np.testing.assert_array_equal(kl.get_weights(model)["mlp/fc2/kernel"], theta0["mlp/fc2/kernel"])
