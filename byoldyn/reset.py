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
t_{k+1} with the state just before the next one. `recovery_time` measures how fast a mode strength returns;
`critical_period` is the period T_c below which periodic resets to 0 kill a mode at its fixed point (R3).
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

from . import theory
from .batch import batched_mask
from .flows.modes import ModeState, mode_field
from .integrate import checked_args, observe_saved, solve_checked
from .model import Data, Hyper, State
from .predictors import as_variant
from .sampled import SGD, Setup, Source, flow_moments, init_train_state, to_flow, train
from .sampled.train import check_run, saved_loop
from .solution import DIVERGED, SUCCEEDED, check_number, check_times, check_tolerances
from .stepper import adaptive_solve
from .validate import brief, check_key

__all__ = ["Reset", "INITS", "Segments", "simulate_with_resets", "train_with_resets", "modes_with_resets",
           "recovery_time", "critical_period"]

INITS = ("zeros", "random", "identity", "initial", "keep")
"""The initial values a reset can give Wp: `"zeros"` (Wp = 0, aligned with every F), `"random"` (a fresh draw
from `State.random`'s distribution, i.i.d. N(0, scale²/n2) entries), `"identity"` (scale · I), `"initial"` (the
run's own Wp(0)), `"keep"` (Wp kept: no reset, the control run through the same segments, solver restarts and
compiled program; at the sampled level Wp's momentum is kept too)."""


def _periods(every) -> float | tuple[float, ...]:
    """`every` as a float, or a tuple of B member periods (a 1-D sequence); `ValueError` unless each is > 0."""
    if np.ndim(every) == 0:
        return check_number("every", every, positive=True)
    if np.ndim(every) != 1 or len(every) < 1:
        raise ValueError(f"every must be a number or a 1-D sequence of periods (one per member), got {brief(every)}")
    return tuple(check_number("every", e, positive=True) for e in np.asarray(every).tolist())


def _count(every: float, span: float) -> int:
    if every >= span * (1.0 - 1e-12):
        return 1
    k = span / every
    if abs(k - round(k)) > 1e-9 * k:
        raise ValueError(f"t1 − t0 = {span:g} must be a whole number of reset periods every = {every:g} "
                         f"(or at most one period), got {k:.6g} periods")
    return int(round(k))


def _reset_value(code, scale, k, Wp0, Wp, key, eye):
    """The reset value of Wp for the init `INITS[code]` (`code`, `scale` traced: one program serves every init;
    each candidate is computed and one selected). `eye` is the identity of Wp's shape (1.0 at the mode level)."""
    n2 = Wp0.shape[-1] if Wp0.ndim >= 2 else 1
    draw = scale / np.sqrt(n2) * jax.random.normal(jax.random.fold_in(key, k), Wp0.shape, Wp0.dtype)
    cands = (jnp.zeros_like(Wp0), draw, jnp.broadcast_to(scale * eye, Wp0.shape).astype(Wp0.dtype), Wp0, Wp)
    return jnp.select([code == i for i in range(len(INITS))], cands, Wp)


