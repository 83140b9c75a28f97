"""What every solver of byoldyn returns and checks: `Solution`, the status codes, argument checks."""

from __future__ import annotations

import numbers
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .validate import brief, is_concrete, precision_hint, to_dtype

__all__ = ["Solution", "SUCCEEDED", "DIVERGED", "MAX_STEPS", "FAILED", "NO_STEP", "STATUS_NAMES", "status_of",
           "check_times", "check_tolerances", "check_number", "check_count", "finite_rms_norm", "grid_steps"]

# one assignment per status code, each with its docstring, so that the API reference lists them
SUCCEEDED = 0
"""Status: the member reached t1."""
DIVERGED = 1
"""Status: the state became non-finite or exceeded `max_norm`; the member stopped there (saves after it are NaN)."""
MAX_STEPS = 2
"""Status: the adaptive solver used `max_steps` steps before t1."""
FAILED = 3
"""Status: the solver failed otherwise."""
NO_STEP = 4
"""Status: the adaptive solver accepted no step at all (the first step and every smaller retry were rejected,
e.g. the vector field overflows at the initial state), so the solve never left t0."""
STATUS_NAMES = ("succeeded", "diverged", "max_steps", "failed", "no_step_accepted")


class Solution(eqx.Module):
    """Result of `simulate`.

    - `ts`: save times, shape (T,).
    - `states`: a `State` with a leading time axis (None when `observe` was given).
    - `observed`: the pytree returned by `observe(t, state)` at each save time (else None).
    - `status`: int, one of `SUCCEEDED`, `DIVERGED`, `MAX_STEPS`, `FAILED`, `NO_STEP` (names in `STATUS_NAMES`).
    - `t_final`: the time the solve reached; saves after it are NaN (never reached), and a save is never
      `inf`: a non-finite saved value is NaN.
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


def finite_rms_norm(tree) -> jax.Array:
    """diffrax's default RMS error norm, but `inf` where it would be NaN.

    A step that overflows (float32, a stiff start) gives a NaN error estimate; diffrax's PID controller
    then computes a NaN step size and rejects every later step until `max_steps`. As `inf` the step is
    rejected and the next one is `factormin` (0.2) times smaller, as for any failed step. Identical to
    the default wherever the norm is not NaN.
    """
    n = optx.rms_norm(tree)
    return jnp.where(jnp.isnan(n), jnp.inf, n)


def status_of(result, num_accepted=None) -> jax.Array:
    """A diffrax `RESULTS` value as a byoldyn status code (the `Event` on blow-up means DIVERGED).

    With `num_accepted` (the solve's accepted steps), a solve that stopped without accepting a single
    step is `NO_STEP` rather than `MAX_STEPS` or `FAILED`.
    """
    R = diffrax.RESULTS
    status = jnp.where(result == R.successful, SUCCEEDED,
                       jnp.where(result == R.event_occurred, DIVERGED,
                                 jnp.where(result == R.max_steps_reached, MAX_STEPS, FAILED)))
    if num_accepted is not None:
        status = jnp.where((status >= MAX_STEPS) & (num_accepted == 0), NO_STEP, status)
    return status.astype(jnp.int32)


def check_number(name: str, v, *, positive: bool = False, finite: bool = True) -> float:
    """A concrete real scalar as a Python float, else `ValueError` naming `name` and the value.

    Accepts Python and NumPy real numbers and 0-d real arrays; refuses strings, None, bools,
    sequences and arrays with more than one element. `positive`: > 0; `finite`: not inf/NaN.
    """
    ok = isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
    if not ok and isinstance(v, (np.ndarray, np.generic, jax.Array)) and is_concrete(v):
        ok = np.shape(v) == () and np.issubdtype(np.asarray(v).dtype, np.number) \
            and not np.issubdtype(np.asarray(v).dtype, np.complexfloating)
    if not ok:
        raise ValueError(f"{name} must be a real number, got {brief(v)}")
    x = float(v)
    if positive and not (x > 0 and (np.isfinite(x) or not finite)):
        raise ValueError(f"{name} must be {'a finite number > 0' if finite else '> 0'}, got {x!r}")
    if np.isnan(x) or (finite and not np.isfinite(x)):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return x


def check_count(name: str, v) -> int:
    """A positive integer (Python or NumPy int, or an integral float such as 1e5), else `ValueError`."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, float, np.floating)) \
            or not np.isfinite(v) or v != int(v) or v < 1:  # type: ignore[arg-type]  # numpy's stubs omit Integral
        raise ValueError(f"{name} must be a positive integer, got {brief(v)}")
    return int(v)


def _time(name: str, v, dtype):
    """t0 or t1: a real scalar (or a scalar tracer) as a `dtype` array."""
    if not is_concrete(v):
        if np.shape(v) != ():
            raise ValueError(f"{name} must be a scalar, got shape {np.shape(v)}")
        return jnp.asarray(v, dtype)
    check_number(name, v)
    return to_dtype(name, v, dtype)


def check_times(t0, t1, ts, dtype) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`ValueError` naming `t0`, `t1` or `ts` unless t0 < t1 are finite real numbers and `ts` is a
    non-empty, finite, non-decreasing 1-D array in [t0, t1].

    Save times outside [t0, t1] by no more than the rounding of `dtype` (4 ulps of the largest time)
    are moved onto the end points; in `dtype` they must not overflow.

    **Returns:** `(t0, t1, ts)` as arrays of `dtype`; `ts` defaults to 101 evenly spaced points.
    """
    t0, t1 = _time("t0", t0, dtype), _time("t1", t1, dtype)
    concrete = is_concrete(t0) and is_concrete(t1)
    if concrete and not float(t1) > float(t0):
        raise ValueError(f"t1 must be > t0 = {float(t0)}, got {float(t1)}")
    if ts is None:
        return t0, t1, jnp.linspace(t0, t1, 101)
    if not is_concrete(ts):
        if np.ndim(ts) != 1 or np.shape(ts)[0] < 1:
            raise ValueError(f"ts must be a non-empty 1-D array of times, got shape {np.shape(ts)}")
        return t0, t1, jnp.asarray(ts, dtype)
    if isinstance(ts, (str, bytes)):
        raise ValueError(f"ts must be a 1-D array of save times, got {brief(ts)}")
    try:
        v = np.asarray(ts)
    except (TypeError, ValueError):
        raise ValueError(f"ts must be a 1-D array of save times, got {brief(ts)}") from None
    if not np.issubdtype(v.dtype, np.number) or np.issubdtype(v.dtype, np.complexfloating):
        raise ValueError(f"ts must be a 1-D array of real save times, got {brief(ts)}")
    if v.ndim != 1 or v.shape[0] < 1:
        raise ValueError(f"ts must be a non-empty 1-D array of times, got shape {v.shape}")
    v = v.astype(np.float64)
    bad = ~np.isfinite(v)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(f"ts must be finite, got ts[{i}] = {float(v[i])!r}")
    if np.any(np.diff(v) < 0):
        i = int(np.argmax(np.diff(v) < 0))
        raise ValueError(f"ts must be non-decreasing, got ts[{i + 1}] = {float(v[i + 1])!r} after ts[{i}] = {float(v[i])!r}")
    if concrete:
        lo, hi = float(t0), float(t1)
        tol = 4 * np.finfo(dtype).eps * max(abs(lo), abs(hi))
        for i in (0, -1):
            if not lo - tol <= v[i] <= hi + tol:
                raise ValueError(f"ts must lie within [t0, t1] = [{lo}, {hi}], got ts[{i % len(v)}] = {float(v[i])!r}")
        return t0, t1, jnp.clip(jnp.asarray(v, dtype), t0, t1)
    return t0, t1, jnp.asarray(v, dtype)


def grid_steps(ts, t0: float, dt: float, dtype) -> tuple[np.ndarray, int | None]:
    """The fixed-step rule, one for `simulate(dt=...)` and `sweep` (Euler, RK4): every save time is t0 + k dt,
    k a whole number of steps, up to the rounding of `dtype`.

    The save times and dt are rounded to `dtype` (and save times built in it, as `jnp.linspace` or
    `jnp.arange` do, carry a few more ulps), so (t - t0)/dt is an integer only to within about
    eps * T/dt steps, T the largest |time|: for float32, 0.1 steps at 10^6 steps. The tolerance is
    4 eps (T/dt + 1) steps (1.3 eps (T/dt + 1) measured for linspace/arange grids in float32), and at
    least 1e-6 steps (times rounded from a lower precision).

    **Returns:** `(k, bad)`: k = (ts - t0)/dt in steps (float64), `bad` the index of the first save time that
    is not a whole number of steps (None if all are). `ValueError` naming dt when the grid cannot be told
    apart in `dtype` (over 0.25 steps of tolerance) or when a save time is more than 2**31 - 1 steps away.
    """
    ts = np.asarray(ts, np.float64)
    eps = float(np.finfo(dtype).eps)
    dt_d = float(np.asarray(dt, dtype))  # the step the solve takes
    T = max(abs(t0), float(np.max(np.abs(ts))))
    n = float(np.max(np.abs(ts - t0))) / dt_d
    tol = max(4 * eps * (T / dt_d + 1), 1e-6)
    if tol > 0.25:
        raise ValueError(f"dt is too small for {np.dtype(dtype).name} over times up to {T:g}: {n:.3g} steps of "
                         f"dt = {dt} cannot be placed on a grid in this precision{precision_hint(dtype)}")
    k = (ts - t0) / dt_d
    off = np.abs(k - np.round(k))
    if np.max(np.round(k)) > np.iinfo(np.int32).max:
        raise ValueError(f"dt = {dt} gives {np.max(np.round(k)):.3g} steps to t = {float(np.max(ts)):g}, "
                         f"more than 2**31 - 1")
    return k, (int(np.argmax(off)) if np.max(off) > tol else None)


def check_tolerances(rtol, atol, max_steps) -> None:
    """`ValueError` unless rtol, atol are finite numbers > 0 and max_steps is a positive integer."""
    for name, v in (("rtol", rtol), ("atol", atol)):
        check_number(name, v)
    if not (float(rtol) > 0 and float(atol) > 0):
        raise ValueError(f"rtol and atol must be > 0, got rtol={rtol!r}, atol={atol!r}")
    check_count("max_steps", max_steps)
