"""Predictor resets: Wp re-initialized every `every` units of flow time, at three levels (docs/predictor_reset.md).

The companion paper (arXiv 2010.00578) reports that reinitializing the predictor every few epochs does not hurt
BYOL. A `Reset(every, init, scale)` says when and to what Wp is reset; the same object runs

- `modes_with_resets`: the decoupled mode system (Eqs. 11-13 in the scalar form (w, w_p, w_a), `mode_field`);
- `simulate_with_resets`: the Lemma 1 flow (Eqs. 2-4, `byoldyn.simulate`'s solver and variants);
- `train_with_resets`: minibatch SGD of the linear model (`byoldyn.sampled.train`, chained with `resume=`).

Every level integrates K = (t1 − t0) / every segments [t_k, t_{k+1}], t_k = t0 + k every, with the plain solver;
at each t_k (k >= 1) only Wp is replaced (W, the target Wa, and at the sampled level W's momentum, F̂ and the
step count carry over; Wp's momentum buffer is zeroed: a fresh predictor with a fresh optimizer state). The
results have a leading segment axis: `ts[k, 0]` is t_k with the state just after the reset, `ts[k, -1]` is
t_{k+1} with the state just before the next one. `recovery_time` measures how fast a mode strength returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .flows.modes import ModeState, mode_field
from .integrate import checked_args, solve_checked
from .model import Data, Hyper, State
from .predictors import as_variant
from .sampled import SGD, Setup, Source, init_train_state, to_flow, train
from .solution import SUCCEEDED, check_number, check_times, check_tolerances
from .stepper import adaptive_solve
from .validate import brief, check_key

__all__ = ["Reset", "INITS", "Segments", "simulate_with_resets", "train_with_resets", "modes_with_resets",
           "recovery_time"]

INITS = ("zeros", "random", "identity", "initial")
"""The initial values a reset can give Wp: `"zeros"` (Wp = 0, aligned with every F), `"random"` (a fresh draw
from `State.random`'s distribution, i.i.d. N(0, scale²/n2) entries), `"identity"` (scale · I), `"initial"` (the
run's own Wp(0))."""


class Reset(eqx.Module):
    """When and to what the predictor Wp is reset.

    - `every`: the reset period in flow time (> 0); resets at t0 + every, t0 + 2 every, ... before t1. At the
      sampled level it must be a whole number of SGD steps of flow time `to_flow(sgd)[1]` each.
    - `init`: one of `INITS` (default `"random"`, the companion paper's re-initialization: a fresh draw from
      the initial distribution; `"zeros"` is the mode theory's clean case).
    - `scale`: the scale of `"random"` (entries N(0, scale²/n2), as `State.random(..., wp_scale=scale)`) and of
      `"identity"` (scale · I); not read by `"zeros"` and `"initial"`.

    >>> import byoldyn as bd
    >>> bd.reset.Reset(every=50.0, init="zeros")
    Reset(every=50.0, init='zeros', scale=0.1)
    """

    every: float = eqx.field(static=True)
    init: str = eqx.field(static=True)
    scale: float = eqx.field(static=True)

    def __init__(self, every, init: str = "random", scale=0.1):
        self.every = check_number("every", every, positive=True)
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {brief(init)}")
        self.init = init
        self.scale = check_number("scale", scale)
        if self.scale < 0:
            raise ValueError(f"scale must be >= 0, got {self.scale!r}")

    def count(self, t0: float, t1: float) -> int:
        """The number of segments K: 1 when `every` >= t1 − t0 (no reset), else (t1 − t0)/every, which must be
        a whole number (to 1e-9 relative)."""
        span = float(t1) - float(t0)
        if self.every >= span * (1.0 - 1e-12):
            return 1
        k = span / self.every
        if abs(k - round(k)) > 1e-9 * k:
            raise ValueError(f"t1 − t0 = {span:g} must be a whole number of reset periods every = {self.every:g} "
                             f"(or at most one period), got {k:.6g} periods")
        return int(round(k))

    def unit(self) -> Reset:
        """The same reset with `every` = 1: what the jitted segment loops take (the period travels as an array,
        so runs that differ only in their period share one compilation)."""
        return Reset(1.0, self.init, self.scale)

    def wp(self, k, Wp0: jax.Array, key) -> jax.Array:
        """The reset value of Wp at the k-th reset (traced-safe; `key` only for `"random"`, folded with k)."""
        if self.init == "zeros":
            return jnp.zeros_like(Wp0)
        if self.init == "identity":
            return jnp.broadcast_to(self.scale * jnp.eye(Wp0.shape[-1], dtype=Wp0.dtype), Wp0.shape)
        if self.init == "initial":
            return Wp0
        n2 = Wp0.shape[-1]
        return self.scale / np.sqrt(n2) * jax.random.normal(jax.random.fold_in(key, k), Wp0.shape, Wp0.dtype)


class Segments(eqx.Module):
    """Result of a run with resets: K segments, each with m + 1 saves (leading axes (K, m + 1)).

    - `ts`: (K, m + 1) save times; `ts[k, 0]` = t_k (just after the reset), `ts[k, -1]` = t_{k+1} (just before
      the next one).
    - `states`: the saved states with leading axes (K, m + 1) (`State`, or `ModeState` at the mode level; None
      when `observe` was given); `observed`: `observe(t, state)` at every save (else None).
    - `status`: (K,) the status of each segment's solve (`byoldyn.SUCCEEDED`, ...; a diverged segment leaves NaN,
      and every later one is marked diverged at its start).
    - `num_steps`: (K,) accepted steps (SGD steps at the sampled level) of each segment.
    - `final`: the end state (`State`, `ModeState`, or the sampled level's `TrainState`).
    """

    ts: jax.Array
    states: Any
    observed: Any
    status: jax.Array
    num_steps: jax.Array
    final: Any

    @property
    def succeeded(self) -> jax.Array:
        """Every segment succeeded (over the last axis of `status`)."""
        return jnp.all(self.status == SUCCEEDED, axis=-1)


def _check_reset(reset, key) -> None:
    if not isinstance(reset, Reset):
        raise ValueError(f"reset must be a byoldyn.reset.Reset, got {brief(reset)}")
    if reset.init == "random":
        if key is None:
            raise ValueError("reset init 'random' needs a PRNG key (key=...) for its draws")
        check_key(key)


def _check_saves(saves) -> int:
    if isinstance(saves, bool) or not isinstance(saves, (int, np.integer)) or saves < 1:
        raise ValueError(f"saves must be a positive integer (saves per segment), got {brief(saves)}")
    return int(saves)


def _observe(observe, ts, states, ok):
    """`observe` at every save (leading axes (K, m + 1)), NaN where the saved state is not finite."""
    out = jax.vmap(jax.vmap(observe))(ts, states)

    def mask(a):
        a = jnp.asarray(a)
        a = a if jnp.issubdtype(a.dtype, jnp.floating) else a.astype(ts.dtype)
        return jnp.where(ok.reshape(ok.shape + (1,) * (a.ndim - ok.ndim)) & jnp.isfinite(a), a, jnp.nan)

    return jax.tree.map(mask, out)


@eqx.filter_jit
def _matrix_segments(y0, hyper, data, variant, reset, key, t0, every, t1, K, m, options):
    u = jnp.linspace(0.0, 1.0, m + 1, dtype=t0.dtype)

    def segment(y, k):
        tk = t0 + k.astype(t0.dtype) * every
        tk1 = jnp.where(k == K - 1, t1, tk + every)
        Wp = jnp.where(k > 0, reset.wp(k, y0.Wp, key), y.Wp)
        Wp = 0.5 * (Wp + jnp.swapaxes(Wp, -1, -2)) if variant.predictor.name == "symmetric" else Wp
        y = State.unchecked(y.W, Wp, y.Wa, y.Fhat)
        ts = tk + (tk1 - tk) * u
        ts = ts.at[-1].set(tk1)
        sol = solve_checked(y, hyper, data, variant, tk, tk1, ts, options)
        return jax.tree.map(lambda a: a[-1], sol.states), (ts, sol.states, sol.status, sol.num_steps)

    final, (ts, states, status, n) = jax.lax.scan(segment, y0, jnp.arange(K))
    return ts, states, status, n, final


def simulate_with_resets(
    state0: State,
    hyper: Hyper,
    data: Data,
    t1: float,
    reset: Reset,
    *,
    key=None,
    saves: int = 20,
    t0: float = 0.0,
    variant=None,
    ema: bool | None = None,
    stop_grad: bool | None = None,
    predictor=None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    dt: float | None = None,
    max_steps: int = 100_000,
    observe: Callable[[jax.Array, State], Any] | None = None,
    max_norm: float = 1e8,
) -> Segments:
    """The Lemma 1 flow (`byoldyn.simulate`) with Wp reset by `reset` at t0 + k every, k = 1 .. K − 1.

    Each segment is the plain solve of `simulate` (same solver, tolerances, variant) from the previous
    segment's end state with Wp replaced; the K segments run in one jitted `lax.scan`, so the function is
    `vmap`-able over states, hyperparameters and keys (seeds). With one segment (`reset.every` >= t1 − t0) the
    run is `simulate(state0, ..., ts=linspace(t0, t1, saves + 1))`.

    **Arguments:** as `simulate`, plus

    - `reset`: a `Reset`; t1 − t0 must be a whole number of periods (or at most one).
    - `key`: PRNG key of the `"random"` draws (the k-th reset uses `fold_in(key, k)`).
    - `saves`: saves per segment after its start (m; each segment saves m + 1 evenly spaced times); in
      fixed-step mode (`dt`) every save must fall on the dt grid.

    The predictor must be learned (`"learned"` or `"symmetric"`, whose reset value is symmetrized): a fixed
    (identity) or F̂-derived (DirectPred) predictor has nothing to reset.

    **Returns:** a `Segments` (leading axes (K, saves + 1)).
    """
    _check_reset(reset, key)
    m = _check_saves(saves)
    v = as_variant(variant, ema=ema, stop_grad=stop_grad, predictor=predictor)
    if v.predictor.name not in ("learned", "symmetric"):
        raise ValueError(f"a reset needs a learned predictor ('learned' or 'symmetric'), got {v.predictor.name!r}")
    dtype = state0.W.dtype if isinstance(state0, State) else jnp.result_type(float)
    t0_, t1_, _ = check_times(t0, t1, None, dtype)
    K = reset.count(float(t0_), float(t1_))
    every = min(reset.every, float(t1_) - float(t0_))
    first_ts = np.linspace(float(t0_), float(t0_) + every, m + 1)
    # validates everything once (the first segment's times stand for all: the segments are equal)
    y0, hyper, data, v, t0a, t1a, ts1, options = checked_args(state0, hyper, data, float(t0_) + every, first_ts,
                                                          t0_, v, solver, rtol, atol, dt, max_steps, None,
                                                          max_norm, members=False)
    if observe is not None and not callable(observe):
        raise ValueError(f"observe must be a function observe(t, state) or None, got {brief(observe)}")
    key = jax.random.PRNGKey(0) if key is None else key
    if K == 1:  # no reset: the plain solve, bit for bit
        sol = solve_checked(y0, hyper, data, v, t0a, t1a, ts1, options)
        ts, states, status, n = (jax.tree.map(lambda a: a[None], x) for x in (sol.ts, sol.states, sol.status,
                                                                                  sol.num_steps))
        final = jax.tree.map(lambda a: a[-1], sol.states)
    else:
        ts, states, status, n, final = _matrix_segments(y0, hyper, data, v, reset.unit(), key, t0a,
                                                        jnp.asarray(every, t0a.dtype), t1_, K, m, options)
    observed = None
    if observe is not None:
        ok = jnp.all(jnp.isfinite(states.W), axis=(-2, -1))
        observed, states = _observe(observe, ts, states, ok), None
    return Segments(ts, states, observed, status, n, final)


def train_with_resets(
    state0: State,
    sgd: SGD,
    source: Source,
    key,
    steps: int,
    reset: Reset,
    *,
    reset_key=None,
    setup: Setup | None = None,
    save_every: int | None = None,
    observe: Callable[[jax.Array, State], Any] | None = None,
    max_norm: float = 1e8,
) -> Segments:
    """Minibatch SGD (`byoldyn.sampled.train`) with Wp reset every `reset.every` of flow time.

    The run is `steps` SGD steps in K segments of n = every / dt steps (dt = `to_flow(sgd)[1]`); segment k
    continues segment k − 1 through `train(..., resume=...)` with the `TrainState`'s Wp replaced by the reset
    value and Wp's momentum buffer zeroed (W's momentum, F̂, the step count and the minibatch stream
    `fold_in(key, step)` carry over), so with one segment (`every` >= steps × dt) it is `train` itself. A
    Python loop over the K segments (not over steps): each segment is one jitted `lax.scan`; `vmap`-able over
    seeds.

    **Arguments:** as `train`, plus `reset` (a `Reset`; `steps` must be a whole number of periods, or at most
    one) and `reset_key` (PRNG key of the `"random"` draws; the k-th reset uses `fold_in(reset_key, k)`).
    `save_every` must divide n (default n/20).

    **Returns:** a `Segments` (leading axes (K, n/save_every + 1)); `final` is the last `TrainState`.
    """
    _check_reset(reset, reset_key)
    setup = Setup() if setup is None else setup
    if not isinstance(setup, Setup) or not isinstance(sgd, SGD):
        raise ValueError("train_with_resets takes an SGD and a Setup (setup=...)")
    if setup.predictor.name not in ("learned", "symmetric"):
        raise ValueError(f"a reset needs a learned predictor ('learned' or 'symmetric'), got {setup.predictor.name!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    dt = float(np.asarray(to_flow(sgd)[1]))
    per = reset.every / dt
    if abs(per - round(per)) > 1e-6 * max(per, 1.0) or round(per) < 1:
        raise ValueError(f"reset.every = {reset.every:g} must be a whole number of SGD steps of flow time {dt:g}, "
                         f"got {per:.6g} steps")
    n = min(int(round(per)), int(steps))
    if steps % n:
        raise ValueError(f"steps = {steps} must be a whole number of reset periods of {n} steps (or at most one)")
    save_every = max(1, n // 20) if save_every is None else save_every
    if isinstance(save_every, bool) or not isinstance(save_every, (int, np.integer)) or save_every < 1 or n % save_every:
        raise ValueError(f"save_every must be a positive integer dividing the {n} steps of a period, got {save_every!r}")
    ts0 = init_train_state(state0, setup)
    Wp0 = ts0.Wp
    runs, resume = [], None
    for k in range(steps // n):
        if k > 0:
            Wp = reset.wp(k, Wp0, reset_key)
            Wp = 0.5 * (Wp + jnp.swapaxes(Wp, -1, -2)) if setup.predictor.name == "symmetric" else Wp
            resume = eqx.tree_at(lambda t: (t.Wp, t.vWp), resume, (Wp, jnp.zeros_like(resume.vWp)))
        r = train(state0, sgd, source, key, n, setup=setup, save_every=int(save_every), observe=observe,
                  max_norm=max_norm, resume=resume)
        runs.append(r)
        resume = r.final
    stack = lambda *a: jnp.stack(a)  # noqa: E731
    states = None if runs[0].states is None else jax.tree.map(stack, *[r.states for r in runs])
    observed = None if runs[0].observed is None else jax.tree.map(stack, *[r.observed for r in runs])
    # a segment that starts from a diverged state is diverged too (train marks it only if a step blows up)
    status = jnp.stack([r.status for r in runs])
    status = jnp.where(jnp.cumsum(status != SUCCEEDED, axis=0) > 0, jnp.maximum(status, 1), status)
    return Segments(jnp.stack([r.ts for r in runs]), states, observed, status,
                    jnp.stack([r.final.step - (r.steps[0]) for r in runs]), runs[-1].final)


def _mode_field(y, hyper, kappa, tau, lambda_d, fixed_tau):
    return mode_field(y, hyper, kappa, tau if fixed_tau else None, lambda_d)


@eqx.filter_jit
def _mode_segments(y0, hyper, kappa, tau, lambda_d, fixed_tau, reset, t0, every, K, m, rtol, atol, max_steps,
                   max_norm):
    u = jnp.linspace(0.0, 1.0, m + 1, dtype=t0.dtype)
    solver = diffrax.Tsit5()

    def segment(y, k):
        tk = t0 + k.astype(t0.dtype) * every
        tk1 = tk + every
        w_p = jnp.where(k > 0, reset.wp(k, y0.w_p[..., None, None], None)[..., 0, 0], y.w_p)
        y = ModeState(y.w, w_p, y.w_a if not fixed_tau else tau * y.w)
        ts = (tk + (tk1 - tk) * u).at[-1].set(tk1)
        ys, status, _, n = adaptive_solve(_mode_field, y, (hyper, kappa, tau, lambda_d, fixed_tau), tk, tk1, ts,
                                          solver=solver, rtol=rtol, atol=atol, max_steps=max_steps,
                                          max_norm=max_norm)
        return jax.tree.map(lambda a: a[-1], ys), (ts, ys, status, n)

    final, (ts, states, status, n) = jax.lax.scan(segment, y0, jnp.arange(K))
    return ts, states, status, n, final


def modes_with_resets(
    y0: ModeState,
    hyper: Hyper,
    kappa,
    t1: float,
    reset: Reset,
    *,
    tau=None,
    lambda_d=1.0,
    saves: int = 20,
    t0: float = 0.0,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    max_norm: float = 1e8,
) -> Segments:
    """The decoupled mode system (`mode_field`: Eqs. 11-13 as (w, w_p, w_a)) with every p_j = w_p reset.

    The mode theory of a reset (docs/predictor_reset.md): a reset of Wp to a value aligned with F (zeros, or
    scale · I) sets each p_j to the same value (0, or scale) and leaves s_j = w² and the target w_a; from an
    aligned state the matrix flow then stays decoupled, so this is exact for it.

    **Arguments:** `y0`, `hyper`, `kappa`, `tau`, `lambda_d` as `mode_field` (`tau` None: BYOL with EMA; a number:
    fixed τ, τ = 1 is SimSiam); `reset` a `Reset` with init `"zeros"`, `"identity"` (p_j = scale) or
    `"initial"` (p_j = p_j(0)); `saves`, `t0`, `rtol`, `atol`, `max_steps`, `max_norm` as `simulate_with_resets`
    and `solve_modes`.

    **Returns:** a `Segments` whose `states` is a `ModeState` with leading axes (K, saves + 1).

    >>> import byoldyn as bd
    >>> from byoldyn.reset import Reset, modes_with_resets
    >>> y0 = bd.ModeState.from_pst(p=0.6, s=0.36, tau=1.0)
    >>> seg = modes_with_resets(y0, bd.Hyper(eta=0.01), 1.5, 200.0, Reset(50.0, "zeros"), tau=1.0)
    >>> seg.ts.shape, round(float(seg.states.p[1, 0]), 6), round(float(seg.final.p), 2)  # p = 0, then regrown
    ((4, 21), 0.0, 0.66)
    """
    _check_reset(reset, None)
    if reset.init == "random":
        raise ValueError("the mode level takes reset init 'zeros', 'identity' or 'initial' (a random Wp is not "
                         "aligned with F: use simulate_with_resets)")
    m = _check_saves(saves)
    if not isinstance(y0, ModeState):
        raise ValueError(f"y0 must be a ModeState, got {brief(y0)}")
    fixed_tau = tau is not None
    mode_field(y0, hyper, kappa, tau, lambda_d)  # validates once, outside jit
    y0 = jax.tree.map(lambda a: jnp.asarray(a, jnp.result_type(a, float)), y0)
    dtype = y0.w.dtype
    t0_, t1_, _ = check_times(t0, t1, None, dtype)
    check_tolerances(rtol, atol, max_steps)
    check_number("max_norm", max_norm, positive=True, finite=False)
    K = reset.count(float(t0_), float(t1_))
    every = jnp.asarray(float(t1_) - float(t0_) if K == 1 else reset.every, dtype)
    if isinstance(kappa, (int, float)):
        kappa = jnp.asarray(kappa, dtype)
    tau_a = jnp.asarray(1.0 if tau is None else tau, dtype)
    ld = jnp.asarray(lambda_d, dtype) if isinstance(lambda_d, (int, float)) else lambda_d
    ts, states, status, n, final = _mode_segments(y0, hyper, kappa, tau_a, ld, fixed_tau, reset.unit(), t0_, every, K,
                                                  m, float(rtol), float(atol), int(max_steps), float(max_norm))
    return Segments(ts, states, None, status, n, final)


def recovery_time(ts, x, target, rtol: float = 0.05) -> np.ndarray:
    """The time from the start of each segment until `x` is back within `rtol` of `target` for good.

    **Arguments:** `ts` (..., m + 1) save times of segments (as `Segments.ts`); `x` (..., m + 1, modes) a mode
    strength over those saves (s_j, p_j, ...); `target` (..., modes) the value to recover (e.g. the value just
    before the reset, `x[k - 1, -1]`); `rtol` the relative band.

    **Returns:** (..., modes) the first save time minus the segment's start from which |x − target| <= rtol
    |target| holds at every later save of the segment; `inf` where it never does (the mode did not recover, or
    not within the segment), NaN where `x` is NaN at the end.
    """
    ts, x, target = np.asarray(ts, float), np.asarray(x, float), np.asarray(target, float)
    inside = np.abs(x - target[..., None, :]) <= rtol * np.abs(target[..., None, :])
    # from save i on, every later save is inside: a reversed cumulative AND
    good = np.flip(np.logical_and.accumulate(np.flip(inside, -2), -2), -2)
    first = np.argmax(good, axis=-2)
    any_ = good.any(axis=-2)
    t = np.take_along_axis(ts[..., None] - ts[..., :1, None], first[..., None, :], axis=-2)[..., 0, :]
    out = np.where(any_, t, math.inf)
    return np.where(np.isnan(x[..., -1, :]), np.nan, out)