class Reset(eqx.Module):
    """When and to what the predictor Wp is reset.

    - `every`: the reset period in flow time (> 0); resets at t0 + every, t0 + 2 every, ... before t1. At the
      sampled level it must be a whole number of SGD steps of flow time `to_flow(sgd)[1]` each. A 1-D sequence
      of B periods makes B members run in one vmapped program (`simulate_with_resets` only, with `t1` one end
      time per member, every member the same number of periods; the mode and sampled levels take one period:
      vmap them, or, at the mode level, broadcast the fields).
    - `init`: one of `INITS` (default `"random"`, the companion paper's re-initialization: a fresh draw from
      the initial distribution; `"zeros"` is the mode theory's clean case; `"keep"` the control without resets).
    - `scale`: the scale of `"random"` (entries N(0, scale²/n2), as `State.random(..., wp_scale=scale)`) and of
      `"identity"` (scale · I); not read by `"zeros"`, `"initial"` and `"keep"`.

    `init` and `scale` reach the compiled segment loops as values, so runs that differ only in them (and in the
    period, the end time, the state's and hyperparameters' values or the key) share one compilation, provided the
    number of segments K (static: it sets the scan's length) and the saves per segment are the same.

    >>> import byoldyn as bd
    >>> bd.reset.Reset(every=50.0, init="zeros")
    Reset(every=50.0, init='zeros', scale=0.1)
    """

    every: float | tuple[float, ...] = eqx.field(static=True)
    init: str = eqx.field(static=True)
    scale: float = eqx.field(static=True)

    def __init__(self, every, init: str = "random", scale=0.1):
        self.every = _periods(every)
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {brief(init)}")
        self.init = init
        self.scale = check_number("scale", scale)
        if self.scale < 0:
            raise ValueError(f"scale must be >= 0, got {self.scale!r}")

    @property
    def members(self) -> int | None:
        """B when `every` is a sequence of B member periods, else None."""
        return len(self.every) if isinstance(self.every, tuple) else None

    def count(self, t0: float, t1) -> int:
        """The number of segments K: 1 when `every` >= t1 − t0 (no reset), else (t1 − t0)/every, which must be
        a whole number (to 1e-9 relative). With member periods, `t1` is one end time per member (or one for all)
        and every member must have the same K."""
        if self.members is None:
            return _count(self.every, float(t1) - float(t0))
        t1s = np.broadcast_to(np.asarray(t1, np.float64), (self.members,)) if np.ndim(t1) <= 1 else None
        if t1s is None or np.shape(t1s) != (self.members,):
            raise ValueError(f"t1 must be one end time or one per member ({self.members}), got shape {np.shape(t1)}")
        ks = {_count(e, float(t) - float(t0)) for e, t in zip(self.every, t1s)}
        if len(ks) > 1:
            raise ValueError(f"every member must have the same number of reset periods, got {sorted(ks)}")
        return ks.pop()

    def unit(self) -> Reset:
        """The same reset with `every` = 1 (the period travels as an array: runs that differ only in their
        period share one compilation)."""
        return Reset(1.0, self.init, self.scale)

    def code(self, dtype=None) -> tuple[jax.Array, jax.Array]:
        """`(INITS.index(init), scale)` as arrays: what the compiled segment loops take."""
        return jnp.asarray(INITS.index(self.init), jnp.int32), jnp.asarray(self.scale, dtype)

    def wp(self, k, Wp0: jax.Array, key, Wp: jax.Array | None = None) -> jax.Array:
        """The reset value of Wp at the k-th reset (traced-safe; `key` only for `"random"`, folded with k; `Wp` the
        current value, what `"keep"` returns, default Wp0)."""
        Wp = Wp0 if Wp is None else Wp
        code, scale = self.code(Wp0.dtype)
        key = jax.random.PRNGKey(0) if key is None else key
        eye = jnp.eye(Wp0.shape[-1], dtype=Wp0.dtype) if Wp0.ndim >= 2 else 1.0
        return _reset_value(code, scale, k, Wp0, Wp, key, eye)


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


def _check_reset(reset, key, name: str = "key") -> None:
    if not isinstance(reset, Reset):
        raise ValueError(f"reset must be a byoldyn.reset.Reset, got {brief(reset)}")
    if reset.init == "random":
        if key is None:
            raise ValueError(f"reset init 'random' needs a PRNG key ({name}=...) for its draws")
        check_key(key)


def _first_key(key, B):
    """The key to validate: member 0's when B members carry one key each."""
    if key is None or B is None or not hasattr(key, "ndim"):
        return key
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    return key[0] if key.ndim == (1 if typed else 2) else key


def _member_times(t1, B) -> tuple:
    """`t1` as a tuple: (t1,) for one run, B end times for B members (one given for all is repeated)."""
    if B is None:
        return (t1,)
    if np.ndim(t1) > 1 or np.size(t1) not in (1, B):
        raise ValueError(f"t1 must be one end time or one per member ({B}), got shape {np.shape(t1)}")
    return tuple(np.broadcast_to(np.asarray(t1, np.float64), (B,)).tolist())


