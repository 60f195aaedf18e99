"""keras_lottery.checks: one answer for every argument of a kind, NumPy scalars included."""

import json
import pathlib

import numpy as np
import pytest

from keras_lottery import checks


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), np.uint8(3)])
def test_integers_of_any_kind_come_back_as_python_ints(value):
    kept = checks.integer("rounds", value, 1)
    assert kept == 3 and type(kept) is int
    json.dumps(kept)  # A NumPy integer would not serialize.


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 3.0, np.float64(3), "3", None,
                                   [3]])
def test_an_integer_is_not_a_bool_a_float_or_text(value):
    with pytest.raises(ValueError) as raised:
        checks.integer("rounds", value)
    assert str(raised.value) == f"Expected `rounds` an integer. Received: rounds={value!r}"


@pytest.mark.parametrize("minimum, maximum, value, expected", [
    (1, None, 0, "an integer >= 1. Received: rounds=0"),
    (None, 2, 3, "an integer <= 2. Received: rounds=3"),
    (0, 2, np.int64(-1), "an integer in [0, 2]. Received: rounds=-1"),
])
def test_integer_bounds_are_inclusive_and_named(minimum, maximum, value, expected):
    with pytest.raises(ValueError) as raised:
        checks.integer("rounds", value, minimum, maximum)
    assert str(raised.value) == f"Expected `rounds` {expected}"
    for bound in (minimum, maximum):
        if bound is not None:
            assert checks.integer("rounds", np.int64(bound), minimum, maximum) == bound


def test_an_optional_integer_takes_none_and_says_so():
    assert checks.integer("eval_every", None, 1, none=True) is None
    assert checks.integer("eval_every", np.int16(5), 1, none=True) == 5
    with pytest.raises(ValueError) as raised:
        checks.integer("eval_every", 0, 1, none=True)
    assert str(raised.value) == ("Expected `eval_every` an integer >= 1 or None. "
                                 "Received: eval_every=0")
    with pytest.raises(ValueError, match="an integer. Received: rounds=None"):
        checks.integer("rounds", None)


def test_integers_come_back_as_a_tuple_of_python_ints():
    kept = checks.integers("hidden", [np.int64(300), 100], 1)
    assert kept == (300, 100) and all(type(u) is int for u in kept)
    assert checks.integers("hidden", (u for u in (4, 5))) == (4, 5)
    for bad in ([], (300, True), (300, 0), (2.0,), "300", 300, None):
        with pytest.raises(ValueError) as raised:
            checks.integers("hidden", bad, 1)
        assert str(raised.value).startswith(
            "Expected `hidden` a non-empty list of integers >= 1. Received: hidden=")


@pytest.mark.parametrize("value", [0.25, np.float32(0.25), np.float64(0.25), np.float16(0.25)])
def test_numbers_of_any_kind_come_back_as_python_floats(value):
    kept = checks.number("rate", value, 0, 1)
    assert kept == 0.25 and type(kept) is float
    json.dumps(kept)


def test_an_integer_is_a_number_but_a_bool_is_not():
    assert type(checks.number("x", np.int64(2))) is float
    for value in (True, np.bool_(False), "0.5", None, float("nan"), float("inf"),
                  np.float32("-inf")):
        with pytest.raises(ValueError) as raised:
            checks.number("x", value)
        assert str(raised.value) == f"Expected `x` a finite number. Received: x={value!r}"


@pytest.mark.parametrize("bounds, inside, outside, where", [
    (dict(low=0, high=1), [0, 0.5, 1], [-0.1, 1.5], "in [0, 1]"),
    (dict(low=0, high=1, low_open=True, high_open=True), [0.5], [0, 1], "in (0, 1)"),
    (dict(low=0, high=0.5, low_open=True, high_open=True), [0.25], [0.5], "in (0, 0.5)"),
    (dict(low=0, low_open=True), [1e-9, 1e9], [0, -1], "> 0"),
    (dict(low=1), [1, 2], [0.5], ">= 1"),
    (dict(high=1, high_open=True), [-5, 0.5], [1], "< 1"),
    (dict(high=1), [1], [1.5], "<= 1"),
])
def test_number_intervals(bounds, inside, outside, where):
    for value in inside:
        assert checks.number("x", value, **bounds) == value
    for value in outside:
        with pytest.raises(ValueError) as raised:
            checks.number("x", value, **bounds)
        assert str(raised.value) == f"Expected `x` {where}. Received: x={value!r}"
    with pytest.raises(ValueError) as raised:
        checks.number("x", "a", **bounds)
    assert str(raised.value) == f"Expected `x` a finite number {where}. Received: x='a'"


