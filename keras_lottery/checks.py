"""Argument checkers: where every bad argument is named and refused.

Each raises `ValueError` saying the argument's name, what was expected and
what was received (`Expected `rounds` an integer >= 1. Received: rounds=0`),
and returns the value as the caller should keep it (NumPy scalars as Python
numbers, so that they reach JSON files and configs as numbers). One answer
for NumPy scalars everywhere: `np.int64(3)` is an integer, `np.float32(0.5)`
a number; `True` is neither. Nothing here imports Keras.
"""

import math
import numbers
import os


def integer(name, value, minimum=None, maximum=None, *, none=False):
    """`value` as an `int`: an integer (NumPy's too, never a bool) in [minimum, maximum].

    `none`: None is accepted too, and returned as it is (an optional count).
    """
    if none and value is None:
        return None
    expected = f"an integer{_range(minimum, maximum)}{' or None' if none else ''}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"Expected `{name}` {expected}. Received: {name}={value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"Expected `{name}` {expected}. Received: {name}={value!r}")
    return value


def integers(name, values, minimum=None, maximum=None):
    """A non-empty sequence of integers in [minimum, maximum] (see `integer`), as a tuple."""
    expected = f"a non-empty list of integers{_range(minimum, maximum)}"
    # A string is a sequence too, but of characters: never a list of counts.
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"Expected `{name}` {expected}. Received: {name}={values!r}")
    values = tuple(values)
    try:
        checked = tuple(integer(name, v, minimum, maximum) for v in values)
    except ValueError:
        checked = ()
    if not checked:
        raise ValueError(f"Expected `{name}` {expected}. Received: {name}={values!r}")
    return checked


def number(name, value, low=None, high=None, *, low_open=False, high_open=False):
    """`value` as a finite `float` in the interval given (`low_open`: `low` excluded)."""
    where = _interval(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(
            float(value)):
        raise ValueError(f"Expected `{name}` a finite number{' ' + where if where else ''}. "
                         f"Received: {name}={value!r}")
    received, value = value, float(value)
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        raise ValueError(f"Expected `{name}` {where}. Received: {name}={received!r}")
    return value


def fraction(name, value, *, zero=False, one=False):
    """A number in (0, 1), with 0 and 1 allowed where `zero` and `one` say."""
    return number(name, value, 0, 1, low_open=not zero, high_open=not one)


def positive(name, value):
    """A finite number > 0."""
    return number(name, value, 0, None, low_open=True)


def boolean(name, value):
    """`True` or `False` (NumPy's bool too); never 0, 1 or a string."""
    # NumPy's bool, without importing NumPy: `numpy.bool_`, named `bool` from NumPy 2.
    if type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):
        return bool(value)
    if not isinstance(value, bool):
        raise ValueError(f"Expected `{name}` True or False. Received: {name}={value!r}")
    return value


def choice(name, value, choices):
    """One of `choices` (a string's case and spelling exact)."""
    choices = tuple(choices)
    # By identity or as equal strings: `value == c` on an array would not be one bool.
    if not any(value is c or (isinstance(value, str) and value == c) for c in choices):
        raise ValueError(f"Expected `{name}` among {_listed(choices)}. "
                         f"Received: {name}={value!r}")
    return value


def choices(name, values, allowed):
    """A tuple of distinct members of `allowed`; one string counts as one member."""
    values = (values,) if isinstance(values, str) else values
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"Expected `{name}` a list of {_listed(allowed)}. "
                         f"Received: {name}={values!r}") from None
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"Expected `{name}` among {_listed(allowed)}. "
                         f"Received unknown {unknown} in {name}={list(values)!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"Expected `{name}` without repeats. Received: {name}={list(values)!r}")
    return values


def path(name, value, *, none=False):
    """A file-system path (a string or `os.PathLike`), not empty (`Path("")` is the
    working directory, which no one means by it). `none`: None is accepted too."""
    if none and value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value).strip():
        raise ValueError(f"Expected `{name}` a path (a string or pathlib.Path, not empty"
                         f"{', or None' if none else ''}). Received: {name}={value!r}")
    return value


def verbose(value, name="verbose"):
    """Keras' verbosity: 0, 1 or 2."""
    return integer(name, value, 0, 2)


def _range(minimum, maximum):
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def _interval(low, high, low_open, high_open):
    """"in [0, 1)" for both bounds; "> 0" or "<= 1" for one (as the messages read)."""
    if low is None and high is None:
        return ""
    if high is None:
        return f"{'>' if low_open else '>='} {_short(low)}"
    if low is None:
        return f"{'<' if high_open else '<='} {_short(high)}"
    return (f"in {'(' if low_open else '['}{_short(low)}, "
            f"{_short(high)}{')' if high_open else ']'}")


def _short(x):
    return int(x) if float(x).is_integer() else x


def _listed(values):
    return ", ".join(repr(v) for v in values)