def _check_saves(saves) -> int:
    if isinstance(saves, bool) or not isinstance(saves, (int, np.integer)) or saves < 1:
        raise ValueError(f"saves must be a positive integer (saves per segment), got {brief(saves)}")
    return int(saves)


def _matrix_scan(y0, hyper, data, variant, code, scale, key, t0, every, t1, K, m, options):
    u = jnp.linspace(0.0, 1.0, m + 1, dtype=t0.dtype)
    eye = jnp.eye(y0.Wp.shape[-1], dtype=y0.Wp.dtype)

    def segment(y, k):
        tk = t0 + k.astype(t0.dtype) * every
        tk1 = jnp.where(k == K - 1, t1, tk + every)
        Wp = jnp.where(k > 0, _reset_value(code, scale, k, y0.Wp, y.Wp, key, eye), y.Wp)
        Wp = 0.5 * (Wp + jnp.swapaxes(Wp, -1, -2)) if variant.predictor.name == "symmetric" else Wp
        y = State.unchecked(y.W, Wp, y.Wa, y.Fhat)
        ts = tk + (tk1 - tk) * u
        ts = ts.at[-1].set(tk1)
        sol = solve_checked(y, hyper, data, variant, tk, tk1, ts, options)
        return jax.tree.map(lambda a: a[-1], sol.states), (ts, sol.states, sol.status, sol.num_steps)

    final, (ts, states, status, n) = jax.lax.scan(segment, y0, jnp.arange(K))
    return ts, states, status, n, final


_matrix_segments = eqx.filter_jit(_matrix_scan)


@eqx.filter_jit
def _matrix_members(y0, hyper, data, variant, code, scale, key, t0, every, t1, K, m, options, axes):
    """`_matrix_scan` vmapped over B members: `axes` = (state, hyper, key) in_axes (0 or None per leaf)."""
    def one(y, h, kk, e, t):
        return _matrix_scan(y, h, data, variant, code, scale, kk, t0, e, t, K, m, options)

    return jax.vmap(one, in_axes=axes + (0, 0))(y0, hyper, key, every, t1)