def test_fractions_and_positive_numbers():
    assert checks.fraction("density", 0.5) == 0.5
    for value in (0, 1):
        with pytest.raises(ValueError, match=r"Expected `density` in \(0, 1\)\. Received"):
            checks.fraction("density", value)
    assert checks.fraction("rate", 0, zero=True) == 0.0
    with pytest.raises(ValueError, match=r"Expected `rate` in \[0, 1\)\. Received: rate=1"):
        checks.fraction("rate", 1, zero=True)
    assert checks.fraction("density", np.float32(1), one=True) == 1.0
    assert checks.positive("learning_rate", np.float64(0.1)) == 0.1
    with pytest.raises(ValueError) as raised:
        checks.positive("learning_rate", -0.1)
    assert str(raised.value) == "Expected `learning_rate` > 0. Received: learning_rate=-0.1"


def test_booleans_are_only_true_and_false():
    assert checks.boolean("stop", True) is True
    kept = checks.boolean("stop", np.bool_(False))
    assert kept is False
    for value in (0, 1, "yes", None, np.int64(1)):
        with pytest.raises(ValueError) as raised:
            checks.boolean("stop", value)
        assert str(raised.value) == f"Expected `stop` True or False. Received: stop={value!r}"


def test_choice_is_exact_and_names_the_choices():
    assert checks.choice("budget", "erk", ("uniform", "erk")) == "erk"
    for value in ("ERK", "er", None, ["erk"], np.array(["erk", "erk"])):
        with pytest.raises(ValueError) as raised:
            checks.choice("budget", value, ("uniform", "erk"))
        assert str(raised.value) == (f"Expected `budget` among 'uniform', 'erk'. "
                                     f"Received: budget={value!r}")
    assert checks.choice("initial_weights", None, (None, "current")) is None


def test_choices():
    assert checks.choices("controls", "random", ("random", "inverted")) == ("random",)
    assert checks.choices("controls", ["inverted", "random"], ("random", "inverted")) == (
        "inverted", "random")
    with pytest.raises(ValueError, match=r"Received unknown \['shuffle'\] in controls="):
        checks.choices("controls", ["random", "shuffle"], ("random", "inverted"))
    with pytest.raises(ValueError, match=r"without repeats. Received: controls=\['random', "):
        checks.choices("controls", ["random", "random"], ("random", "inverted"))
    with pytest.raises(ValueError, match=r"a list of 'random'. Received: controls=3"):
        checks.choices("controls", 3, ("random",))


def test_paths_are_not_empty():
    assert checks.path("out", "run") == "run"
    assert checks.path("out", pathlib.Path("run")) == pathlib.Path("run")
    assert checks.path("data_dir", None, none=True) is None
    for value in ("", "  ", None, 3):
        with pytest.raises(ValueError) as raised:
            checks.path("out", value)
        assert str(raised.value) == ("Expected `out` a path (a string or pathlib.Path, not "
                                     f"empty). Received: out={value!r}")
    with pytest.raises(ValueError, match=r"not empty, or None\)\. Received: data_dir=''"):
        checks.path("data_dir", "", none=True)


def test_verbose():
    assert checks.verbose(np.int8(2)) == 2
    with pytest.raises(ValueError, match=r"Expected `verbose` an integer in \[0, 2\]. "
                                         r"Received: verbose=3"):
        checks.verbose(3)
    with pytest.raises(ValueError, match=r"Received: quiet=True"):
        checks.verbose(True, "quiet")
