"""`simulate`: integrate the Lemma 1 flow (or a variant) with diffrax or as discrete gradient descent.

Two modes:

- adaptive (default): a diffrax solver (Tsit5) with a PID step-size controller;
- fixed step (`dt=...`): explicit Euler, where one step is exactly one full-batch
  gradient-descent step of size dt, `y <- y + dt * f(y)`, run as a `lax` loop.

Both are `byoldyn.stepper`'s. A member whose state becomes non-finite or exceeds `max_norm` (at the start
or after any step: the stepper's blow-up rule) is stopped and marked `DIVERGED`; its saved values after the
stopping time are NaN, and `status` says why
(`NO_STEP` when the adaptive solver accepted no step at all). No save is ever `inf`:
a value not reached or not finite is NaN. Nothing here raises inside `jit`/`vmap`, so one
diverging member never stops a batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .flows.matrix import augmented_correlation, derives_wp, effective_wp, synced, vector_field
from .model import Data, Hyper, State
from .predictors import Direct, Predictor, Variant, as_predictor, as_variant
from .solution import (
    DIVERGED,
    FAILED,
    MAX_STEPS,
    NO_STEP,
    STATUS_NAMES,
    SUCCEEDED,
    Solution,
    check_number,
    check_times,
    check_tolerances,
    grid_steps,
)
from .stepper import adaptive_solve, fixed_solve, mask_after
from .validate import brief, is_concrete, to_dtype

__all__ = ["simulate", "Solution", "SUCCEEDED", "DIVERGED", "MAX_STEPS", "FAILED", "NO_STEP", "STATUS_NAMES"]

def prepare(state0: State, ema: bool, predictor, data: Data | None = None) -> State:
    """Initial state made consistent with the variant (DESIGN.md semantics).

    DirectPred / DirectCopy: with a finite `beta_F`, F̂(0) is `state0.Fhat` or else W(0) (X + X') W(0)ᵀ (the
    first estimate is the current correlation, THEORY.md 10.2 step 3; needs `data`), and Wp(0) = g(F̂(0))
    (when `data` is given); `Fhat` is dropped for every predictor that does not carry it.
    """
    p = as_predictor(predictor)
    Wp, Fhat = state0.Wp, None
    if p.name == "identity":
        Wp = jnp.broadcast_to(jnp.eye(state0.n2, dtype=Wp.dtype), Wp.shape)
    elif p.name == "symmetric":
        Wp = 0.5 * (Wp + jnp.swapaxes(Wp, -1, -2))
    elif isinstance(p, Direct):
        if p.beta_F is not None:
            Fhat = state0.Fhat
            if Fhat is None:
                if data is None:
                    raise ValueError(f"{p.name} with beta_F = {p.beta_F} needs state0.Fhat or the data to start it")
                Fhat = augmented_correlation(state0.W, data)
        y = State.unchecked(state0.W, Wp, state0.Wa, Fhat)
        Wp = effective_wp(y, data, p) if (Fhat is not None or data is not None) else Wp
    return State.unchecked(state0.W, Wp, state0.Wa if ema else state0.W, Fhat)


@eqx.filter_jit
def _solve_adaptive(state0, hyper, data, variant, t0, t1, ts, solver, rtol, atol, max_steps, observe, max_norm,
                    meter):
    # the variant is closed over: its array leaves (a traced or per-member predictor parameter) stay traced
    def field(y, hyper, data):
        return vector_field(y, hyper, data, variant=variant)

    return adaptive_solve(field, state0, (hyper, data), t0, t1, ts, solver=solver, rtol=rtol, atol=atol,
                          max_steps=max_steps, max_norm=max_norm, observe=observe, meter=meter)


@eqx.filter_jit
def _solve_fixed(state0, hyper, data, variant, t0, ts, dt, observe, max_norm):
    ks = jnp.round((ts - t0) / dt).astype(jnp.int32)
    counts = jnp.diff(ks, prepend=jnp.zeros((1,), ks.dtype))
    r = fixed_solve(lambda y: vector_field(y, hyper, data, variant=variant),
                    state0, dt, counts, method="euler", max_norm=max_norm)
    alive, k, ys = r.alive[-1], r.steps, r.ys
    t_final = t0 + k.astype(ts.dtype) * dt
    if observe is not None:
        ys = jax.vmap(observe)(ts, ys)
    # saves at or before the last good step are valid; later ones were never reached
    ys = mask_after(ks, jnp.where(alive, jnp.iinfo(jnp.int32).max, k), ys)
    status = jnp.where(alive, SUCCEEDED, DIVERGED).astype(jnp.int32)
    return ys, status, jnp.where(alive, ts[-1], t_final), k


def simulate(
    state0: State,
    hyper: Hyper,
    data: Data,
    t1: float,
    *,
    ts=None,
    t0: float = 0.0,
    variant: Variant | None = None,
    ema: bool | None = None,
    stop_grad: bool | None = None,
    predictor: str | Predictor | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    dt: float | None = None,
    max_steps: int = 100_000,
    observe: Callable[[jax.Array, State], Any] | None = None,
    max_norm: float = 1e8,
    progress: bool = False,
) -> Solution:
    """Integrate the flow of `vector_field` from `state0` at time `t0` to `t1`.

    **Arguments:**

    - `state0`, `hyper`, `data`: unbatched model objects (for batches wrap in `jax.vmap`,
      or use `simulate_batch`, which is faster for adaptive solves).
    - `t1`: final time (flow-time units: learning rate x iterations, THEORY.md section 1).
    - `ts`: save times in [t0, t1]; default 101 evenly spaced points.
    - `variant`: a `byoldyn.Variant` (EMA, stop-gradient, predictor), as in `vector_field`; the keywords
      `ema`, `stop_grad`, `predictor` are its shorthands (defaults True, True, "learned"; given with
      `variant`, they must agree with it). With `ema=False` the
      target starts (and stays) equal to W; with `predictor="identity"` Wp is set to I; with
      `"symmetric"` the initial Wp is replaced by its symmetric part. With DirectPred / DirectCopy
      (`"directpred"`, `bd.DirectPred(...)`) the saved Wp is g(F̂) at each save; with a finite `beta_F`
      the state carries `Fhat`, started at `state0.Fhat` or else W(0) (X + X') W(0)ᵀ. The predictor object's
      parameters (ε, form, beta_F) are the ones that run. `Variant(loss="cosine")` integrates the mean-field
      cosine-loss flow (docs/cosine_loss.md).
    - `solver`: a diffrax solver for the adaptive mode (default `diffrax.Tsit5()`).
    - `rtol`, `atol`: tolerances of the PID step-size controller.
    - `dt`: if given, fixed-step mode: explicit Euler, one step = one full-batch gradient
      step of size `dt` (then every save time must be t0 + k dt).
    - `max_steps`: adaptive-mode step budget; exceeding it gives status `MAX_STEPS` (`NO_STEP` if
      not one step was accepted, e.g. when the vector field overflows float32 at the initial state).
    - `observe`: if given, `observe(t, state) -> pytree` is saved instead of the state.
    - `max_norm`: a member whose largest entry exceeds this (or is non-finite) is `DIVERGED`.
    - `progress`: show a progress bar (adaptive mode, outside `vmap`).

    Precision follows the inputs: float32 by default, float64 after
    `jax.config.update("jax_enable_x64", True)`.

    **Returns:** a `Solution`.

    Example (Lemma 1 from a random start, BYOL with α_p = 1, η = 0.01, σ² = 0.5):

    >>> import jax, byoldyn as bd
    >>> s0 = bd.State.random(jax.random.PRNGKey(0), 4, 4, scale=0.5)
    >>> sol = bd.simulate(s0, bd.Hyper(alpha_p=1.0, eta=0.01), bd.Data.isotropic(4, sigma2=0.5), 50.0, ts=[0.0, 50.0])
    >>> sol.status_names(), sol.states.W.shape
    ('succeeded', (2, 4, 4))
    """
    if not isinstance(progress, (bool, np.bool_)):
        raise ValueError(f"progress must be True or False, got {brief(progress)}")
    args = checked_args(state0, hyper, data, t1, ts, t0, as_variant(variant, ema=ema, stop_grad=stop_grad,
                        predictor=predictor), solver, rtol, atol, dt, max_steps, observe, max_norm, members=False)
    return solve_checked(*args, meter=diffrax.TqdmProgressMeter() if progress else diffrax.NoProgressMeter())


class _Options(eqx.Module):
    """The static part of a solve (hashable, so jitted drivers cache on it)."""

    solver: Any = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    dt: float | None = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    observe: Any = eqx.field(static=True)
    max_norm: float = eqx.field(static=True)


def checked_args(state0, hyper, data, t1, ts, t0, variant: Variant, solver, rtol, atol, dt, max_steps,
                 observe, max_norm, members: bool = True,
                 ) -> tuple[State, Hyper, Data, Variant, jax.Array, jax.Array, jax.Array, _Options]:
    """Validate the arguments of `simulate` (batched objects allowed) -> (y0, hyper, data, variant, t0, t1, ts,
    options).

    `variant` a `Variant` (from `as_variant`); its predictor's array parameters must be scalars, or (with
    `members`, `simulate_batch`) carry one leading member axis. `variant.loss="cosine"` runs the mean-field
    cosine flow (`byoldyn.flows.matrix.expected_cosine_loss`, docs/cosine_loss.md).
    Every bad value raises `ValueError` naming the parameter and the value received.
    """
    if not isinstance(variant, Variant):
        raise ValueError(f"variant must be a byoldyn.Variant, got {brief(variant)}")
    for k, v in variant.predictor.params().items():
        if hasattr(v, "ndim") and v.ndim > int(members):
            raise ValueError(f"predictor parameter {k} must be a scalar{' or one value per member' if members else ''}"
                             f", got shape {v.shape}{'' if members else '; use simulate_batch for one per member'}")
    if not isinstance(state0, State) or not isinstance(hyper, Hyper) or not isinstance(data, Data):
        raise ValueError("simulate takes (State, Hyper, Data) as its first three arguments")
    if state0.n1 != data.n1:
        raise ValueError(f"W has n1 = {state0.n1} columns but the data are {data.n1}-dimensional")
    dtype = state0.W.dtype
    t0, t1, ts = check_times(t0, t1, ts, dtype)
    check_number("max_norm", max_norm, positive=True, finite=False)
    if observe is not None and not callable(observe):
        raise ValueError(f"observe must be a function observe(t, state) or None, got {brief(observe)}")
    check_tolerances(rtol, atol, max_steps)
    if solver is not None and not isinstance(solver, diffrax.AbstractSolver):
        raise ValueError(f"solver must be a diffrax solver such as diffrax.Tsit5(), got {brief(solver)}")
    if dt is None:
        if solver is not None and not isinstance(solver, diffrax.AbstractAdaptiveSolver):
            raise ValueError(f"solver must give an error estimate for the adaptive mode (e.g. diffrax.Tsit5()), "
                             f"got {type(solver).__name__}(); for fixed steps pass dt")
        solver = diffrax.Tsit5() if solver is None else solver
    else:
        dt = check_number("dt", dt, positive=True)
        to_dtype("dt", dt, dtype)
        if is_concrete(ts) and is_concrete(t0):
            _check_grid(np.asarray(ts, np.float64), float(t0), dt, dtype)
    options = _Options(solver, float(rtol), float(atol), None if dt is None else float(dt), int(max_steps), observe,
                       float(max_norm))
    return prepare(state0, variant.ema, variant.predictor, data), hyper, data, variant, t0, t1, ts, options


def _check_grid(ts: np.ndarray, t0: float, dt: float, dtype) -> None:
    """`ValueError` unless every save time is t0 + k dt, k an integer, up to the rounding of `dtype`
    (`byoldyn.solution.grid_steps`, the rule of every fixed-step solve)."""
    k, bad = grid_steps(ts, t0, dt, dtype)
    if bad is not None:
        raise ValueError(f"in fixed-step mode every save time must be t0 + k*dt; ts is not on the dt = {dt} grid "
                         f"(ts[{bad}] = {ts[bad]:.9g} is {k[bad]:.9g} steps from t0 = {t0:g})")


def solve_checked(y0, hyper, data, variant: Variant, t0, t1, ts, o: _Options,
                  meter=diffrax.NoProgressMeter()) -> Solution:
    """One member: the adaptive or the fixed-step solve of validated arguments.

    DirectPred / DirectCopy: the states are saved, Wp = g(F̂) is written into them (`synced`), and then
    `observe` (if any) is applied to them, NaN where the state is.
    """
    observe, derived = o.observe, derives_wp(variant.predictor)
    if derived:
        o = dataclasses.replace(o, observe=None)
    if o.dt is None:
        ys, status, t_final, n = _solve_adaptive(y0, hyper, data, variant, t0, t1, ts, o.solver, o.rtol, o.atol,
                                                 o.max_steps, o.observe, o.max_norm, meter)
    else:
        dt = jnp.asarray(o.dt, y0.W.dtype)
        ys, status, t_final, n = _solve_fixed(y0, hyper, data, variant, t0, ts, dt, o.observe, o.max_norm)
    if derived:
        ys = synced(ys, data, variant.predictor)
        if observe is not None:
            ys = observe_saved(observe, ts, ys)
    states, observed = (ys, None) if observe is None else (None, ys)
    return Solution(ts=ts, states=states, observed=observed, status=status, t_final=t_final, num_steps=n)


def observe_saved(observe, ts, states: State):
    """`observe` at every save of `states` (leading axes those of `ts`: (T,), or (K, m + 1) for the segments of
    `byoldyn.reset`); NaN where the saved state is not finite (not reached)."""
    ok = jnp.all(jnp.isfinite(states.W), axis=(-2, -1))
    f = observe
    for _ in range(jnp.ndim(ts)):
        f = jax.vmap(f)
    out = f(ts, states)

    def mask(a):
        a = jnp.asarray(a)
        a = a if jnp.issubdtype(a.dtype, jnp.floating) else a.astype(states.W.dtype)
        a = jnp.where(ok.reshape(ok.shape + (1,) * (a.ndim - ok.ndim)), a, jnp.nan)
        return jnp.where(jnp.isfinite(a), a, jnp.nan)

    return jax.tree.map(mask, out)