def _member_axes(state0, hyper, data, key, B: int):
    """In_axes of the state, hyper and key of B members: 0 where a leaf carries one leading member axis of length
    B (`batch.batched_mask`'s rule: State leaves of 3 dimensions, Hyper leaves of 1; a key of shape (B, 2) or a
    typed key of shape (B,)), None where it is shared; `ValueError` on any other shape."""
    masks = batched_mask(state0, hyper, data)[:2]
    for a, m in zip(jax.tree.leaves((state0, hyper)), jax.tree.leaves(masks)):
        if m and a.shape[0] != B:
            raise ValueError(f"with {B} member periods every state and hyperparameter field must be shared or carry "
                             f"one leading member axis of length {B}, got shape {a.shape}")
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    k_base = 0 if typed else 1
    if key.ndim == k_base + 1 and key.shape[0] == B:
        k_ax = 0
    elif key.ndim == k_base:
        k_ax = None
    else:
        raise ValueError(f"key must be one PRNG key or one per member ({B}), got shape {key.shape}")
    return tuple(jax.tree.map(lambda m: 0 if m else None, x) for x in masks) + (k_ax,)


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
    run is `simulate(state0, ..., ts=linspace(t0, t1, saves + 1))`. Runs with the same number of segments K
    (static: (t1 − t0)/every is the scan's length) and the same `saves` share one compiled program whatever their
    period, t1, the reset's init and scale, the state's and hyperparameters' values and the key.

    **Members:** a `Reset` with B periods (`Reset(every=[T_1, ..., T_B])`) runs B members in one vmapped
    program: `t1` is one end time per member (or one for all), every member has the same number of periods K,
    and any field of `state0` and `hyper` and the `key` may carry a leading member axis of length B (the others
    are shared). The results then have a leading member axis: `ts` (B, K, saves + 1), ....

    **Arguments:** as `simulate`, plus

    - `reset`: a `Reset`; t1 − t0 must be a whole number of periods (or at most one).
    - `key`: PRNG key of the `"random"` draws (the k-th reset uses `fold_in(key, k)`); with members, one key or
      one per member.
    - `saves`: saves per segment after its start (m; each segment saves m + 1 evenly spaced times); in
      fixed-step mode (`dt`) every save must fall on the dt grid.

    The predictor must be learned (`"learned"` or `"symmetric"`, whose reset value is symmetrized): a fixed
    (identity) or F̂-derived (DirectPred) predictor has nothing to reset.

    **Returns:** a `Segments` (leading axes (K, saves + 1)).
    """
    B = reset.members
    _check_reset(reset, _first_key(key, B))
    m = _check_saves(saves)
    v = as_variant(variant, ema=ema, stop_grad=stop_grad, predictor=predictor)
    if v.predictor.name not in ("learned", "symmetric"):
        raise ValueError(f"a reset needs a learned predictor ('learned' or 'symmetric'), got {v.predictor.name!r}")
    dtype = state0.W.dtype if isinstance(state0, State) else jnp.result_type(float)
    t1s = _member_times(t1, B)
    periods = (reset.every,) if B is None else reset.every
    t0_ = None
    for t1_b in t1s:
        t0_, t1_, _ = check_times(t0, t1_b, None, dtype)
    K = reset.count(float(t0_), t1s[0] if B is None else t1s)
    spans = [float(check_times(t0, t, None, dtype)[1]) - float(t0_) for t in t1s]
    everys = [min(e, sp) for e, sp in zip(periods, spans)]
    # validates everything once (the first segment's times stand for all: the segments are equal); with fixed
    # steps every member's save grid
    for e in everys if dt is not None else everys[:1]:
        first_ts = np.linspace(float(t0_), float(t0_) + e, m + 1)
        y0, hyper_, data_, v_, t0a, t1a, ts1, options = checked_args(state0, hyper, data, float(t0_) + e, first_ts,
                                                                     t0_, v, solver, rtol, atol, dt, max_steps, None,
                                                                     max_norm, members=False)
    hyper, data, v = hyper_, data_, v_
    if observe is not None and not callable(observe):
        raise ValueError(f"observe must be a function observe(t, state) or None, got {brief(observe)}")
    key = jax.random.PRNGKey(0) if key is None else key
    code, scale = reset.code(t0a.dtype)
    if B is not None:  # B members in one vmapped program
        axes = _member_axes(y0, hyper, data, key, B)
        ts, states, status, n, final = _matrix_members(
            y0, hyper, data, v, code, scale, key, t0a, jnp.asarray(everys, t0a.dtype),
            jnp.asarray(t1s, t0a.dtype), K, m, options, axes)
    elif K == 1:  # no reset: the plain solve, bit for bit
        sol = solve_checked(y0, hyper, data, v, t0a, t1a, ts1, options)
        ts, states, status, n = (jax.tree.map(lambda a: a[None], x) for x in (sol.ts, sol.states, sol.status,
                                                                                  sol.num_steps))
        final = jax.tree.map(lambda a: a[-1], sol.states)
    else:
        ts, states, status, n, final = _matrix_segments(y0, hyper, data, v, code, scale, key, t0a,
                                                        jnp.asarray(everys[0], t0a.dtype), t1_, K, m, options)
    observed = None
    if observe is not None:
        observed, states = observe_saved(observe, ts, states), None
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
    segment: int | None = None,
    observe: Callable[[jax.Array, State], Any] | None = None,
    max_norm: float = 1e8,
) -> Segments:
    """Minibatch SGD (`byoldyn.sampled.train`) with Wp reset every `reset.every` of flow time.

    The run is `steps` SGD steps in K segments of n = every / dt steps (dt = `to_flow(sgd)[1]`); segment k
    continues segment k − 1 as `train(..., resume=...)` would, with the `TrainState`'s Wp replaced by the reset
    value and Wp's momentum buffer zeroed (kept for `"keep"`; W's momentum, F̂, the step count and the minibatch
    stream `fold_in(key, step)` carry over), so with one segment (`every` >= steps × dt) it is `train` itself.
    The K segments are one jitted `lax.scan` of `sgd_step`s (one program whatever the reset's init and scale);
    `vmap`-able over seeds (`key`, `reset_key`) and the SGD's values. Runs share one compiled program when their
    K = steps/segment, `segment` and `save_every` (hence saves per segment) and `setup` are the same: with the
    default `segment` (= the period) a different period is a different program; with one `segment` dividing
    every period, runs of those periods (at the same `steps`) share one.

    **Arguments:** as `train`, plus `reset` (a `Reset` of one period; `steps` must be a whole number of periods,
    or at most one) and `reset_key` (PRNG key of the `"random"` draws; the k-th reset uses `fold_in(reset_key, k)`).
    `save_every` must divide the segment (default segment/20). `segment`: the steps per segment (default n, one
    segment per period), a divisor of n: Wp is then reset at the start of every (n/segment)-th segment only (the
    period reaches the program as a value).

    **Returns:** a `Segments` (leading axes (K, segment/save_every + 1)); `final` is the last `TrainState`.
    """
    setup = check_run(state0, sgd, source, key, steps, setup, observe, max_norm, name="train_with_resets")
    _check_reset(reset, reset_key, "reset_key")
    if reset.members is not None:
        raise ValueError("the sampled level takes one reset period (vmap train_with_resets over runs)")
    if setup.predictor.name not in ("learned", "symmetric"):
        raise ValueError(f"a reset needs a learned predictor ('learned' or 'symmetric'), got {setup.predictor.name!r}")
    dt = float(np.asarray(to_flow(sgd)[1]))
    per = reset.every / dt
    if abs(per - round(per)) > 1e-6 * max(per, 1.0) or round(per) < 1:
        raise ValueError(f"reset.every = {reset.every:g} must be a whole number of SGD steps of flow time {dt:g}, "
                         f"got {per:.6g} steps")
    period = min(int(round(per)), int(steps))
    if steps % period:
        raise ValueError(f"steps = {steps} must be a whole number of reset periods of {period} steps (or at most one)")
    n = period if segment is None else segment
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 or period % n:
        raise ValueError(f"segment must be a positive integer dividing the {period} steps of a period, got {segment!r}")
    n = int(n)
    save_every = max(1, n // 20) if save_every is None else save_every
    if isinstance(save_every, bool) or not isinstance(save_every, (int, np.integer)) or save_every < 1 or n % save_every:
        raise ValueError(f"save_every must be a positive integer dividing the {n} steps of a period, got {save_every!r}")
    if steps // n == 1 or period == steps and segment is None:  # no reset: train itself, bit for bit
        r = train(state0, sgd, source, key, n, setup=setup, save_every=int(save_every), observe=observe,
                  max_norm=max_norm)
        lead = lambda x: None if x is None else jax.tree.map(lambda a: a[None], x)  # noqa: E731
        return Segments(r.ts[None], lead(r.states), lead(r.observed), r.status[None],
                        (r.final.step - r.steps[0])[None], r.final)
    ts0 = init_train_state(state0, setup)
    data = flow_moments(source, setup)  # as train (read by batch=None only)
    code, scale = reset.code(ts0.W.dtype)
    rkey = jax.random.PRNGKey(0) if reset_key is None else reset_key
    steps_, ts_, ys, status, good, final = _train_segments(ts0, sgd, source, data, key, code, scale, rkey,
                                                           jnp.asarray(period, jnp.int32), steps // n,
                                                           n // save_every, int(save_every), setup, observe,
                                                           float(max_norm))
    states, observed = (ys, None) if observe is None else (None, ys)
    return Segments(ts_, states, observed, status, good, final)


@eqx.filter_jit
def _train_segments(ts0, sgd, source, data, key, code, scale, reset_key, period, K, n_save, save_every, setup,
                    observe, max_norm):
    """K segments of `sampled.train`'s loop (`saved_loop`: n_save intervals of save_every `sgd_step`s, step k
    drawing with `fold_in(key, k)`) in one scan; Wp (and, except for `"keep"`, its momentum) replaced at the start
    of every segment that starts a period of `period` steps (traced)."""
    _, dt = to_flow(sgd)
    Wp0 = ts0.Wp
    eye = jnp.eye(Wp0.shape[-1], dtype=Wp0.dtype)
    keep = code == INITS.index("keep")
    run = saved_loop(sgd, source, data, key, setup, observe, max_norm)  # sampled.train's loop

    def segment(carry, k):
        ts, alive = carry
        start = ts0.step + k.astype(ts0.step.dtype) * (n_save * save_every)  # nominal, as train's saves
        now = (k > 0) & ((start - ts0.step) % period == 0)
        Wp = _reset_value(code, scale, (start - ts0.step) // period, Wp0, ts.Wp, reset_key, eye)  # the r-th reset
        Wp = 0.5 * (Wp + jnp.swapaxes(Wp, -1, -2)) if setup.predictor.name == "symmetric" else Wp
        vWp = jnp.where(keep, ts.vWp, jnp.zeros_like(ts.vWp))
        ts = jax.tree.map(lambda a, b: jnp.where(now, a, b), eqx.tree_at(lambda t: (t.Wp, t.vWp), ts, (Wp, vWp)), ts)
        first = ts.step
        (ts, alive), ys = run(ts, alive, n_save, save_every)
        steps = start + jnp.arange(n_save + 1, dtype=start.dtype) * save_every
        status = jnp.where(alive, SUCCEEDED, DIVERGED).astype(jnp.int32)
        return (ts, alive), (steps, steps.astype(dt.dtype) * dt, ys, status, ts.step - first)

    (final, _), (steps, ts, ys, status, good) = jax.lax.scan(segment, (ts0, jnp.ones((), bool)), jnp.arange(K))
    return steps, ts, ys, status, good, final


def _mode_field(y, hyper, kappa, tau, lambda_d, fixed):
    """`mode_field` with τ fixed (SimSiam-like) where the traced flag `fixed` is true, evolving (EMA) elsewhere:
    both fields are computed and one is selected (one program for both)."""
    free = mode_field(y, hyper, kappa, None, lambda_d)
    held = mode_field(y, hyper, kappa, tau, lambda_d)
    return jax.tree.map(lambda a, b: jnp.where(fixed, b, a), free, held)


@eqx.filter_jit
def _mode_segments(y0, hyper, kappa, tau, lambda_d, fixed, code, scale, t0, every, K, m, rtol, atol, max_steps,
                   max_norm):
    u = jnp.linspace(0.0, 1.0, m + 1, dtype=t0.dtype)
    solver = diffrax.Tsit5()
    key = jax.random.PRNGKey(0)  # not read: the mode level has no random init

    def segment(y, k):
        tk = t0 + k.astype(t0.dtype) * every
        tk1 = tk + every
        w_p = jnp.where(k > 0, _reset_value(code, scale, k, y0.w_p, y.w_p, key, 1.0), y.w_p)
        y = ModeState(y.w, w_p, jnp.where(fixed, tau * y.w, y.w_a))
        ts = (tk + (tk1 - tk) * u).at[-1].set(tk1)
        ys, status, _, n = adaptive_solve(_mode_field, y, (hyper, kappa, tau, lambda_d, fixed), tk, tk1, ts,
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
    fixed τ, τ = 1 is SimSiam); `reset` a `Reset` of one period with init `"zeros"`, `"identity"` (p_j = scale),
    `"initial"` (p_j = p_j(0)) or `"keep"`; `saves`, `t0`, `rtol`, `atol`, `max_steps`, `max_norm` as `simulate_with_resets`
    and `solve_modes`.

    **Returns:** a `Segments` whose `states` is a `ModeState` with leading axes (K, saves + 1). Calls that differ
    in `tau` (None or a number), the reset's init and scale, the period, t1 or the values (not the shapes) of the
    state and hyperparameters share one compiled program, provided their number of segments K = (t1 − t0)/every
    (static) and `saves` are the same.

    >>> import byoldyn as bd
    >>> from byoldyn.reset import Reset, modes_with_resets
    >>> y0 = bd.ModeState.from_pst(p=0.6, s=0.36, tau=1.0)
    >>> seg = modes_with_resets(y0, bd.Hyper(eta=0.01), 1.5, 200.0, Reset(50.0, "zeros"), tau=1.0)
    >>> seg.ts.shape, round(float(seg.states.p[1, 0]), 6), round(float(seg.final.p), 2)  # p = 0, then regrown
    ((4, 21), 0.0, 0.66)
    """
    _check_reset(reset, None)
    if reset.init == "random":
        raise ValueError("the mode level takes reset init 'zeros', 'identity', 'initial' or 'keep' (a random Wp is "
                         "not aligned with F: use simulate_with_resets)")
    if reset.members is not None:
        raise ValueError("the mode level takes one reset period (runs with other parameters are more modes: the "
                         "fields broadcast)")
    m = _check_saves(saves)
    if not isinstance(y0, ModeState):
        raise ValueError(f"y0 must be a ModeState, got {brief(y0)}")
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
    code, scale = reset.code(dtype)
    ts, states, status, n, final = _mode_segments(y0, hyper, kappa, tau_a, ld, jnp.asarray(tau is not None), code,
                                                  scale, t0_, every, K, m, float(rtol), float(atol), int(max_steps),
                                                  float(max_norm))
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


