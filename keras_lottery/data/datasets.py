"""The paper's datasets as train/validation/test splits, as numpy arrays or `tf.data`.

MNIST, Fashion-MNIST and CIFAR-10 come from a local copy or TFDS; MNIST-1D is generated locally.
"""

import dataclasses
import gzip
import os
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from keras_lottery import checks

DATA_ENV_VAR = "KERAS_LOTTERY_DATA"
FORMATS = ("numpy", "tf_data")

_IMAGE_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
_IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR_NAMES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
# Local layouts, searched in this order under the data directory.
_LAYOUTS = {
    "mnist": (("mnist.npz", "npz"), ("mnist", "idx")),
    "fashion_mnist": (("fashion_mnist.npz", "npz"), ("fashion-mnist", "idx")),
    "cifar10": (("cifar10.npz", "npz"), ("cifar-10-batches-py", "cifar_pickle")),
}
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# tfds.load(batch_size=-1) batches by the split sizes in the dataset info, which are unknown
# under `tfds.testing.mock_data` (it then batches by sys.maxsize and aborts the process).
_TFDS_BATCH = 10_000


@dataclasses.dataclass(frozen=True)
class Splits:
    """Train, validation and test splits; unpacks as `train, validation, test`.

    Each split is an `(x, y)` tuple of numpy arrays, or a `tf.data.Dataset` of
    `(x, y)` batches when loaded with `format="tf_data"`.
    """

    train: Any
    validation: Any
    test: Any

    def __iter__(self):
        return iter((self.train, self.validation, self.test))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (the MNIST format), gzipped if its name ends in `.gz`.

    Args:
        path: the file, e.g. `train-images-idx3-ubyte.gz`.

    Returns:
        A numpy array with the file's shape, in native byte order.

    Example:

    >>> images = read_idx("fashion-mnist/t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
    >>> images.shape, images.dtype  # doctest: +SKIP
    ((10000, 28, 28), dtype('uint8'))
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES:
        raise ValueError(
            "Expected an IDX file starting with two zero bytes and a type code in "
            f"{[hex(code) for code in _IDX_DTYPES]}. Received: {path} starting with {data[:4]!r}"
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != dtype.itemsize * int(np.prod(shape)):
        raise ValueError(
            f"Expected {int(np.prod(shape))} values of {dtype.name} after the header of shape "
            f"{shape}. Received: {path} with {len(data) - offset} bytes of data"
        )
    return np.frombuffer(data, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def mnist(
    *,
    data_dir: str | os.PathLike | None = None,
    validation_size: int = 5000,
    seed: int | None = 0,
    normalize: bool = True,
    flatten: bool = False,
    format: str = "numpy",
    batch_size: int = 128,
    download: bool = True,
) -> Splits:
    """MNIST: 60,000 training and 10,000 test digits, 28x28 grayscale, 10 classes.

    The data comes from the first source that has it: a local copy under
    `data_dir` (or the directory in the environment variable
    `KERAS_LOTTERY_DATA`): `mnist.npz` in Keras layout (`x_train`, `y_train`,
    `x_test`, `y_test`) or a folder `mnist/` with the four IDX files
    (`train-images-idx3-ubyte.gz`, ...); an explicit `data_dir` may also hold
    the IDX files itself. Otherwise `tfds.load("mnist")`, which downloads once
    into the TFDS data directory (`TFDS_DATA_DIR`). With neither, a
    `FileNotFoundError` says what to put where.

    Args:
        data_dir: directory with a local copy. Defaults to `$KERAS_LOTTERY_DATA`.
        validation_size: training examples held out for validation, in
            [0, 60000). The paper holds out 5,000. Defaults to `5000`.
        seed: seed of the random choice of the validation examples (the rest
            keep their file order) and of the training shuffle with
            `format="tf_data"`. `None` holds out the first `validation_size`
            training examples and shuffles unseeded. Defaults to `0`.
        normalize: float32 images in [0, 1] if `True`, the stored uint8
            values if `False`. Defaults to `True`.
        flatten: images of shape `(N, 784)` instead of `(N, 28, 28, 1)`.
            Defaults to `False`.
        format: `"numpy"` for `(x, y)` arrays, `"tf_data"` for `tf.data.Dataset`s
            of `(x, y)` batches (the training split shuffled each epoch).
            Defaults to `"numpy"`.
        batch_size: batch size with `format="tf_data"`. Defaults to `128`.
        download: let `tfds.load` download when no local copy is found; `False`
            fails at once instead of retrying an unreachable host for minutes.
            Defaults to `True`.

    Returns:
        `Splits(train, validation, test)`; labels are int32 in [0, 10).

    Example:

    >>> train, validation, test = mnist(data_dir="path/to/data")  # doctest: +SKIP
    >>> train[0].shape, validation[0].shape, test[1].dtype  # doctest: +SKIP
    ((55000, 28, 28, 1), (5000, 28, 28, 1), dtype('int32'))
    """
    return _image_splits(
        "mnist", data_dir, validation_size, seed, normalize, False, flatten, format, batch_size,
        download,
    )


def fashion_mnist(
    *,
    data_dir: str | os.PathLike | None = None,
    validation_size: int = 5000,
    seed: int | None = 0,
    normalize: bool = True,
    flatten: bool = False,
    format: str = "numpy",
    batch_size: int = 128,
    download: bool = True,
) -> Splits:
    """Fashion-MNIST: 60,000 training and 10,000 test clothing images, 28x28, 10 classes.

    Sources as for `mnist`, with local layouts `fashion_mnist.npz` (Keras
    layout) or a folder `fashion-mnist/` with the four IDX files (as in the
    Keras cache, `~/.keras/datasets/fashion-mnist/`), then
    `tfds.load("fashion_mnist")`.

    Args:
        data_dir: directory with a local copy. Defaults to `$KERAS_LOTTERY_DATA`.
        validation_size: training examples held out for validation, in
            [0, 60000). Defaults to `5000`.
        seed: seed of the validation hold-out and of the `tf_data` training
            shuffle; `None` holds out the first examples. Defaults to `0`.
        normalize: float32 in [0, 1] if `True`, stored uint8 if `False`.
            Defaults to `True`.
        flatten: images of shape `(N, 784)` instead of `(N, 28, 28, 1)`.
            Defaults to `False`.
        format: `"numpy"` or `"tf_data"`. Defaults to `"numpy"`.
        batch_size: batch size with `format="tf_data"`. Defaults to `128`.
        download: let `tfds.load` download. Defaults to `True`.

    Returns:
        `Splits(train, validation, test)`; labels are int32 in [0, 10).

    Example:

    >>> splits = fashion_mnist(flatten=True, format="tf_data")  # doctest: +SKIP
    >>> model.fit(splits.train, validation_data=splits.validation)  # doctest: +SKIP
    """
    return _image_splits(
        "fashion_mnist", data_dir, validation_size, seed, normalize, False, flatten, format,
        batch_size, download,
    )


def cifar10(
    *,
    data_dir: str | os.PathLike | None = None,
    validation_size: int = 5000,
    seed: int | None = 0,
    normalize: bool = True,
    standardize: bool = False,
    format: str = "numpy",
    batch_size: int = 128,
    download: bool = True,
) -> Splits:
    """CIFAR-10: 50,000 training and 10,000 test color images, 32x32x3, 10 classes.

    Sources as for `mnist`, with local layouts `cifar10.npz` (Keras layout)
    or the python-pickle folder `cifar-10-batches-py/` (`data_batch_1` to
    `data_batch_5`, `test_batch`; as in the Keras cache), then
    `tfds.load("cifar10")`.

    Args:
        data_dir: directory with a local copy. Defaults to `$KERAS_LOTTERY_DATA`.
        validation_size: training examples held out for validation, in
            [0, 50000). Defaults to `5000`.
        seed: seed of the validation hold-out and of the `tf_data` training
            shuffle; `None` holds out the first examples. Defaults to `0`.
        normalize: float32 in [0, 1] if `True`, stored uint8 if `False`.
            Defaults to `True`.
        standardize: also subtract the per-channel mean and divide by the
            per-channel standard deviation, both measured on the training
            split (after the hold-out). Needs `normalize=True`. Defaults to
            `False`.
        format: `"numpy"` or `"tf_data"`. Defaults to `"numpy"`.
        batch_size: batch size with `format="tf_data"`. Defaults to `128`.
        download: let `tfds.load` download. Defaults to `True`.

    Returns:
        `Splits(train, validation, test)` of `(N, 32, 32, 3)` images; labels
        are int32 in [0, 10).

    Example:

    >>> train, validation, test = cifar10(standardize=True)  # doctest: +SKIP
    >>> train[0].mean(axis=(0, 1, 2)).round(6)  # doctest: +SKIP
    array([0., 0., 0.], dtype=float32)
    """
    if standardize and not normalize:
        raise ValueError(
            "Expected `normalize=True` with `standardize=True`. Received: normalize=False"
        )
    return _image_splits(
        "cifar10", data_dir, validation_size, seed, normalize, standardize, False, format,
        batch_size, download,
    )


def mnist1d(
    *,
    data_dir=None,
    validation_size: int = 500,
    seed: int | None = 0,
    format: str = "numpy",
    batch_size: int = 128,
) -> Splits:
    """MNIST-1D (Greydanus 2020), generated locally by the `mnist1d` package.

    `mnist1d.data.make_dataset()` with its default arguments (its own fixed
    seed, so the data is always the same): 4,000 training and 1,000 test
    sequences of length 40, 10 classes, scaled by the package to mean 0 and
    standard deviation 1 over the whole set. Nothing is downloaded. The
    default hold-out keeps the paper's proportion small: 3,500 training,
    500 validation and 1,000 test examples.

    Args:
        data_dir: ignored, since the data is generated; accepted so that
            every loader takes the same arguments.
        validation_size: training examples held out for validation, in
            [0, 4000). Defaults to `500`.
        seed: seed of the validation hold-out and of the `tf_data` training
            shuffle; `None` holds out the first examples. Defaults to `0`.
        format: `"numpy"` or `"tf_data"`. Defaults to `"numpy"`.
        batch_size: batch size with `format="tf_data"`. Defaults to `128`.

    Returns:
        `Splits(train, validation, test)` of float32 `(N, 40)` sequences and
        int32 labels in [0, 10).

    Example:

    >>> train, validation, test = mnist1d()
    >>> train[0].shape, validation[0].shape, test[0].shape
    ((3500, 40), (500, 40), (1000, 40))
    """
    checks.path("data_dir", data_dir, none=True)  # Unused, but refused as everywhere.
    validation_size, seed, format, batch_size = _check_options(
        validation_size, seed, format, batch_size)
    import mnist1d.data

    # make_dataset seeds the global `random` and `np.random`: leave the caller's streams alone.
    states = random.getstate(), np.random.get_state()
    try:
        data = mnist1d.data.make_dataset()
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    x, y = data["x"].astype("float32"), data["y"].astype("int32")
    test = data["x_test"].astype("float32"), data["y_test"].astype("int32")
    train, validation = _hold_out(x, y, validation_size, seed)
    return _as_format(train, validation, test, seed, format, batch_size)


DATASETS: dict[str, Callable[..., Splits]] = {
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "cifar10": cifar10,
    "mnist1d": mnist1d,
}


def _text(name):
    def loader(**kwargs):
        from keras_lottery.data import text  # It imports this module.

        return getattr(text, name)(**kwargs)

    loader.__name__ = name
    loader.__doc__ = f"`keras_lottery.data.text.{name}`: language-modelling splits."
    return loader


# Text for language models (keras_lottery.data.text): token windows and their next tokens.
DATASETS.update({"jargon": _text("jargon"), "tiny_shakespeare": _text("tiny_shakespeare")})


def load(name: str, **kwargs) -> Splits:
    """Loads a dataset by name: `"mnist"`, `"fashion_mnist"`, `"cifar10"`, `"mnist1d"`,
    or text for language models, `"jargon"` and `"tiny_shakespeare"` (`keras_lottery.data.text`).

    Args:
        name: a key of `DATASETS`.
        **kwargs: arguments of that dataset's function, e.g. `validation_size`.

    Returns:
        `Splits(train, validation, test)`, as the dataset's function returns them.

    Example:

    >>> splits = load("mnist1d", validation_size=1000)
    >>> len(splits.train[0]), len(splits.validation[0])
    (3000, 1000)
    """
    checks.choice("name", name, sorted(DATASETS))
    return DATASETS[name](**kwargs)


def _image_splits(name, data_dir, validation_size, seed, normalize, standardize, flatten, format,
                  batch_size, download) -> Splits:
    # Path("") is the working directory, which would be searched for the data.
    checks.path("data_dir", data_dir, none=True)
    validation_size, seed, format, batch_size = _check_options(
        validation_size, seed, format, batch_size)
    x, y, x_test, y_test = _load_images(name, data_dir, download)
    splits = _hold_out(x, y, validation_size, seed) + ((x_test, y_test),)
    if normalize:
        splits = _map_images(lambda x: x.astype("float32") / 255, splits)
    if standardize:
        stats = splits[0][0].mean((0, 1, 2), "float64"), splits[0][0].std((0, 1, 2), "float64")
        mean, std = (stat.astype("float32") for stat in stats)
        splits = _map_images(lambda x: (x - mean) / std, splits)
    if flatten:
        width = int(np.prod(_IMAGE_SHAPES[name]))  # Not -1: an empty validation split has no width.
        splits = _map_images(lambda x: x.reshape(len(x), width), splits)
    return _as_format(*splits, seed, format, batch_size)


def _map_images(function, splits):
    return tuple((function(x), y) for x, y in splits)


def _check_options(validation_size, seed, format, batch_size):
    """The options as kept. `validation_size`'s upper bound is the data's (`_hold_out`)."""
    validation_size = checks.integer("validation_size", validation_size)
    # NumPy's generators take no negative seed.
    seed = checks.integer("seed", seed, 0, none=True)
    format = checks.choice("format", format, FORMATS)
    if format == "tf_data":
        batch_size = checks.integer("batch_size", batch_size, 1)
    return validation_size, seed, format, batch_size


def _hold_out(x, y, validation_size, seed):
    """((x, y) train, (x, y) validation), both in file order: the first `validation_size`
    examples if `seed` is None, else a seeded random choice of them."""
    if not 0 <= validation_size < len(x):
        raise ValueError(
            f"Expected `validation_size` in [0, {len(x)}). "
            f"Received: validation_size={validation_size}"
        )
    held = np.zeros(len(x), bool)
    if seed is None:
        held[:validation_size] = True
    else:
        held[np.random.default_rng(seed).permutation(len(x))[:validation_size]] = True
    return (x[~held], y[~held]), (x[held], y[held])


def _as_format(train, validation, test, seed, format, batch_size) -> Splits:
    if format == "numpy":
        return Splits(train, validation, test)
    import tensorflow as tf

    def batched(split, shuffle):
        dataset = tf.data.Dataset.from_tensor_slices(split)
        if shuffle:
            dataset = dataset.shuffle(len(split[0]), seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    return Splits(batched(train, True), batched(validation, False), batched(test, False))


def _load_images(name, data_dir, download):
    """(x_train, y_train, x_test, y_test): uint8 images `(N, *shape)`, int32 labels."""
    explicit = data_dir is not None
    root = data_dir if explicit else os.environ.get(DATA_ENV_VAR) or None
    root = None if root is None else Path(root)
    arrays, source = _local_copy(name, root, explicit), root
    if arrays is None and root is not None and not root.is_dir():
        # A folder named (here or in the environment) but missing: a typo, not a
        # reason to try the network.
        raise FileNotFoundError(_missing_message(name, root, explicit, None))
    if arrays is None:
        source = f"tfds.load({name!r})"
        try:
            arrays = _tfds_arrays(name, download)
        except Exception as error:  # Offline, tfds fails in many ways: report them all alike.
            raise FileNotFoundError(_missing_message(name, root, explicit, error)) from error
    shape = _IMAGE_SHAPES[name]
    x, y, x_test, y_test = arrays
    if shape[-1] == 1:
        x, x_test = (a[..., None] if a.ndim == 3 else a for a in (x, x_test))
    if (x.shape[1:], x_test.shape[1:], len(y), len(y_test)) != (shape, shape, len(x), len(x_test)):
        raise ValueError(
            f"Expected {_TITLES[name]} images of shape (N, {', '.join(map(str, shape))}) with one "
            f"label each. Received from {source}: x_train {x.shape}, y_train {y.shape}, "
            f"x_test {x_test.shape}, y_test {y_test.shape}"
        )
    return x, y.reshape(-1).astype("int32"), x_test, y_test.reshape(-1).astype("int32")


def _local_copy(name, root, explicit):
    if root is None or not root.is_dir():
        return None
    layouts = _LAYOUTS[name]
    if explicit:  # It may be the dataset's own folder; the env var is shared by all datasets.
        layouts += ((".", layouts[-1][1]),)
    for relative, kind in layouts:
        path = root / relative
        if kind == "npz" and path.is_file():
            with np.load(path) as data:
                return tuple(data[key] for key in ("x_train", "y_train", "x_test", "y_test"))
        if kind == "idx" and all(_idx_file(path, n) for n in _IDX_NAMES):
            return tuple(read_idx(_idx_file(path, n)) for n in _IDX_NAMES)
        if kind == "cifar_pickle" and all((path / n).is_file() for n in _CIFAR_NAMES):
            return _read_cifar_batches(path)
    return None


def _idx_file(folder, name):
    return next((p for p in (folder / f"{name}.gz", folder / name) if p.is_file()), None)


def _read_cifar_batches(folder):
    xs, ys = [], []
    for name in _CIFAR_NAMES:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        xs.append(np.asarray(batch[b"data"], "uint8").reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(batch[b"labels"]))
    return np.concatenate(xs[:-1]), np.concatenate(ys[:-1]), xs[-1], ys[-1]


# Where tfds downloads each data set from: probed first, so that a machine
# without a network is told so in seconds, not after minutes of retries.
_DOWNLOAD_HOSTS = {"mnist": ("storage.googleapis.com", 443),
                   "fashion_mnist": ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80),
                   "cifar10": ("www.cs.toronto.edu", 443)}


def _tfds_arrays(name, download):
    import tensorflow_datasets as tfds

    def load(download):
        return tfds.load(name, split=["train", "test"], as_supervised=True,
                         batch_size=_TFDS_BATCH, download=download)

    try:
        splits = load(download=False)  # A copy tfds prepared before (or a mock).
    except Exception:  # noqa: BLE001 - tfds says "not prepared" in several ways.
        if not download:
            raise
        host = _DOWNLOAD_HOSTS[name]
        if not _reachable(*host):
            raise ConnectionError(
                f"tfds has no prepared copy and {host[0]} cannot be reached within "
                f"{_PROBE_SECONDS} s to download one: this machine looks offline"
            ) from None
        splits = load(download=True)
    arrays = []
    for split in splits:
        batches = list(tfds.as_numpy(split))
        arrays += [np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])]
    return tuple(arrays)


_PROBE_SECONDS = 5


def _reachable(host, port) -> bool:
    """Whether a TCP connection to `host` opens within `_PROBE_SECONDS`
    (name resolution included, which has no timeout of its own)."""
    import socket
    import threading

    result = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=_PROBE_SECONDS).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(_PROBE_SECONDS + 1)
    return bool(result and result[0])


