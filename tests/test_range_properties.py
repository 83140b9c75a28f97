"""Property-based tests of the `byoldyn sweep` value parser (`parse_range`, `parse_int_range`): valid texts give
exactly numpy's values; anything else raises `argparse.ArgumentTypeError` naming the text, never another type."""

import argparse

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byoldyn.cli.ranges import MAX_VALUES, parse_int_range, parse_range

SETTINGS = settings(max_examples=50, deadline=None)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)
positive = st.floats(min_value=1e-300, max_value=1e300)
count = st.integers(1, 40)


def _expect(text, values):
    """`parse_range(text)` equals `values` exactly, or (non-finite or repeated values) is refused naming the text."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)) or len(np.unique(values)) != len(values):
        with pytest.raises(argparse.ArgumentTypeError) as e:
            parse_range(text)
        assert repr(text) in str(e.value)
        return
    got = parse_range(text)
    if len(values) == 1:
        assert type(got) is float and got == values[0]
    else:
        assert type(got) is list and all(type(x) is float for x in got)
        np.testing.assert_array_equal(np.asarray(got), values)


@SETTINGS
@given(st.lists(finite, min_size=1, max_size=8))
def test_value_and_list(xs):
    _expect(",".join(repr(x) for x in xs), xs)


@SETTINGS
@given(finite, finite, count)
def test_linear_range(a, b, n):
    with np.errstate(all="ignore"):
        want = np.linspace(a, b, n)
    _expect(f"{a!r}:{b!r}:{n}", want)


@SETTINGS
@given(positive, positive, count)
def test_log_range(a, b, n):
    _expect(f"log:{a!r}:{b!r}:{n}", np.geomspace(a, b, n))


@SETTINGS
@given(st.integers(1, 10_000), st.integers(1, 10_000), count)
def test_int_range(a, b, n):
    text = f"{a}:{b}:{n}"
    want = np.round(np.linspace(float(a), float(b), n)).astype(int)
    if len(set(want.tolist())) != n:
        with pytest.raises(argparse.ArgumentTypeError, match="duplicate values"):
            parse_int_range(text)
        return
    got = parse_int_range(text)
    assert (got == int(want[0]) if n == 1 else got == want.tolist())


@SETTINGS
@given(st.lists(st.integers(-5, 50), min_size=1, max_size=6))
def test_int_list(xs):
    text = ",".join(map(str, xs))
    if min(xs) < 1 or len(set(xs)) != len(xs):
        with pytest.raises(argparse.ArgumentTypeError) as e:
            parse_int_range(text)
        assert repr(text) in str(e.value)
    else:
        assert parse_int_range(text) == (xs[0] if len(xs) == 1 else xs)


@SETTINGS
@given(st.integers(MAX_VALUES + 1, 10 ** 30), st.sampled_from(["0:1:{}", "log:1:2:{}"]))
def test_counts_above_the_bound_are_refused_at_once(n, form):
    text = form.format(n)
    with pytest.raises(argparse.ArgumentTypeError, match=f"the count in {text!r} is above {MAX_VALUES}"):
        parse_range(text)


_pieces = st.sampled_from(["log:", ":", ",", "-", ".", "e", "1", "0", "nan", "inf", " ", "x", "_", "+", "\x00", "é"])


@SETTINGS
@given(st.one_of(st.text(max_size=20), st.lists(_pieces, max_size=10).map("".join)))
def test_garbage_raises_argument_type_error_naming_the_text(text):
    for parse in (parse_range, parse_int_range):
        try:
            v = parse(text)
        except argparse.ArgumentTypeError as e:  # the only exception type: argparse turns it into one line
            assert repr(text) in str(e) or repr(text[:40]) in str(e), (text, str(e))
        else:  # the text happened to be valid: finite, distinct values
            vals = np.atleast_1d(np.asarray(v, dtype=float))
            assert np.all(np.isfinite(vals)) and len(np.unique(vals)) == len(vals)