def critical_period(tau, kappa, eta):
    """T_c = 2κ²η / (τ² (τ² − 4κη)) = 2η / (τ² (p*_+ − p*_−)²): the reset period below which periodic resets of
    p_j to 0 (fixed τ) kill a mode that sits at its fixed point p*_+ (docs/predictor_reset.md, R3).

    An empirical closed form, not derived: the threshold of the exact one-period map (from (p, ŝ) = (0, p*_+²),
    ŝ back to p*_+² after T_c) is universal in κη/τ² (R1), and this form matches it to 2e-8, 2e-5, 5.6e-4 and
    6.2e-3 relative at κη/τ² = 0.01, 0.05, 0.1, 0.15 (η = 0.04, 0.2, 0.4, 0.6 η_c: below 1e-3 up to 0.4 η_c), 7%
    at 0.8 η_c (the map's threshold is the larger). The leading order 2η/(τ² p*_+²) (growth τ² ŝ T_r² − 2η T_r
    of ln ŝ over a period) is off by 2%, 11%, 24%, 40% there. `tau`, `kappa`, `eta` as `theory.p_star`
    (numbers or arrays, isotropic κ); `ValueError` unless 0 < η < η_c = τ²/(4κ).

    >>> from byoldyn.reset import critical_period
    >>> round(float(critical_period(1.0, 1.5, 0.04)), 4)
    0.2368
    """
    tau, kappa, eta = (np.asarray(check_number(n, v) if np.ndim(v) == 0 else v, float)
                       for n, v in (("tau", tau), ("kappa", kappa), ("eta", eta)))
    ec = np.asarray(theory.eta_c(tau, kappa))
    if np.any(eta <= 0) or np.any(eta >= ec) or np.any(tau <= 0):
        raise ValueError(f"critical_period needs tau > 0 and 0 < eta < eta_c = tau²/(4 kappa), got eta = "
                         f"{brief(eta)}, eta_c = {brief(ec)}")
    return 2.0 * kappa ** 2 * eta / (tau ** 2 * (tau ** 2 - 4.0 * kappa * eta))
