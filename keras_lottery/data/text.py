"""Language-modelling data from text: characters (or bytes) as token ids, in sequences.

One rule for every text, a file or a tfds data set: the text is cut into
three contiguous parts (by default the first 90% trains, the next 5%
validates, the last 5% tests: no sequence of one part overlaps another), each
part into non-overlapping windows of `sequence_length` tokens, and each
window's targets are the same tokens one position later. Token ids are
bytes of the UTF-8 encoding (`level="byte"`, 256 ids, any text) or the
text's distinct characters in sorted order (`level="char"`).

`jargon` reads the Jargon File 4.4.7 from a local copy
(`text/jargon.txt.gz` under `data_dir` or `KERAS_LOTTERY_DATA`);
`tiny_shakespeare` reads a local `text/tiny_shakespeare.txt`, else
`tfds.load("tiny_shakespeare")`, whose own train/validation/test texts are
a contiguous 90/5/5 cut too (its boundaries may differ from this module's by
a character); `text_file(path)` reads any UTF-8 file.
"""

import dataclasses
import gzip
import json
import os
from pathlib import Path

import numpy as np

from keras_lottery import checks
from keras_lottery.data.datasets import DATA_ENV_VAR, Splits

LEVELS = ("char", "byte")


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Token ids of a text: its bytes (`level="byte"`) or its characters (`level="char"`).

    Args:
        level: `"byte"` (ids 0-255 of the UTF-8 bytes) or `"char"`.
        symbols: the characters in id order (`"char"` only).
    """

    level: str
    symbols: str = ""

    def __post_init__(self):
        checks.choice("level", self.level, LEVELS)
        if self.level == "byte" and self.symbols:
            raise ValueError(f"Expected no `symbols` for a byte vocabulary (its ids are the 256 "
                             f"byte values). Received {len(self.symbols)} symbols.")
        if self.level == "char" and (not self.symbols or len(set(self.symbols)) != len(
                self.symbols)):
            raise ValueError(
                "Expected `symbols`, the distinct characters in id order, for a character "
                f"vocabulary. Received {len(self.symbols)} characters, "
                f"{len(set(self.symbols))} distinct."
            )

    @classmethod
    def of(cls, text: str, level: str = "char") -> "Vocabulary":
        """The vocabulary of `text`: its sorted distinct characters, or bytes."""
        return cls(level, "".join(sorted(set(text))) if level == "char" else "")

    @property
    def size(self) -> int:
        return 256 if self.level == "byte" else len(self.symbols)

    def encode(self, text: str) -> np.ndarray:
        """int32 ids of `text`; refuses characters the vocabulary lacks."""
        if self.level == "byte":
            return np.frombuffer(text.encode("utf-8"), np.uint8).astype("int32")
        index = {c: i for i, c in enumerate(self.symbols)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ValueError(
                f"Expected text whose characters are all in the vocabulary ({self.size} "
                f"characters). Received {len(unknown)} others: {''.join(unknown[:20])!r}. "
                "Use the vocabulary of the text (`Vocabulary.of`), or level='byte', which "
                "covers any text."
            )
        return np.fromiter((index[c] for c in text), "int32", len(text))

    def decode(self, ids) -> str:
        ids = np.asarray(ids).reshape(-1)
        if self.level == "byte":
            return bytes(ids.astype(np.uint8)).decode("utf-8", errors="replace")
        return "".join(self.symbols[i] for i in ids)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        return cls(**json.loads(text))


@dataclasses.dataclass(frozen=True)
class TextSplits(Splits):
    """`Splits` of `(x, y)` token windows, `(N, sequence_length)` int32 each, and the
    `vocabulary` that made them. Unpacks as `train, validation, test`."""

    vocabulary: Vocabulary = None


def read_text(path) -> str:
    """The text of a UTF-8 file (`.gz` is decompressed); a clear error if it is not one."""
    # Path("") is the working directory: an empty path would name it.
    path = Path(checks.path("path", path))
    if not path.is_file():
        raise FileNotFoundError(f"Expected a text file. Received {str(path)!r}, which is "
                                f"{'a folder' if path.is_dir() else 'missing'}.")
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"Expected a UTF-8 text file. Received {str(path)!r}, whose byte {error.start} "
            f"({data[error.start]:#04x}) is not UTF-8: convert it, e.g. `iconv -t utf-8`."
        ) from None
    if not text:
        raise ValueError(f"Expected a text file with some text. Received {str(path)!r}, "
                         "which is empty.")
    return text


def text_splits(text: str, *, level: str = "char", sequence_length: int = 128,
                validation_fraction: float = 0.05, test_fraction: float = 0.05,
                vocabulary: Vocabulary | None = None, name: str = "text") -> TextSplits:
    """Language-modelling splits of `text` by the module's rule.

    Args:
        text: the whole text.
        level: `"char"` or `"byte"`. Defaults to `"char"`.
        sequence_length: tokens per window. Defaults to `128`.
        validation_fraction, test_fraction: the contiguous parts held out,
            after the training part, in this order. Default to `0.05` each.
        vocabulary: ids to use (a pretrained model's); defaults to the text's own.
        name: what the text is called in errors.

    Returns:
        `TextSplits(train, validation, test, vocabulary)`.
    """
    level, sequence_length, validation_fraction, test_fraction = _check_split_options(
        level, sequence_length, validation_fraction, test_fraction)
    # Rounded down, as tfds cuts tiny_shakespeare.
    cut = int(len(text) * (1 - validation_fraction - test_fraction))
    middle = int(len(text) * (1 - test_fraction))
    return _splits((text[:cut], text[cut:middle], text[middle:]), level, sequence_length,
                   vocabulary, name)


def text_file(path=None, **kwargs) -> TextSplits:
    """`text_splits` of the UTF-8 file at `path` (`.txt` or `.txt.gz`).

    Args:
        path: the file; defaults to the `KERAS_LOTTERY_DATA` environment
            variable when that names a file.
        **kwargs: `text_splits` arguments.
    """
    if path is None:
        path = os.environ.get(DATA_ENV_VAR)
        if not path or not Path(path).is_file():
            raise ValueError(
                f"Expected `path`, or {DATA_ENV_VAR} naming a text file. Received path=None "
                f"and {DATA_ENV_VAR}={path!r}."
            )
    return text_splits(read_text(path), name=str(path), **kwargs)


def jargon(*, data_dir=None, **kwargs) -> TextSplits:
    """The Jargon File 4.4.7 (public domain, 1.7 MB of English prose), from a local copy.

    Looks for `jargon.txt.gz` (or `jargon.txt`) in `data_dir`, its `text/`
    folder, then the same under `KERAS_LOTTERY_DATA`. There is no download:
    the file ships with the Debian package `jargon-text`.

    Args:
        data_dir: a folder holding the file (or its `text/` folder).
        **kwargs: `text_splits` arguments (`level`, `sequence_length`, ...).
    """
    kwargs.pop("validation_size", None)  # The image loaders' argument; fractions here.
    checks.path("data_dir", data_dir, none=True)
    path = _local_text(data_dir, ("jargon.txt.gz", "jargon.txt"))
    if path is None:
        raise FileNotFoundError(
            f"Could not find the Jargon File: put jargon.txt.gz (Debian's jargon-text, "
            f"/usr/share/doc/jargon-text/jargon.txt.gz) in a folder, or its text/ folder, "
            f"and pass it as `data_dir=` or set {DATA_ENV_VAR}. Searched: "
            f"data_dir={data_dir!r}, {DATA_ENV_VAR}={os.environ.get(DATA_ENV_VAR)!r}."
        )
    return text_splits(read_text(path), name="the Jargon File", **kwargs)


def tiny_shakespeare(*, data_dir=None, level: str = "char", sequence_length: int = 128,
                     vocabulary: Vocabulary | None = None, download: bool = True,
                     **kwargs) -> TextSplits:
    """Tiny Shakespeare (Karpathy's char-rnn text, 1.1 MB): a local copy, else tfds.

    A local `tiny_shakespeare.txt` (in `data_dir`, its `text/` folder, or
    under `KERAS_LOTTERY_DATA`) is cut by the module's rule; tfds's
    `tiny_shakespeare` comes already cut the same way (contiguous 90/5/5)
    and its three texts are used as they are.

    Args:
        data_dir: a folder holding `tiny_shakespeare.txt`.
        level, sequence_length, vocabulary: as for `text_splits`.
        download: let tfds download it if it has no prepared copy.
    """
    kwargs.pop("validation_size", None)
    checks.path("data_dir", data_dir, none=True)
    path = _local_text(data_dir, ("tiny_shakespeare.txt", "tiny_shakespeare.txt.gz"))
    if path is not None:
        return text_splits(read_text(path), level=level, sequence_length=sequence_length,
                           vocabulary=vocabulary, name=str(path), **kwargs)
    if kwargs:
        raise ValueError(f"Expected no split fractions for tfds's tiny_shakespeare, which "
                         f"comes split. Received: {sorted(kwargs)}")
    level, sequence_length, _, _ = _check_split_options(level, sequence_length, 0.05, 0.05)
    import tensorflow_datasets as tfds

    try:
        # Unbatched: each split is one example, its whole text (batch_size=-1
        # would batch by split sizes, unknown under tfds.testing.mock_data).
        parts = tfds.load("tiny_shakespeare", split=["train", "validation", "test"],
                          download=download)
    except Exception as error:  # Offline, tfds fails in many ways.
        raise FileNotFoundError(
            f"Could not load tiny_shakespeare: no local tiny_shakespeare.txt (searched "
            f"data_dir={data_dir!r}, {DATA_ENV_VAR}={os.environ.get(DATA_ENV_VAR)!r}) and "
            f"tfds.load failed with {type(error).__name__}: {error}"
        ) from error
    texts = tuple(b"".join(example["text"] for example in tfds.as_numpy(part)).decode("utf-8")
                  for part in parts)
    return _splits(texts, level, sequence_length, vocabulary, "tiny_shakespeare")


def _splits(texts, level, sequence_length, vocabulary, name):
    if not any(texts):
        raise ValueError(f"Expected some text. Received an empty {name}.")
    vocabulary = vocabulary or Vocabulary.of("".join(texts), level)
    if vocabulary.level != level:
        raise ValueError(
            f"Expected a vocabulary of level {level!r}. Received one of level "
            f"{vocabulary.level!r}."
        )
    parts = []
    for part, text in zip(("training", "validation", "test"), texts):
        ids = vocabulary.encode(text)
        windows = (len(ids) - 1) // sequence_length
        if windows < 1:
            raise ValueError(
                f"Expected the {part} part of {name} to hold at least one sequence of "
                f"sequence_length={sequence_length} tokens (and one more for its target). "
                f"Received {len(ids)} tokens: use a longer text, a shorter sequence_length "
                "or a larger fraction."
            )
        used = windows * sequence_length
        parts.append((ids[:used].reshape(windows, sequence_length),
                      ids[1:used + 1].reshape(windows, sequence_length)))
    return TextSplits(*parts, vocabulary=vocabulary)


def _check_split_options(level, sequence_length, validation_fraction, test_fraction):
    """The options as kept: `level`, `sequence_length`, the two fractions."""
    return (checks.choice("level", level, LEVELS),
            checks.integer("sequence_length", sequence_length, 1),
            *(checks.number(key, value, 0, 0.5, low_open=True, high_open=True)
              for key, value in (("validation_fraction", validation_fraction),
                                 ("test_fraction", test_fraction))))


def _local_text(data_dir, names):
    roots = [Path(r) for r in (data_dir, os.environ.get(DATA_ENV_VAR)) if r]
    for root in roots:
        for folder in (root, root / "text"):
            for name in names:
                if (folder / name).is_file():
                    return folder / name
    return None
