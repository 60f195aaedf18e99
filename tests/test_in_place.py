"""Masks made in place, at any depth, on layers keras-lottery has no twin for:
the model keeps its classes and outputs; pruned weights contribute nothing,
train as if they did not exist, stay zero, save, load and strip."""

import json

import keras
import numpy as np
import pytest
from helpers import BLOCK_MASKS, Block, BlockNet, BrokenConfigBlock, block_model, to_numpy

import keras_lottery as kl
from keras_lottery.runtime import autodiff
from keras_lottery import layers as masked

RNG = np.random.default_rng(0)


def inputs(n=6):
    return RNG.normal(size=(n, 3, 5)).astype("float32")


def test_in_place_keeps_the_model_its_classes_and_outputs():
    model = block_model()
    x = inputs()
    before = to_numpy(model(x))
    assert kl.prunable(model, in_place=True) is model
    block = model.get_layer("block")
    assert isinstance(block, Block) and type(block).__name__ == "Block"
    assert isinstance(block, kl.MaskedLayer) and isinstance(model, keras.Model)
    assert type(block.up) is masked.MaskedDense
    assert type(block.attention) is masked.MaskedMultiHeadAttention
    assert type(block.norm) is keras.layers.LayerNormalization
    infos = kl.weight_infos(model)
    assert {path: info.kind for path, info in infos.items()} == BLOCK_MASKS
    assert [v.path for v in block.weights if v.name.endswith("_mask")][:2] == [
        "block/mix_mask", "block/table_mask"]
    assert all(mask.all() for mask in kl.get_masks(model).values())
    np.testing.assert_array_equal(to_numpy(model(x)), before)


def test_a_copy_is_the_same_and_shares_nothing():
    model = block_model()
    x = inputs()
    converted = kl.prunable(model)
    assert converted is not model and not kl.masked_layers(model)
    assert sorted(kl.get_masks(converted)) == sorted(BLOCK_MASKS)
    np.testing.assert_array_equal(to_numpy(converted(x)), to_numpy(model(x)))


@pytest.mark.parametrize("build", [block_model, lambda: BlockNet(name="net")],
                         ids=["functional", "subclassed"])
def test_masks_apply_wherever_the_weight_is_read(build):
    """Outputs equal those of the plain model holding `weight * mask`."""
    model = build()
    x = inputs()
    model(x)
    kl.prunable(model, in_place=True)
    masks = kl.random_prune(kl.get_masks(model), rate=0.5, seed=1)
    for layer in kl.masked_layers(model):  # Masks only: the stored weights stay nonzero.
        for weight, mask, _ in layer.get_prunable_weights():
            mask.assign(masks[weight.path].astype("float32"))
    pruned = to_numpy(model(x))
    stripped = kl.strip(model)
    assert not kl.masked_layers(stripped) and type(stripped) is type(build())
    stored = {v.path: to_numpy(v) for v in stripped.weights}
    for path, mask in masks.items():
        assert np.all(stored[path][~mask] == 0) and np.all(stored[path][mask] != 0)
    np.testing.assert_allclose(to_numpy(stripped(x)), pruned, rtol=1e-6, atol=1e-6)


def _reference_steps(plain, masks, optimizer, x, y, steps):
    """Trains `plain` by hand, each gradient masked before the optimizer sees
    it: training as if the pruned weights did not exist."""
    variables = plain.trainable_variables
    frozen = [v.value for v in plain.non_trainable_variables]
    keep = [masks.get(v.path) for v in variables]
    loss = keras.losses.MeanSquaredError()

    def fn(values):
        outputs, _ = plain.stateless_call(values, frozen, x)
        return loss(y, outputs)

    for _ in range(steps):
        _, grads = autodiff.gradient(fn, [to_numpy(v) for v in variables])
        grads = [g if k is None else g * k for g, k in zip(grads, keep)]
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)


@pytest.mark.parametrize("build", [block_model, lambda: BlockNet(name="net")],
                         ids=["functional", "subclassed"])
def test_training_is_as_if_the_pruned_weights_did_not_exist(build):
    """Same weights and optimizer statistics as a masked-gradient reference,
    under AdamW's weight decay and global-norm clipping; pruned weights stay
    exactly zero."""
    model = build()
    x = inputs(8)
    y = RNG.normal(size=(8, 3) if isinstance(model, BlockNet) else (8, 2)).astype("float32")
    model(x)
    kl.prunable(model, in_place=True)
    masks = kl.random_prune(kl.get_masks(model), rate=0.6, seed=2)
    kl.apply_masks(model, masks)
    plain = kl.strip(model)

    def optimizer():
        return keras.optimizers.AdamW(0.05, weight_decay=0.1, global_clipnorm=0.5)

    model.compile(optimizer(), "mse", jit_compile=False)
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    reference = optimizer()
    _reference_steps(plain, masks, reference, x, y, steps=3)
    # To float rounding: the attention's key bias has a zero gradient up to
    # rounding, which Adam scales up to about 1e-6.
    trained = {v.path: to_numpy(v) for v in model.trainable_variables}
    for variable in plain.trainable_variables:
        np.testing.assert_allclose(trained[variable.path], to_numpy(variable),
                                   rtol=2e-5, atol=1e-5, err_msg=variable.path)
    for mine, theirs in zip(model.optimizer.variables, reference.variables, strict=True):
        np.testing.assert_allclose(to_numpy(mine), to_numpy(theirs), rtol=2e-5, atol=1e-5,
                                   err_msg=mine.path)
    stored = kl.get_weights(model)
    for path, mask in masks.items():
        assert np.all(stored[path][~mask] == 0), f"{path} trained through its mask"
        assert np.count_nonzero(stored[path][mask]) == mask.sum()


