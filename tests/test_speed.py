"""The fast compile settings (XLA, torch.compile, steps per execution) keep every invariant.

Speed itself is measured in benchmarks/, never here.
"""

import keras
import numpy as np
import pytest
from helpers import VAL, X, Y, RoundStarts, assert_rewound, compiled_mlp

import keras_lottery as kl


def test_fast_settings_per_backend():
    settings = kl.fast_compile_settings(eval_every=50)
    # torch.compile cannot trace Keras 3.11's loss; later versions compile.
    old_torch = keras.backend.backend() == "torch" and kl.speed._keras_version() < (3, 12)
    assert settings["jit_compile"] is (not old_torch)
    # Keras' torch trainer runs one step per execution only.
    expected = 1 if keras.backend.backend() == "torch" else 50
    assert settings["steps_per_execution"] == expected
    assert kl.fast_compile_settings()["steps_per_execution"] == 1
    with pytest.raises(ValueError, match=r"Expected `eval_every` an integer >= 1 or None. "
                                         r"Received: eval_every=0"):
        kl.fast_compile_settings(eval_every=0)


def fast_search(**kwargs):
    model = compiled_mlp()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], **kl.fast_compile_settings(eval_every=5))
    settings = dict(rounds=2, epochs=2, batch_size=20, eval_every=5, validation_data=VAL,
                    test_data=(X[60:], Y[60:]), controls=["random_reinit"], verbose=0)
    settings.update(kwargs)
    return kl.TicketSearch(model, X, Y, **settings)


@pytest.mark.slow
def test_a_compiled_search_keeps_exact_zeros_rewinds_and_seeds():
    starts = RoundStarts()
    search = fast_search(callbacks=[starts])
    assert search.model.jit_compile is kl.fast_compile_settings()["jit_compile"]
    result = search.run()
    # Every ticket training starts from θ0 exactly, with its round's masks.
    tickets = [(s, m) for s, m, r in zip(starts.starts, starts.masks, result.records)
               if r.kind == "ticket"]
    for start, masks in tickets:
        assert_rewound(start, search.theta0, masks)  # Pruned: stored as 0.
    # Pruned weights are exactly zero after the last training (the search
    # also checks this after every training).
    weights, masks = kl.get_weights(search.model), kl.get_masks(search.model)
    for path, mask in masks.items():
        assert not np.any(weights[path][~mask]), path
    assert result.record(2).density == sum(m.sum() for m in masks.values()) / 1340 < 0.7
    # Same seed, same backend, same settings: the same numbers.
    again = fast_search().run()
    for a, b in zip(result.records, again.records):
        assert (a.round, a.kind) == (b.round, b.kind)
        assert a.curves == b.curves and a.final == b.final and a.early_stop == b.early_stop


def test_a_first_step_traced_with_gradients_present_changes_no_number():
    from keras_lottery.runtime import speed

    weights = []
    for prepared in (False, True):
        keras.utils.set_random_seed(1)
        model = compiled_mlp()
        # Compiled as the presets compile (no torch.compile with Keras 3.11).
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                      jit_compile=kl.fast_compile_settings()["jit_compile"])
        if prepared:
            speed.create_gradients(model)
            if keras.backend.backend() == "torch" and model.jit_compile:
                assert all(v.value.grad is not None for v in model.trainable_variables)
        model.fit(X, Y, epochs=2, batch_size=16, verbose=0)
        weights.append([keras.ops.convert_to_numpy(w) for w in model.weights])
    # With torch.compile, to float rounding: the second fit's kernels may be
    # compiled for dynamic shapes after the first (or earlier tests) saw others.
    # Gradients left to add up would differ by far more.
    for before, after in zip(*weights):
        if keras.backend.backend() == "torch":
            np.testing.assert_allclose(before, after, rtol=1e-4, atol=1e-6)
        else:
            np.testing.assert_array_equal(before, after)
