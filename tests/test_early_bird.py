"""EarlyBird: a structured mask per epoch, stopping once it settles."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.layers import MaskedDense
from keras_lottery.pruning.rules import keep_count


def _model():
    keras.utils.set_random_seed(7)  # The same θ0 each time.
    model = keras.Sequential([keras.Input((12,)), MaskedDense(16, activation="relu", name="a"),
                              MaskedDense(8, activation="relu", name="b"),
                              MaskedDense(2, name="out")], name="net")
    model.compile(keras.optimizers.SGD(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class Kernels(keras.callbacks.Callback):
    """The kernels of layers a and b at each epoch end."""

    def on_train_begin(self, logs=None):
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append([keras.ops.convert_to_numpy(self.model.get_layer(n).kernel)
                          for n in ("a", "b")])


def _top(kernel, count):
    norms = np.abs(kernel).sum(axis=0)
    return np.isin(np.arange(len(norms)), np.argsort(norms)[-count:])


def _data():
    x = np.random.default_rng(0).normal(size=(64, 12)).astype("float32")
    return x, (x[:, 0] + x[:, 1] > 0).astype("int32")


def test_the_mask_settles_training_stops_and_the_search_trains_it():
    x, y = _data()
    model = _model()
    # Records every epoch first: where the rule would have stopped.
    watcher = kl.EarlyBird("neurons", keep=0.5, threshold=0.2, patience=2, stop=False)
    kernels = Kernels()
    model.fit(x, y, epochs=6, batch_size=16, callbacks=[watcher, kernels], verbose=0)
    assert len(watcher.distances) == 5
    # By hand: the 8 of 16 and 4 of 8 neurons with the largest L1 norm, epoch after epoch.
    kept = [np.concatenate([_top(a, 8), _top(b, 4)]) for a, b in kernels.seen]
    expected = [float(np.mean(kept[e] != kept[e - 1])) for e in range(1, 6)]
    np.testing.assert_allclose(watcher.distances, expected)
    settled = next(e for e in range(2, 6) if max(watcher.distances[e - 2:e]) < 0.2)
    assert watcher.found_at == settled
    model = _model()
    bird = kl.EarlyBird("neurons", keep=0.5, threshold=0.2, patience=2)
    history = model.fit(x, y, epochs=6, batch_size=16, callbacks=[bird], verbose=0)
    assert bird.found_at == settled and len(history.history["loss"]) == settled + 1
    masks = {path.split("/")[-2]: mask for path, mask in bird.masks.items()}
    for name, units in (("a", 16), ("b", 8)):
        alive = masks[name].any(axis=0)
        assert alive.sum() == keep_count(units, 0.5) and not masks[name][:, ~alive].any()
    assert masks["out"].sum() == 4 * 2  # Only what b's removed neurons took from it.
    # Round 1 of a search trains the early-bird ticket, from θ0.
    search = kl.TicketSearch(_model(), x, y, transfer=[bird.masks], epochs=1, batch_size=16,
                             verbose=0)
    search.run()
    for path, mask in search.masks(1).items():
        np.testing.assert_array_equal(mask, bird.masks[path])


@pytest.mark.parametrize("arguments, match", [
    ({"structure": "2:4"}, "structure` of units"),
    ({"keep": 1.0}, "`keep` in \\(0, 1\\)"),
    ({"threshold": 0}, "`threshold` in \\(0, 1\\)"),
    ({"patience": 0}, "`patience` an integer >= 1"),
])
def test_bad_arguments_are_refused(arguments, match):
    with pytest.raises(ValueError, match=match):
        kl.EarlyBird(**{"structure": "neurons", **arguments})
