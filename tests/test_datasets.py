"""Datasets: the real offline copies, local layouts read back exactly, the env var, TFDS
(mocked), the offline error, MNIST-1D, hold-out and normalization, and tf.data batches."""

import dataclasses
import gzip
import pickle
import random
from pathlib import Path

import numpy as np
import pytest

from keras_lottery.data import datasets

# CI clones the repository beside a copy of shared/, so the data lies at <repo>/../shared/data.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}


@pytest.fixture(autouse=True)
def no_data_env_var(monkeypatch):
    monkeypatch.delenv(datasets.DATA_ENV_VAR, raising=False)


@pytest.fixture
def tfds_unreachable(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def unreachable(*args, **kwargs):
        raise ConnectionError("host unreachable")

    monkeypatch.setattr(tfds, "load", unreachable)
    # As if the download host answered, so that tfds's own error is the one reported.
    monkeypatch.setattr(datasets, "_reachable", lambda *args: True)


@pytest.fixture(scope="module")
def mnist1d_splits():
    pytest.importorskip("mnist1d")
    return datasets.mnist1d()


def fake(n, shape, seed=0):
    """uint8 images (n, *shape) and uint8 labels, as the files store them."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype="uint8"), rng.integers(0, 10, n, dtype="uint8")


def write_idx(path, array):
    codes = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C,
             "float32": 0x0D, "float64": 0x0E}
    header = bytes([0, 0, codes[array.dtype.name], array.ndim])
    data = header + np.asarray(array.shape, ">u4").tobytes()
    data += array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as f:
        f.write(data)


def write_idx_folder(folder, arrays, suffix=".gz"):
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(IDX_NAMES, arrays):
        write_idx(folder / (name + suffix), array)


def write_cifar_pickles(folder, x, y, x_test, y_test):
    folder.mkdir(parents=True)
    parts = [(f"data_batch_{i + 1}", xs, ys)
             for i, (xs, ys) in enumerate(zip(np.array_split(x, 5), np.array_split(y, 5)))]
    for name, xs, ys in parts + [("test_batch", x_test, y_test)]:
        with open(folder / name, "wb") as f:  # Channels first, one row per image, as distributed.
            pickle.dump({b"data": xs.transpose(0, 3, 1, 2).reshape(len(xs), -1),
                         b"labels": ys.tolist()}, f)


def tiny_copy(tmp_path, name="mnist", n=20, n_test=6):
    """Writes a tiny npz for `name` into tmp_path; returns the four arrays."""
    arrays = fake(n, SHAPES[name], seed=1) + fake(n_test, SHAPES[name], seed=2)
    keys = ("x_train", "y_train", "x_test", "y_test")
    np.savez(tmp_path / f"{name}.npz", **dict(zip(keys, arrays)))
    return arrays


# Real offline copies.


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_real_local_copy_splits_shapes_and_ranges(name):
    local = {"mnist": SHARED_DATA / "mnist.npz", "fashion_mnist": SHARED_DATA / "fashion-mnist"}
    if not local[name].exists():
        pytest.skip(f"offline copy not found at {local[name]}")
    train, validation, test = datasets.load(name, data_dir=SHARED_DATA)
    assert [len(x) for x, _ in (train, validation, test)] == [55_000, 5_000, 10_000]
    for x, y in (train, validation, test):
        assert x.shape[1:] == (28, 28, 1) and x.dtype == "float32" and y.dtype == "int32"
        assert x.min() == 0.0 and x.max() == 1.0
        assert set(np.unique(y)) == set(range(10))
    # Fashion-MNIST is exactly balanced: 6,000 training images per class.
    if name == "fashion_mnist":
        counts = np.bincount(np.concatenate([train[1], validation[1]]))
        np.testing.assert_array_equal(counts, [6000] * 10)


@pytest.mark.skipif(not (SHARED_DATA / "mnist.npz").is_file(),
                    reason=f"offline data not found at {SHARED_DATA}")
def test_real_mnist_first_hold_out_and_scaling_match_the_file():
    with np.load(SHARED_DATA / "mnist.npz") as raw:
        x, y = raw["x_train"], raw["y_train"]
    train, validation, _ = datasets.mnist(data_dir=SHARED_DATA, seed=None, flatten=True)
    np.testing.assert_array_equal(validation[0], x[:5000].reshape(5000, 784) / np.float32(255))
    np.testing.assert_array_equal(train[1], y[5000:])


# IDX reader.


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_round_trips(tmp_path, dtype, suffix):
    array = (np.arange(-30, 30).reshape(3, 4, 5) * 3).astype(dtype)
    write_idx(tmp_path / f"a-idx3{suffix}", array)
    back = datasets.read_idx(tmp_path / f"a-idx3{suffix}")
    assert back.dtype == dtype and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("data, match", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "Expected an IDX file"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "Expected an IDX file"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05", "Expected 3 values of uint8"),
])
def test_read_idx_rejects_bad_files(tmp_path, data, match):
    (tmp_path / "bad").write_bytes(data)
    with pytest.raises(ValueError, match=match):
        datasets.read_idx(tmp_path / "bad")


# Local layouts.


@pytest.mark.parametrize("name, layout", [
    ("mnist", "mnist.npz"), ("mnist", "mnist/"), ("mnist", "."),
    ("fashion_mnist", "fashion_mnist.npz"), ("fashion_mnist", "fashion-mnist/"),
    ("fashion_mnist", "."), ("cifar10", "cifar10.npz"), ("cifar10", "cifar-10-batches-py/"),
])
def test_local_layouts_read_back_exactly(tmp_path, name, layout):
    x, y, x_test, y_test = arrays = fake(10, SHAPES[name], 1) + fake(4, SHAPES[name], 2)
    if layout.endswith(".npz"):  # Keras layout: no channel axis for grayscale, cifar labels (N, 1).
        squeeze = (lambda a: a[..., 0]) if name != "cifar10" else (lambda a: a)
        np.savez(tmp_path / layout, x_train=squeeze(x), y_train=y[:, None], x_test=squeeze(x_test),
                 y_test=y_test[:, None])
    elif name == "cifar10":
        write_cifar_pickles(tmp_path / layout, *arrays)
    else:
        write_idx_folder(tmp_path / layout, (x[..., 0], y, x_test[..., 0], y_test),
                         suffix="" if layout == "." else ".gz")
    splits = datasets.load(name, data_dir=tmp_path, validation_size=0, normalize=False)
    expected = ((x, y), (x_test, y_test))
    for (got_x, got_y), (want_x, want_y) in zip((splits.train, splits.test), expected):
        assert got_x.dtype == "uint8" and got_y.dtype == "int32"
        np.testing.assert_array_equal(got_x, want_x)
        np.testing.assert_array_equal(got_y, want_y)
    assert splits.validation[0].shape == (0, *SHAPES[name])


def test_env_var_is_a_root_and_data_dir_overrides_it(tmp_path, monkeypatch, tfds_unreachable):
    x = tiny_copy(tmp_path)[0]
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(tmp_path))
    np.testing.assert_array_equal(datasets.mnist(validation_size=0, normalize=False).train[0], x)
    (tmp_path / "other").mkdir()
    other = tiny_copy(tmp_path / "other", n=12)[0]
    splits = datasets.mnist(data_dir=tmp_path / "other", validation_size=0, normalize=False)
    np.testing.assert_array_equal(splits.train[0], other)
    # Through the env var, files lying directly in the directory are not taken for MNIST:
    # the same variable serves every dataset (here it points at Fashion-MNIST's folder).
    write_idx_folder(tmp_path / "fashion", fake(8, (28, 28), 3) + fake(2, (28, 28), 4))
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(tmp_path / "fashion"))
    with pytest.raises(FileNotFoundError, match="KERAS_LOTTERY_DATA="):
        datasets.mnist()


def test_wrong_shapes_in_a_local_copy_are_reported(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((5, 32, 32), "uint8"), y_train=np.zeros(5),
             x_test=np.zeros((2, 28, 28), "uint8"), y_test=np.zeros(2))
    with pytest.raises(ValueError, match=r"Expected MNIST images of shape \(N, 28, 28, 1\)"):
        datasets.mnist(data_dir=tmp_path, validation_size=0)


# Hold-out, normalization and options.


def test_seeded_hold_out_is_a_reproducible_partition(tmp_path):
    x, y = tiny_copy(tmp_path, n=30)[:2]
    first = datasets.mnist(data_dir=tmp_path, validation_size=7, normalize=False)
    again = datasets.mnist(data_dir=tmp_path, validation_size=7, normalize=False)
    other = datasets.mnist(data_dir=tmp_path, validation_size=7, normalize=False, seed=1)
    np.testing.assert_array_equal(first.validation[0], again.validation[0])
    assert not np.array_equal(first.validation[0], other.validation[0])
    # Train and validation partition the file's training examples; both keep file order.
    rows = {row.tobytes(): i for i, row in enumerate(x)}
    train_rows = [rows[r.tobytes()] for r in first.train[0]]
    validation_rows = [rows[r.tobytes()] for r in first.validation[0]]
    assert sorted(train_rows + validation_rows) == list(range(30))
    assert train_rows == sorted(train_rows) and validation_rows == sorted(validation_rows)
    np.testing.assert_array_equal(first.train[1], y[train_rows])


def test_unseeded_hold_out_takes_the_first_examples(tmp_path):
    x = tiny_copy(tmp_path)[0]
    train, validation, _ = datasets.mnist(data_dir=tmp_path, validation_size=5, seed=None)
    np.testing.assert_array_equal(validation[0], x[:5] / np.float32(255))
    np.testing.assert_array_equal(train[0], x[5:] / np.float32(255))


def test_normalize_and_flatten(tmp_path):
    x, _, x_test, _ = tiny_copy(tmp_path)
    splits = datasets.mnist(data_dir=tmp_path, validation_size=0, flatten=True)
    assert splits.train[0].shape == (20, 784) and splits.train[0].dtype == "float32"
    np.testing.assert_allclose(splits.test[0], x_test.reshape(6, 784) / 255.0, rtol=1e-6)
    assert 0.0 <= splits.train[0].min() and splits.train[0].max() <= 1.0


def test_cifar10_standardize_uses_training_statistics(tmp_path):
    tiny_copy(tmp_path, "cifar10", n=40)
    splits = datasets.cifar10(data_dir=tmp_path, validation_size=10, standardize=True)
    train_x = splits.train[0]
    assert train_x.shape == (30, 32, 32, 3) and train_x.dtype == "float32"
    np.testing.assert_allclose(train_x.mean((0, 1, 2), "float64"), 0.0, atol=1e-6)
    np.testing.assert_allclose(train_x.std((0, 1, 2), "float64"), 1.0, rtol=1e-6)
    # Validation is scaled with the training statistics, not its own.
    plain = datasets.cifar10(data_dir=tmp_path, validation_size=10)
    mean, std = plain.train[0].mean((0, 1, 2), "float64"), plain.train[0].std((0, 1, 2), "float64")
    np.testing.assert_allclose(splits.validation[0], (plain.validation[0] - mean) / std, atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"validation_size": 20},
     "Expected `validation_size` in [0, 20). Received: validation_size=20"),
    ({"validation_size": -1},
     "Expected `validation_size` in [0, 20). Received: validation_size=-1"),
    ({"validation_size": 2.5},
     "Expected `validation_size` an integer. Received: validation_size=2.5"),
    ({"validation_size": True},
     "Expected `validation_size` an integer. Received: validation_size=True"),
    ({"seed": 0.5}, "Expected `seed` an integer >= 0 or None. Received: seed=0.5"),
    ({"format": "torch"}, "Expected `format` among 'numpy', 'tf_data'. Received: format='torch'"),
    ({"format": "tf_data", "batch_size": 0},
     "Expected `batch_size` an integer >= 1. Received: batch_size=0"),
])
def test_bad_options_name_argument_expected_and_received(tmp_path, kwargs, message):
    tiny_copy(tmp_path)
    with pytest.raises(ValueError) as info:
        datasets.mnist(data_dir=tmp_path, **kwargs)
    assert message in str(info.value)


def test_standardize_needs_normalize():
    with pytest.raises(ValueError, match="Expected `normalize=True` with `standardize=True`"):
        datasets.cifar10(normalize=False, standardize=True)


def test_load_rejects_unknown_names():
    with pytest.raises(ValueError) as info:
        datasets.load("imagenet")
    assert str(info.value) == (
        "Expected `name` among 'cifar10', 'fashion_mnist', 'jargon', 'mnist', 'mnist1d', "
        "'tiny_shakespeare'. "
        "Received: name='imagenet'"
    )


def test_splits_is_frozen_and_unpacks():
    splits = datasets.Splits(1, 2, 3)
    assert tuple(splits) == (1, 2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        splits.train = 0


# TFDS, mocked, and the offline error.


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_tfds_source_when_no_local_copy(tmp_path, name):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        splits = datasets.load(name, data_dir=tmp_path, validation_size=4)
    # The mock yields the same 12 examples for every split.
    assert [len(x) for x, _ in splits] == [8, 4, 12]
    for x, y in splits:
        assert x.shape[1:] == SHAPES[name] and x.dtype == "float32" and y.dtype == "int32"
        assert 0.0 <= x.min() and x.max() <= 1.0 and 0 <= y.min() and y.max() < 10
    # The 4 held out and the 8 kept are together the 12 training examples.
    train_and_validation = np.concatenate([splits.train[0], splits.validation[0]])
    np.testing.assert_array_equal(np.sort(train_and_validation.reshape(12, -1), axis=0),
                                  np.sort(splits.test[0].reshape(12, -1), axis=0))


@pytest.mark.parametrize("name, files", [
    ("mnist", ["mnist.npz", "mnist/", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]),
    ("fashion_mnist", ["fashion_mnist.npz", "fashion-mnist/", "train-labels-idx1-ubyte.gz"]),
    ("cifar10", ["cifar10.npz", "cifar-10-batches-py/", "data_batch_1", "test_batch"]),
])
def test_offline_without_local_copy_says_what_to_put_where(tmp_path, tfds_unreachable, name, files):
    with pytest.raises(FileNotFoundError) as info:
        datasets.load(name, data_dir=tmp_path)
    message = str(info.value)
    for text in files + [f"`data_dir`={str(tmp_path)!r}", "KERAS_LOTTERY_DATA",
                         f"tfds.load({name!r})", "ConnectionError: host unreachable"]:
        assert text in message
    assert isinstance(info.value.__cause__, ConnectionError)


def test_offline_without_any_directory_says_none_was_given(tfds_unreachable):
    with pytest.raises(FileNotFoundError, match="No local directory was given"):
        datasets.mnist()


# MNIST-1D.


def test_mnist1d_split_sizes_dtypes_and_scale(mnist1d_splits):
    train, validation, test = mnist1d_splits
    assert [x.shape for x, _ in mnist1d_splits] == [(3500, 40), (500, 40), (1000, 40)]
    for x, y in mnist1d_splits:
        assert x.dtype == "float32" and y.dtype == "int32" and set(np.unique(y)) <= set(range(10))
    # The package scales all 5,000 sequences together to mean 0 and standard deviation 1.
    everything = np.concatenate([train[0], validation[0], test[0]]).astype("float64")
    assert abs(everything.mean()) < 1e-6 and abs(everything.std() - 1.0) < 1e-6


def test_mnist1d_is_deterministic_and_leaves_global_rngs_alone(mnist1d_splits):
    np.random.seed(5)
    random.seed(5)
    expected = np.random.random(), random.random()
    np.random.seed(5)
    random.seed(5)
    splits = datasets.load("mnist1d", validation_size=0)
    assert (np.random.random(), random.random()) == expected
    first_train = np.concatenate([mnist1d_splits.train[0], mnist1d_splits.validation[0]])
    assert len(splits.train[0]) == 4000
    np.testing.assert_array_equal(np.sort(splits.train[0], axis=0), np.sort(first_train, axis=0))
    np.testing.assert_array_equal(splits.test[0], mnist1d_splits.test[0])


# tf.data.


def test_tf_data_batches_shapes_and_shuffling(tmp_path):
    pytest.importorskip("tensorflow")
    tiny_copy(tmp_path, n=25)
    arrays = datasets.mnist(data_dir=tmp_path, validation_size=5)
    splits = datasets.mnist(data_dir=tmp_path, validation_size=5, format="tf_data", batch_size=8)
    batches = [(x.numpy(), y.numpy()) for x, y in splits.train]
    assert [x.shape for x, _ in batches] == [(8, 28, 28, 1), (8, 28, 28, 1), (4, 28, 28, 1)]
    assert batches[0][0].dtype == "float32" and batches[0][1].dtype == "int32"
    epoch = np.concatenate([y for _, y in batches])
    np.testing.assert_array_equal(np.sort(epoch), np.sort(arrays.train[1]))
    assert not np.array_equal(np.concatenate([x for x, _ in batches]), arrays.train[0])  # Shuffled.
    again = datasets.mnist(data_dir=tmp_path, validation_size=5, format="tf_data", batch_size=8)
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in again.train]), epoch)
    # Validation and test keep their order.
    for dataset, (x, y) in ((splits.validation, arrays.validation), (splits.test, arrays.test)):
        np.testing.assert_array_equal(np.concatenate([b.numpy() for b, _ in dataset]), x)
        np.testing.assert_array_equal(np.concatenate([b.numpy() for _, b in dataset]), y)


def test_tf_data_for_mnist1d():
    pytest.importorskip("mnist1d")
    pytest.importorskip("tensorflow")
    splits = datasets.mnist1d(format="tf_data", batch_size=1000)
    assert [tuple(x.shape) for x, _ in splits.train] == [(1000, 40)] * 3 + [(500, 40)]
    assert [tuple(y.shape) for _, y in splits.validation] == [(500,)]
