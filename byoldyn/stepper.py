"""The one time stepper of byoldyn: fixed-step Euler / RK4 over save intervals, the adaptive diffrax solve, and
the one blow-up rule. `simulate`, `simulate_batch`, `sweep`, `phase.rk4` / `basin_map` and `solve_modes` all
integrate through here.

**The blow-up rule.** A member whose state has an entry that is non-finite or larger than `max_norm` in
magnitude is stopped at its last good state and marked diverged; every save after that is NaN, and no save is
ever `inf` (`blown`, `mask`, `mask_after`). A fixed-step solve checks after every step (`check="step"`) or, for
elementwise lanes where a check per step would cost as much as the step, at the end of every save interval
(`check="save"`); the adaptive solve checks after every accepted step (a diffrax `Event`).

**Members.** `batch_ndim` leading axes of every leaf index the members (0: the whole pytree is one member; None:
every entry is its own lane, as in `phase.rk4` over a grid of starts). Nothing here raises inside `jit`/`vmap`:
one diverging member never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp

from .solution import SUCCEEDED, finite_rms_norm, status_of

__all__ = ["blown", "mask", "mask_after", "euler_step", "rk4_step", "STEPS", "Fixed", "fixed_solve",
           "adaptive_solve"]


# ---------------------------------------------------------------------------------------------
# the blow-up rule


def blown(y, max_norm, batch_ndim: int | None = 0) -> jax.Array:
    """Per member: True if any entry of the pytree `y` is non-finite or larger than `max_norm` in magnitude.

    `batch_ndim` leading axes of every leaf index the members (the result has their shape); None: every entry
    is a lane (the leaves' shapes broadcast together).
    """
    bad = None
    for a in jax.tree.leaves(y):
        r = tuple(range(a.ndim if batch_ndim is None else batch_ndim, a.ndim))
        b = ~jnp.all(jnp.isfinite(a), axis=r) | (jnp.max(jnp.abs(a), axis=r) > max_norm)
        bad = b if bad is None else bad | b
    if bad is None:
        raise ValueError("y must contain arrays")
    return bad


def _lead(ok, a):
    """`ok` (member shape) with trailing unit axes to broadcast against the leaf `a`."""
    return ok.reshape(ok.shape + (1,) * (a.ndim - ok.ndim))


def mask(tree, ok):
    """NaN where `ok` is False (`ok` indexes the leading axes of every leaf) and wherever a value is non-finite."""
    def f(a):
        a = jnp.where(_lead(ok, a), a, jnp.nan)
        return jnp.where(jnp.isfinite(a), a, jnp.nan)

    return jax.tree.map(f, tree)


def mask_after(ts, t_final, tree):
    """NaN for every save time after `t_final` (the solve never got there), and for every non-finite value."""
    return mask(tree, ts <= t_final)


def _keep(ok, new, old):
    """`new` for the members where `ok`, else `old` (a stopped member stays at its last good state)."""
    return jax.tree.map(lambda a, b: jnp.where(_lead(ok, a), a, b), new, old)


# ---------------------------------------------------------------------------------------------
# fixed steps


def _axpy(y, k, c):
    return jax.tree.map(lambda a, b: a + c * b, y, k)


def euler_step(field: Callable, y, dt):
    """One explicit Euler step `y + dt f(y)`: for a gradient flow, one full-batch gradient-descent step of size dt."""
    return _axpy(y, field(y), dt)


def rk4_step(field: Callable, y, dt):
    """One classical fourth-order Runge-Kutta step of `dy/dt = field(y)`."""
    k1 = field(y)
    k2 = field(_axpy(y, k1, dt / 2))
    k3 = field(_axpy(y, k2, dt / 2))
    k4 = field(_axpy(y, k3, dt))
    return jax.tree.map(lambda a, b1, b2, b3, b4: a + dt / 6 * (b1 + 2 * b2 + 2 * b3 + b4), y, k1, k2, k3, k4)


STEPS = {"euler": euler_step, "rk4": rk4_step}


class Fixed(NamedTuple):
    """What `fixed_solve` returns.

    - `y`: the state at the end, or a diverged member's last good state.
    - `ys`: the states at the ends of the save intervals (a leading interval axis), `()` with `save=False`.
    - `alive`: (intervals, *members) bool, False from the interval in which the member blew up on.
    - `steps`: (*members) int32, the good steps taken.
    """

    y: Any
    ys: Any
    alive: jax.Array
    steps: jax.Array


def fixed_solve(field: Callable, y0, dt, counts, *, method: str = "euler", max_norm=jnp.inf,
                batch_ndim: int | None = 0, check: str = "step", save: bool = True) -> Fixed:
    """Integrate `dy/dt = field(y)` with fixed steps of `dt`, one `lax` loop (no Python loop over time).

    **Arguments:**

    - `field`: `field(y) -> dy/dt`, a pytree like `y`; `y0` the start; `dt` a scalar array.
    - `counts`: the steps of every save interval: an int array (one entry per interval, traced), or a pair
      `(intervals, steps_per_interval)` of Python ints.
    - `method`: `"euler"` or `"rk4"` (`STEPS`).
    - `max_norm`, `batch_ndim`: the blow-up rule (module docstring, `blown`); the start is checked too.
    - `check`: `"step"` (after every step) or `"save"` (at the end of every save interval).
    - `save`: keep the state at the end of every interval (else `ys` is `()`).

    **Returns:** a `Fixed`.
    """
    step = STEPS[method]

    def good(y):
        return ~blown(y, max_norm, batch_ndim)

    def one(_, c):
        y, alive, k = c
        y_new = step(field, y, dt)
        ok = alive & good(y_new)
        return _keep(ok, y_new, y), ok, k + ok.astype(k.dtype)

    def interval(c, n):
        if check == "step":
            c = jax.lax.fori_loop(0, n, one, c)
        else:
            y, alive, k = c
            y_new = jax.lax.fori_loop(0, n, lambda _, y: step(field, y, dt), y)
            ok = alive & good(y_new)
            c = (_keep(ok, y_new, y), ok, k + ok.astype(k.dtype) * n)
        return c, ((c[0] if save else ()), c[1])

    if check not in ("step", "save"):
        raise ValueError(f"check must be 'step' or 'save', got {check!r}")
    alive0 = good(y0)
    init = (y0, alive0, jnp.zeros(alive0.shape, jnp.int32))
    if isinstance(counts, tuple):
        n_int, n_per = counts
        (y, _, k), (ys, alive) = jax.lax.scan(lambda c, _: interval(c, n_per), init, None, length=n_int)
    else:
        (y, _, k), (ys, alive) = jax.lax.scan(interval, init, counts)
    return Fixed(y, ys, alive, k)


# ---------------------------------------------------------------------------------------------
# adaptive steps


def adaptive_solve(field: Callable, y0, args: tuple, t0, t1, ts, *, solver, rtol: float, atol: float,
                   max_steps: int, max_norm: float, observe: Callable | None = None,
                   meter=diffrax.NoProgressMeter()):
    """Integrate `dy/dt = field(y, *args)` from `t0` to `t1` with a diffrax solver and a PID step-size controller.

    A blow-up (module docstring) stops the solve by an `Event`. `observe(t, y)`, if given, is saved instead of y.

    **Returns:** `(ys, status, t_final, num_steps)`: the saves at `ts` (NaN after `t_final` unless the solve
    succeeded, and never inf), the byoldyn status code (`status_of`), the time the solve reached and the accepted
    steps. With no step accepted (status `NO_STEP`) the saves at t0 are the initial state.
    """
    fn = (lambda t, y, a: y) if observe is None else (lambda t, y, a: observe(t, y))
    saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts, fn=fn), diffrax.SubSaveAt(t1=True, fn=lambda t, y, a: t)])
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, a: field(y, *a)), solver, t0, t1, dt0=None, y0=y0, args=args, saveat=saveat,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, norm=finite_rms_norm),
        max_steps=max_steps, throw=False, event=diffrax.Event(lambda t, y, a, **kw: blown(y, max_norm)),
        progress_meter=meter,
    )
    n = sol.stats["num_accepted_steps"]
    status = status_of(sol.result, n)
    # the time the solve stopped at: t1, the event time, or the end of the last accepted step
    t_final = jnp.where(n == 0, t0, sol.ts[1][-1])
    # no step accepted: diffrax wrote no save at all (its fill is inf); the saves at t0 are the initial state
    at_start = (ts == t0) & (n == 0)
    ys = jax.tree.map(lambda a, b: jnp.where(_lead(at_start, a), b[None], a), sol.ys[0], fn(t0, y0, None))
    ys = mask_after(ts, jnp.where(status == SUCCEEDED, jnp.inf, t_final), ys)
    return ys, status, t_final, n
