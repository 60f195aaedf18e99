"""Every Keras Applications constructor (no weights, small inputs) converts
with identical predictions and every kernel masked, or is named with the
reason it cannot be built here. The small ones run by default; the rest are
marked slow (`.ci/run` runs them on TensorFlow and PyTorch). On JAX, which
takes 10-45 s to build and first call each model eagerly here (13 minutes in
all), the rest run with KERAS_LOTTERY_ALL_APPLICATIONS=1 (docs/layers.md has
that run)."""

import os
import warnings

import keras
import numpy as np
import pytest
from helpers import to_numpy

import keras_lottery as kl

CONSTRUCTORS = sorted(name for name in dir(keras.applications)
                      if name[0].isupper() and callable(getattr(keras.applications, name)))
# By default: ConvNeXt, whose LayerScale once broke conversion, and a small
# MobileNet (depthwise convolutions, squeeze-and-excitation).
QUICK = {"ConvNeXtTiny"}  # The one whose unnamed LayerScale weight once broke copies.


def _size(name):
    # The smallest input each family takes without its top.
    return 75 if name.startswith(("Inception", "Xception")) else 32


_ALL_ON_JAX = pytest.mark.skipif(
    keras.backend.backend() == "jax" and not os.environ.get("KERAS_LOTTERY_ALL_APPLICATIONS"),
    reason="13 minutes on JAX: set KERAS_LOTTERY_ALL_APPLICATIONS=1 to run")


@pytest.mark.parametrize("name", [
    name if name in QUICK else pytest.param(name, marks=[pytest.mark.slow, _ALL_ON_JAX])
    for name in CONSTRUCTORS])
def test_every_application_converts_exactly(name):
    size = _size(name)
    try:
        model = getattr(keras.applications, name)(weights=None, include_top=False,
                                                  input_shape=(size, size, 3))
    except ValueError as error:  # NASNetMobile on torch: Keras itself refuses, and says why.
        pytest.skip(f"Keras cannot build {name} on {keras.backend.backend()}: {error}")
    x = np.random.default_rng(0).normal(size=(1, size, size, 3)).astype("float32")
    expected = to_numpy(model(x))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = kl.prunable(model)
    assert not [w for w in caught if "unmasked" in str(w.message)]
    np.testing.assert_array_equal(to_numpy(converted(x)), expected)
    masked = {id(p.weight) for layer in kl.masked_layers(converted)
              for p in layer.get_prunable_weights()}
    kernels = [v for v in converted.trainable_weights if len(v.shape) >= 2]
    assert kernels and all(id(v) in masked for v in kernels)
    assert kl.sparsity_report(converted).prunable_share > 0.98
