"""What every solver of byoldyn returns and checks: `Solution`, the status codes, argument checks."""

from __future__ import annotations

from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .model import _check_finite, _concrete

__all__ = ["Solution", "SUCCEEDED", "DIVERGED", "MAX_STEPS", "FAILED", "STATUS_NAMES", "status_of",
           "check_times", "check_tolerances"]

SUCCEEDED, DIVERGED, MAX_STEPS, FAILED = 0, 1, 2, 3
STATUS_NAMES = ("succeeded", "diverged", "max_steps", "failed")


class Solution(eqx.Module):
    """Result of `simulate`.

    - `ts`: save times, shape (T,).
    - `states`: a `State` with a leading time axis (None when `observe` was given).
    - `observed`: the pytree returned by `observe(t, state)` at each save time (else None).
    - `status`: int, one of `SUCCEEDED`, `DIVERGED`, `MAX_STEPS`, `FAILED`.
    - `t_final`: the time the solve reached; saves after it are NaN.
    - `num_steps`: accepted steps.
    """

    ts: jax.Array
    states: Any  # a State (or the mode-level state) with a leading time axis, or None
    observed: Any
    status: jax.Array
    t_final: jax.Array
    num_steps: jax.Array

    @property
    def succeeded(self) -> jax.Array:
        return self.status == SUCCEEDED

    def status_names(self) -> np.ndarray:
        """The status as strings (same shape as `status`)."""
        return np.asarray(STATUS_NAMES, dtype=object)[np.asarray(self.status)]


def _blown(y, max_norm) -> jax.Array:
    """True if any entry of the pytree `y` is non-finite or larger than `max_norm` in magnitude."""
    leaves = jax.tree.leaves(y)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))
    big = jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in leaves]))
    return ~finite | (big > max_norm)


def status_of(result) -> jax.Array:
    """A diffrax `RESULTS` value as a byoldyn status code (the `Event` on blow-up means DIVERGED)."""
    R = diffrax.RESULTS
    return jnp.where(result == R.successful, SUCCEEDED,
                     jnp.where(result == R.event_occurred, DIVERGED,
                               jnp.where(result == R.max_steps_reached, MAX_STEPS, FAILED))).astype(jnp.int32)


def _mask_after(ts, t_final, tree):
    """NaN for every save time after `t_final` (the solve never got there)."""
    keep = ts <= t_final

    def f(a):
        shape = keep.shape + (1,) * (a.ndim - 1)
        return jnp.where(keep.reshape(shape), a, jnp.nan)

    return jax.tree.map(f, tree)


def check_times(t0, t1, ts, dtype):
    """`ValueError` unless t0 < t1 are finite and `ts` is a non-decreasing 1-D grid in [t0, t1].

    **Returns:** `(t0, t1, ts)` as arrays of `dtype`; `ts` defaults to 101 evenly spaced points.
    """
    t0, t1 = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
    _check_finite("t1", t1)
    if _concrete(t1) and _concrete(t0) and not float(t1) > float(t0):
        raise ValueError(f"t1 must be > t0 = {float(t0)}, got {float(t1)}")
    ts = jnp.linspace(t0, t1, 101) if ts is None else jnp.asarray(ts, dtype)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"ts must be a non-empty 1-D array of times, got shape {ts.shape}")
    if _concrete(ts) and _concrete(t1) and _concrete(t0):
        v = np.asarray(ts, np.float64)
        if np.any(np.diff(v) < 0) or v[0] < float(t0) or v[-1] > float(t1) * (1 + 1e-12):
            raise ValueError(f"ts must be non-decreasing within [t0, t1] = [{float(t0)}, {float(t1)}]")
    return t0, t1, ts


def check_tolerances(rtol, atol, max_steps) -> None:
    """`ValueError` unless rtol, atol > 0 and max_steps is a positive integer."""
    if not (float(rtol) > 0 and float(atol) > 0):
        raise ValueError(f"rtol and atol must be > 0, got rtol={rtol!r}, atol={atol!r}")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
