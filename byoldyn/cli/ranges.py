"""The values of a swept flag (`byoldyn sweep`):

- `a` one value; `a,b,c` a list;
- `a:b:n` n evenly spaced values from a to b inclusive (`numpy.linspace`);
- `log:a:b:n` n log-spaced values from a to b inclusive (`numpy.geomspace`, a, b > 0).

At most `MAX_VALUES` values per flag, all distinct; negative values (`--eta -1:0:2`) are read as values
(`byoldyn.cli.common.Parser`). Every error is an `argparse.ArgumentTypeError` naming the text.
"""

from __future__ import annotations

import argparse

import numpy as np

from .common import positive_int

__all__ = ["MAX_VALUES", "parse_range", "parse_int_range", "parse_seeds"]

MAX_VALUES = 1_000_000  # values one flag may sweep (checked from the count, before any array is built)


def _bad(text: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"not a value, list or range: {text!r} (use a, a,b,c, a:b:n or log:a:b:n)")


def _count(part: str, text: str) -> int:
    try:
        n = int(part)
    except ValueError:
        raise _bad(text) from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"the count in {text!r} must be a positive integer")
    if n > MAX_VALUES:
        raise argparse.ArgumentTypeError(f"the count in {text!r} is above {MAX_VALUES}, the most values one flag "
                                         "may sweep")
    return n


def _values(text: str) -> np.ndarray:
    """The values of `text` as a 1-D float array (before the finiteness and duplicate checks)."""
    s = text.strip()
    log = s.startswith("log:")
    if log or ":" in s:
        parts = (s[4:] if log else s).split(":")
        if len(parts) != 3:
            raise _bad(text)
        try:
            a, b = float(parts[0]), float(parts[1])
        except ValueError:
            raise _bad(text) from None
        n = _count(parts[2], text)
        if not (np.isfinite(a) and np.isfinite(b)):
            raise argparse.ArgumentTypeError(f"values must be finite, got {text!r}")
        if log and not (a > 0 and b > 0):
            raise argparse.ArgumentTypeError(f"log range {text!r} needs both ends > 0")
        with np.errstate(all="ignore"):
            return np.geomspace(a, b, n) if log else np.linspace(a, b, n)
    items = s.split(",")
    if len(items) > MAX_VALUES:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}... lists {len(items)} values, above {MAX_VALUES}, the most "
                                         "values one flag may sweep")
    try:
        return np.array([float(x) for x in items], dtype=np.float64)
    except ValueError:
        raise _bad(text) from None


def parse_range(text: str) -> float | list[float]:
    """A flag value as a number or a list: `a`, `a,b,c`, `a:b:n` (linspace) or `log:a:b:n` (geomspace).

    At most `MAX_VALUES` values, finite and distinct; every error is an `argparse.ArgumentTypeError` naming the text.
    """
    v = _values(text)
    if not np.all(np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"values must be finite, got {text!r}")
    if len(np.unique(v)) != len(v):
        raise argparse.ArgumentTypeError(f"duplicate values in {text!r}: every swept value must be distinct")
    return [float(x) for x in v] if len(v) > 1 else float(v[0])


def _int_values(text: str, lo: int, hi: float, kind: str) -> int | list[int]:
    v = parse_range(text)
    vals = np.atleast_1d(np.asarray(v, dtype=float))
    r = np.round(vals)
    if (":" not in text and np.any(r != vals)) or np.any(r < lo) or np.any(r >= hi):
        raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}")
    out = [int(x) for x in r]
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"duplicate values in {text!r} (after rounding to integers): every swept "
                                         "value must be distinct")
    return out[0] if len(out) == 1 and not isinstance(v, list) else out


def parse_int_range(text: str) -> int | list[int]:
    """Like `parse_range`, for integer flags (widths): positive integers; a range's values are rounded and must
    stay distinct (`8,8` or `1:2:4` is refused, not deduplicated)."""
    return _int_values(text, 1, float("inf"), "positive integers")


def parse_seeds(text: str) -> int | list[int]:
    """`--seeds 8` (seeds 0..7) or `--seeds 3,7,11` / `--seeds 0:30:4` (these seeds: distinct, in [0, 2**32))."""
    if "," in text or ":" in text:
        v = _int_values(text, 0, 2 ** 32, "integer seeds in [0, 2**32)")
        return v if isinstance(v, list) else [v]
    return positive_int(text)
