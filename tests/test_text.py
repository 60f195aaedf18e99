"""Language-modelling text: the split rule, vocabularies, local copies, tfds, bad files."""

import gzip
import pathlib

import numpy as np
import pytest

from keras_lottery.data import datasets, text

JARGON = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def test_windows_targets_and_contiguous_parts():
    source = "abcdefghij" * 20  # 200 characters
    splits = text.text_splits(source, sequence_length=8, validation_fraction=0.1,
                              test_fraction=0.1)
    vocabulary = splits.vocabulary
    assert vocabulary.symbols == "abcdefghij" and vocabulary.size == 10
    (x, y), (xv, yv), (xt, yt) = splits
    assert x.dtype == y.dtype == np.int32 and x.shape == (19, 8)  # 160 chars: (160 - 1) // 8
    assert xv.shape == xt.shape == (2, 8)  # 20 chars each
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])  # Targets: one position later.
    np.testing.assert_array_equal(y[:-1, -1], x[1:, 0])
    assert vocabulary.decode(x[0]) == "abcdefgh"
    assert vocabulary.decode(xv[0]) == source[160:168]  # The part right after training.
    assert vocabulary.decode(xt[0]) == source[180:188]


def test_byte_level_and_vocabulary_round_trip():
    source = "naïve café " * 30
    splits = text.text_splits(source, level="byte", sequence_length=16)
    assert splits.vocabulary.size == 256
    assert splits.train[0].max() >= 0xC3  # UTF-8 lead byte of ï and é
    chars = text.Vocabulary.of(source)
    assert text.Vocabulary.from_json(chars.to_json()) == chars
    assert chars.decode(chars.encode(source)) == source
    with pytest.raises(ValueError, match=r"2 others: 'xz'.*level='byte'"):
        chars.encode("xz naïve")
    with pytest.raises(ValueError, match="vocabulary of level 'char'. Received one of level "
                                         "'byte'"):
        text.text_splits(source, vocabulary=text.Vocabulary("byte"))
    with pytest.raises(ValueError, match="no `symbols` for a byte vocabulary"):
        text.Vocabulary("byte", symbols="abc")


def test_bad_text_and_settings(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="with some text.*which is empty"):
        text.text_file(empty)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"UTF-8 text file.*byte 3 \(0xe9\)"):
        text.text_file(latin1)
    short = tmp_path / "short.txt.gz"
    short.write_bytes(gzip.compress(b"a short text, but a text"))
    with pytest.raises(ValueError, match=r"training part .*sequence_length=128.*Received 21 tokens"):
        text.text_file(short)
    with pytest.raises(FileNotFoundError, match="missing"):
        text.text_file(tmp_path / "nothing.txt")
    for settings, match in (({"level": "word"}, "`level`"),
                            ({"sequence_length": 0}, "`sequence_length`"),
                            ({"validation_fraction": 0.6}, "`validation_fraction`")):
        with pytest.raises(ValueError, match=match):
            text.text_splits("x" * 1000, **settings)


def test_text_file_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "t.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(path))
    assert text.text_file(sequence_length=16).train[0].shape[1] == 16
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(tmp_path))
    with pytest.raises(ValueError, match="Expected `path`, or KERAS_LOTTERY_DATA naming a text"):
        text.text_file()


@pytest.mark.skipif(not (JARGON / "text" / "jargon.txt.gz").exists(),
                    reason=f"offline data not found at {JARGON}")
def test_jargon_from_the_shared_copy():
    splits = datasets.load("jargon", data_dir=JARGON, sequence_length=64)
    (x, y), (xv, _), (xt, _) = splits
    whole = text.read_text(JARGON / "text" / "jargon.txt.gz")
    assert splits.vocabulary == text.Vocabulary.of(whole)  # 155 characters, some not ASCII
    total = len(whole)
    cut, middle = int(total * 0.9), int(total * 0.95)  # Rounded down, as tfds cuts.
    assert x.shape[0] == (cut - 1) // 64
    assert xv.shape[0] == (middle - cut - 1) // 64 and xt.shape[0] == (total - middle - 1) // 64
    assert "Jargon File" in splits.vocabulary.decode(x[:2])


def test_jargon_missing_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.DATA_ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match="jargon.txt.gz.*data_dir="):
        text.jargon(data_dir=tmp_path)


def test_tiny_shakespeare_local_copy_and_tfds(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.DATA_ENV_VAR, raising=False)
    (tmp_path / "text").mkdir()
    play = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n" * 60
    (tmp_path / "text" / "tiny_shakespeare.txt").write_text(play)
    local = datasets.load("tiny_shakespeare", data_dir=tmp_path, sequence_length=32)
    assert local.vocabulary == text.Vocabulary.of(play)
    import tensorflow_datasets as tfds

    # Without a local copy, the path real users take: tfds, mocked (no network here).
    with tfds.testing.mock_data(num_examples=1):
        splits = text.tiny_shakespeare(data_dir=tmp_path / "elsewhere", sequence_length=4,
                                       level="byte")
    for x, y in splits:
        assert x.ndim == 2 and x.shape[1] == 4 and np.array_equal(x[:, 1:], y[:, :-1])