@pytest.mark.parametrize("build", [block_model, lambda: BlockNet(name="net")],
                         ids=["functional", "subclassed"])
def test_keras_files_keep_the_masks_and_the_classes(build, tmp_path):
    model = build()
    x = inputs()
    model(x)
    kl.prunable(model, in_place=True)
    masks = kl.random_prune(kl.get_masks(model), rate=0.5, seed=3)
    kl.apply_masks(model, masks)
    model.save(tmp_path / "masked.keras")
    loaded = keras.models.load_model(tmp_path / "masked.keras")
    assert type(loaded).__name__ == type(model).__name__ and isinstance(loaded, type(build()))
    assert isinstance(loaded.get_layer("block"), Block)
    assert type(loaded.get_layer("block").up) is masked.MaskedDense
    for (path, mask), (loaded_path, loaded_mask) in zip(masks.items(), kl.get_masks(loaded).items(),
                                                        strict=True):
        assert loaded_path.split("/")[-2:] == path.split("/")[-2:]
        np.testing.assert_array_equal(loaded_mask, mask)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
    # Its config rebuilds the masks too, and says which weights they cover.
    config = json.loads(model.to_json())["config"]
    assert config["keras_lottery_masks"]["weights"]
    rebuilt = keras.models.model_from_json(model.to_json())
    assert len(kl.get_masks(rebuilt)) == len(masks)
    # Stripped, the model is its own classes only and loads as such.
    kl.strip(model, in_place=True)
    assert type(model) is type(build()) and type(model.get_layer("block")) is Block
    assert type(model.get_layer("block").up) is keras.layers.Dense
    assert "keras_lottery_masks" not in json.loads(model.to_json())["config"]
    model.save(tmp_path / "plain.keras")
    plain = keras.models.load_model(tmp_path / "plain.keras")
    assert not kl.masked_layers(plain)
    np.testing.assert_array_equal(to_numpy(plain(x)), to_numpy(loaded(x)))


def test_a_layer_whose_config_fails_is_masked_in_place_and_searched(tmp_path):
    model = block_model(BrokenConfigBlock)
    with pytest.raises(ValueError, match=r"(?s)first layer whose config fails is 'block' "
                                         r"\(BrokenConfigBlock\).*AttributeError.*"
                                         r"rope_scaling_factor.*in_place=True"):
        kl.prunable(model)
    kl.prunable(model, in_place=True)
    assert sorted(kl.get_masks(model)) == sorted(BLOCK_MASKS)
    x, y = inputs(16), RNG.normal(size=(16, 2)).astype("float32")
    model.compile(keras.optimizers.Adam(0.01), "mse")
    theta0 = {v.path: to_numpy(v) for v in model.trainable_variables}
    search = kl.TicketSearch(model, rounds=2, prune_rates=0.5, epochs=1, batch_size=8, verbose=0,
                             directory=str(tmp_path / "run"))
    search.run(x, y, validation_data=(x, y))
    ticket = search.ticket(2)
    masks = kl.get_masks(ticket)
    for variable in ticket.trainable_variables:
        value, start = to_numpy(variable), theta0[variable.path]
        mask = masks.get(variable.path)
        if mask is None:
            np.testing.assert_array_equal(value, start)  # Rewound.
        else:
            assert mask.sum() == pytest.approx(mask.size * 0.25, abs=1)
            np.testing.assert_array_equal(value[mask], start[mask])
            assert np.all(value[~mask] == 0)


def test_an_unbuilt_model_and_a_layer_are_refused():
    with pytest.raises(ValueError, match=r"Expected a built model. Received BlockNet 'net'.*"
                                         r"call it on a batch"):
        kl.prunable(BlockNet(name="net"), in_place=True)
    with pytest.raises(ValueError, match=r"expected a Keras model. Received a layer \(Dense\)"):
        kl.prunable(keras.layers.Dense(2))


def test_masking_twice_keeps_the_masks_and_exclude_reaches_any_depth():
    model = block_model()
    kl.prunable(model, in_place=True, exclude=["up", "attention"])
    assert sorted(kl.get_masks(model)) == sorted(
        p for p in BLOCK_MASKS if not p.startswith(("block/up", "block/attention")))
    masks = kl.random_prune(kl.get_masks(model), rate=0.5, seed=4)
    kl.apply_masks(model, masks)
    kl.prunable(model, in_place=True)  # Masks what the first call left, keeps the rest.
    assert sorted(kl.get_masks(model)) == sorted(BLOCK_MASKS)
    for path, mask in masks.items():
        np.testing.assert_array_equal(kl.get_masks(model)[path], mask)
