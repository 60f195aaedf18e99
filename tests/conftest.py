"""Shared fixtures. The backend comes from KERAS_BACKEND, fixed at the first
`import keras`: run one pytest process per backend."""

import keras
import numpy as np
import pytest


def pytest_report_header(config):
    return f"keras {keras.version()}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(1234)


@pytest.fixture
def image_batch():
    return np.random.default_rng(0).normal(size=(6, 8, 8, 2)).astype("float32")


@pytest.fixture
def token_batch():
    return np.random.default_rng(0).integers(0, 20, size=(6, 6)).astype("int32")