def _missing_message(name, root, explicit, error):
    layouts = []
    for relative, kind in _LAYOUTS[name]:
        if kind == "npz":
            layouts.append(f"{relative} (Keras layout: x_train, y_train, x_test, y_test)")
        elif kind == "idx":
            files = ", ".join(n + ".gz" for n in _IDX_NAMES)
            layouts.append(f"{relative}/ with the IDX files {files}")
        else:
            layouts.append(f"{relative}/ with the python pickles {', '.join(_CIFAR_NAMES)}")
    if root is None:
        searched = f"No local directory was given (`data_dir=None`, {DATA_ENV_VAR} unset)"
    else:
        given = "`data_dir`" if explicit else DATA_ENV_VAR
        state = "" if root.is_dir() else ", which is not a directory"
        searched = f"Searched {given}={str(root)!r}{state}"
    tried = ("" if error is None else f", and `tfds.load({name!r})` failed with "
             f"{type(error).__name__}: {error}")
    if error is None:
        searched += ("" if root is not None and not root.is_dir() else
                     ", which holds none of the layouts below")
        searched += " (tfds was not tried: the folder was named)"
    return (
        f"Could not load {_TITLES[name]}. {searched}{tried}\nTo work offline, put one of\n  "
        + "\n  ".join(layouts)
        + f"\nin a directory and pass it as `data_dir=` or set the environment variable "
        f"{DATA_ENV_VAR} to it."
    )
