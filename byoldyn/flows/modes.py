"""The decoupled per-mode dynamics (Eqs. 11-13) and their reductions on the invariant parabola (Eqs. 14-16).

Every field is elementwise, so any number of modes (or members of a sweep) is one array
axis: fields take arrays of any common shape, and `solve_modes` integrates them together.

- `mode_field`: the primary form, the scalar flow (w, w_p, w_a) of Eqs. 2-4 (THEORY.md
  section 7.1, App. D.4). It stays finite in collapse, where τ = w_a / w is 0/0 (section 7.5).
- `pst_field`: Eqs. 11-13 literally, in (p, s, τ); with `evolve_tau=False` the 2-D (p, s) plane of Fig. 3.
- `cubic_field`: the 1-D flow of p on the invariant parabola at fixed τ (Eq. 16).
- `parabola_field`: the 2-D flow on the parabola with τ from Eq. 15, in (p, q = τ p).
- `cosine_mode_field`, `cosine_mode_loss`: the mean-field cosine loss J_cos at the mode level
  (docs/cosine_loss.md, Eqs. C1-C3): the modes couple through two sums over modes (the normalisers), so the modes
  sit on the LAST axis.
- `directpred_field`, `directpred_s_field`, `solve_directpred`: the F̂-derived predictors (DirectPred, DirectCopy,
  every `byoldyn.predictors.Spectral`), p_j = g(s_j, max s) = `predictor.modes(s)` slaved to the spectrum instead
  of Eq. 11 (docs/directpred_modes.md; THEORY.md section 10). The predictor object (or its name) carries ε and
  the form; the simplified form p = √s + ε is `DirectPred(eps, form="raw")`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ..model import Data, Hyper
from ..predictors import Predictor, as_predictor
from ..solution import Solution, check_times, check_tolerances
from ..stepper import adaptive_solve
from ..validate import check_finite, check_sign
from .symmetric import kappa_of

__all__ = [
    "ModeState", "ModePST", "ParabolaState",
    "mode_field", "pst_field", "cubic_field", "parabola_field", "solve_modes", "cosine_mode_field", "cosine_mode_loss",
    "DirectModeState", "directpred_field", "directpred_s_field", "solve_directpred",
]


class ModeState(NamedTuple):
    """Per-mode scalar weights (w, w_p, w_a) (THEORY.md section 7.1); arrays of one shape (..., modes).

    The paper's variables are derived: p = w_p, s = w², τ = w_a / w (NaN or ±inf at w = 0).
    """

    w: jax.Array
    w_p: jax.Array
    w_a: jax.Array

    @property
    def p(self) -> jax.Array:
        return self.w_p

    @property
    def s(self) -> jax.Array:
        """s = w²."""
        return self.w * self.w

    @property
    def tau(self) -> jax.Array:
        """τ = w_a / w (NaN or ±inf at w = 0)."""
        return self.w_a / self.w

    @classmethod
    def from_pst(cls, p, s, tau) -> ModeState:
        """(w, w_p, w_a) = (√s, p, τ√s): the change of variables of section 7.1 (s >= 0)."""
        p, s, tau = (_float(n, v) for n, v in (("p", p), ("s", s), ("tau", tau)))
        check_sign("s", s, strict=False)
        w = jnp.sqrt(s)
        return cls(*jnp.broadcast_arrays(w, p, tau * w))


class ModePST(NamedTuple):
    """Eigenvalues of Wp and F and the EMA ratio, (p, s, τ) (Eqs. 11-13); arrays of one shape."""

    p: jax.Array
    s: jax.Array
    tau: jax.Array


class ParabolaState(NamedTuple):
    """(p, q) on the invariant parabola s = p²/α_p, with q = τ p (Eq. 15: τ(0) = 0 is q(0) = 0)."""

    p: jax.Array
    q: jax.Array

    @property
    def tau(self) -> jax.Array:
        return self.q / self.p


def _float(name, x):
    a = jnp.asarray(x)
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.result_type(float))
    check_finite(name, a)
    return a


def _params(hyper, kappa):
    if not isinstance(hyper, Hyper):
        raise ValueError(f"hyper must be a Hyper, got {type(hyper).__name__}")
    return hyper.alpha_p, hyper.eta, hyper.eta_p, hyper.beta, kappa_of(kappa)


def _moments(kappa, lambda_d):
    """(λ_s, λ_d): from anisotropic `Data.diagonal` (per mode), else (κ, lambda_d) as given."""
    if isinstance(kappa, Data) and not kappa.is_isotropic:
        if not (isinstance(lambda_d, (int, float)) and lambda_d == 1.0):
            raise ValueError("lambda_d is read from the Data (its X); leave lambda_d at 1")
        return kappa.mode_moments()
    return kappa_of(kappa), lambda_d


def _fields(state, cls):
    if not isinstance(state, cls):
        raise ValueError(f"state must be a {cls.__name__}, got {type(state).__name__}")
    for name, v in zip(cls._fields, state):
        check_finite(name, v)


def mode_field(state: ModeState, hyper: Hyper, kappa, tau=None, lambda_d=1.0) -> ModeState:
    """Eqs. 11-13 in the scalar form of Eqs. 2-4 (THEORY.md section 7.1; App. D.4 for λ_d ≠ 1):

        ẇ_p = α_p (λ_d w_a − κ w_p w) w − η_p w_p
        ẇ   = w_p (λ_d w_a − κ w_p w) − η w
        ẇ_a = β (w − w_a)

    With p = w_p, s = w², τ = w_a / w this is exactly Eqs. 11-13, but it stays finite
    when the mode collapses (w, w_a → 0; section 7.5).

    **Arguments:**

    - `state`: a `ModeState`; each field an array over modes (any common shape).
    - `hyper`: a `Hyper` (α_p, η, β; η_p, default η).
    - `kappa`: κ = 1 + σ² (λ_s of App. D.4), or an isotropic `Data`, or anisotropic modes `Data.diagonal(x, xp)`:
      then λ_s = x_j + x'_j and λ_d = x_j per mode, the last axis of the state (docs/anisotropic_modes.md).
    - `tau`: None evolves w_a by Eq. 4 (BYOL). A number fixes τ: w_a is replaced by τ w and
      ẇ_a = τ ẇ (τ = 1 is SimSiam).
    - `lambda_d`: λ_d of App. D.4 (1 for the main model; taken from the data for `Data.diagonal`).

    **Returns:** the time derivative, a `ModeState`.

    >>> import byoldyn as bd
    >>> from byoldyn.flows.modes import ModeState, mode_field
    >>> data = bd.Data.diagonal([1.0, 0.1], [0.5, 0.5])   # two modes, equal augmentation noise
    >>> d = mode_field(ModeState.from_pst(p=0.5, s=0.25, tau=1.0), bd.Hyper(eta=0.0), data)
    >>> [round(float(v), 4) for v in d.w_p]                # α_p w² (λ_d τ − λ_s p)
    [0.0625, -0.05]
    """
    _fields(state, ModeState)
    alpha_p, eta, eta_p, beta, _ = _params(hyper, 1.0)
    k, lambda_d = _moments(kappa, lambda_d)
    w, w_p = state.w, state.w_p
    k, lambda_d = _ranked(k, jnp.ndim(w)), _ranked(lambda_d, jnp.ndim(w))  # per-mode moments against members × modes
    w_a = state.w_a if tau is None else tau * w
    r = lambda_d * w_a - k * w_p * w
    dw_p = alpha_p * r * w - eta_p * w_p
    dw = w_p * r - eta * w
    dw_a = beta * (w - w_a) if tau is None else tau * dw
    return ModeState(dw, dw_p, dw_a)


def _target(state: ModeState, tau):
    """T = w_a (BYOL, `tau` None) or τ w (fixed τ; τ = 1 is SimSiam)."""
    return state.w_a if tau is None else tau * state.w


def _norm_root(N):
    """√N floored at 1e-12, as the matrix level's `expected_cosine_loss` (a zero branch: J_cos = 1, no gradient)."""
    return jnp.maximum(jnp.sqrt(jnp.maximum(N, 0.0)), 1e-12)


def _ranked(a, ndim):
    """`a` with leading unit axes up to `ndim` axes (per-mode moments against members × modes, rank explicitly)."""
    a = jnp.asarray(a)
    return a.reshape((1,) * (ndim - a.ndim) + a.shape) if 0 < a.ndim < ndim else a


def _cosine_sums(w, w_p, T, lambda_s, lambda_d):
    """(C, N1, N2) of Eq. C1, summed over the last (mode) axis, keepdims."""
    w, w_p, T = jnp.broadcast_arrays(w, w_p, T)
    lambda_s, lambda_d = _ranked(lambda_s, w.ndim), _ranked(lambda_d, w.ndim)
    A = w_p * w
    C = jnp.sum(lambda_d * A * T, axis=-1, keepdims=True)
    N1 = jnp.sum(lambda_s * A * A, axis=-1, keepdims=True)
    N2 = jnp.sum(lambda_s * T * T, axis=-1, keepdims=True)
    return C, N1, N2


def cosine_mode_loss(state: ModeState, kappa, tau=None, lambda_d=1.0) -> jax.Array:
    """The mean-field cosine loss at the mode level, Eq. C1 (docs/cosine_loss.md):

        J_cos = 1 − C / √(N1 N2),   C = Σ_j λ_d p_j w_j T_j,   N1 = Σ_j λ_s p_j² w_j²,   N2 = Σ_j λ_s T_j²

    with T = w_a (BYOL) or τ w: `expected_cosine_loss` at W = diag(w), Wp = diag(w_p), T = diag(T), sums over the
    last (mode) axis. **Arguments:** as `cosine_mode_field`. **Returns:** J_cos, the state's shape without its last
    axis.
    """
    _fields(state, ModeState)
    lambda_s, lambda_d = _moments(kappa, lambda_d)
    C, N1, N2 = _cosine_sums(state.w, state.w_p, _target(state, tau), lambda_s, lambda_d)
    return (1.0 - C / (_norm_root(N1) * _norm_root(N2)))[..., 0]


def cosine_mode_field(state: ModeState, hyper: Hyper, kappa, tau=None, lambda_d=1.0,
                      stop_grad: bool = True) -> ModeState:
    """The mean-field cosine-loss flow at the mode level, Eqs. C2-C3 (docs/cosine_loss.md): `Variant(loss="cosine")`
    of the matrix level on W, Wp, Wa diagonal in the data's eigenbasis. With the global sums of Eq. C1 and

        γ = 1/√(N1 N2),   ρ = C/N1,   r_j = λ_d T_j − ρ λ_s p_j w_j,

    each mode obeys

        ẇ_p = α_p γ w r − η_p w_p,     ẇ = γ w_p r − η w,     ẇ_a = β (w − w_a)   (T = w_a; else T = τ w)

    `mode_field` with r's self-term scaled by ρ and the rate by γ: the d modes couple through the two scalars γ
    and ρ (sums over the modes), so the modes are the LAST axis. `stop_grad=False` (T = τ w differentiated, N2
    included; needs a fixed `tau`): ẇ = γ w (2 λ_d τ p − ρ λ_s p² − ρ₂ λ_s τ²) − η w, ρ₂ = C/N2 (Eq. C3').

    **Arguments:** `state` a `ModeState` with the modes on the last axis (leading axes are members); `hyper`,
    `kappa`, `tau`, `lambda_d` as `mode_field` (`kappa` also `Data.diagonal(x, xp)`); `stop_grad` as
    `byoldyn.Variant`.

    **Returns:** the time derivative, a `ModeState`.

    >>> import byoldyn as bd
    >>> from byoldyn.flows.modes import ModeState, cosine_mode_field
    >>> data = bd.Data.diagonal([1.0, 0.5], [0.5, 1.0])                # κ_j = (x_j + x'_j)/x_j = 1.5, 3
    >>> s = ModeState.from_pst(p=[0.6, 0.3], s=[1.0, 0.25], tau=1.0)   # p_j ∝ 1/κ_j, any scale: a fixed point
    >>> d = cosine_mode_field(s, bd.Hyper(eta=0.0), data)
    >>> [round(abs(float(v)), 12) for v in d.w]
    [0.0, 0.0]
    """
    _fields(state, ModeState)
    alpha_p, eta, eta_p, beta, _ = _params(hyper, 1.0)
    lambda_s, lambda_d = _moments(kappa, lambda_d)
    if not stop_grad and tau is None:
        raise ValueError("stop_grad=False needs a fixed tau (T = τ w; an EMA target gets no gradient, Theorem 2)")
    w, w_p, T = jnp.broadcast_arrays(state.w, state.w_p, _target(state, tau))
    lambda_s, lambda_d = _ranked(lambda_s, w.ndim), _ranked(lambda_d, w.ndim)
    C, N1, N2 = _cosine_sums(w, w_p, T, lambda_s, lambda_d)
    r1, r2 = _norm_root(N1), _norm_root(N2)
    gamma = 1.0 / (r1 * r2)
    # d(1/√N)/dN is 0 where the floor holds (as jax.grad of the floored root at the matrix level)
    rho = jnp.where(jnp.sqrt(jnp.maximum(N1, 0.0)) > 1e-12, C / jnp.where(N1 > 0, N1, 1.0), 0.0)
    r = lambda_d * T - rho * lambda_s * w_p * w
    dw_p = alpha_p * gamma * r * w - eta_p * w_p
    if stop_grad:
        dw = gamma * w_p * r - eta * w
    else:
        rho2 = jnp.where(jnp.sqrt(jnp.maximum(N2, 0.0)) > 1e-12, C / jnp.where(N2 > 0, N2, 1.0), 0.0)
        dw = gamma * w * (2.0 * tau * lambda_d * w_p - rho * lambda_s * w_p * w_p - rho2 * lambda_s * tau * tau) \
            - eta * w
    dw_a = beta * (w - state.w_a) if tau is None else tau * dw
    return ModeState(dw, dw_p, dw_a)


def pst_field(state: ModePST, hyper: Hyper, kappa, evolve_tau: bool = True) -> ModePST:
    """Eqs. 11-13 in the paper's variables (THEORY.md section 7.1):

        ṗ = α_p s (τ − κ p) − η_p p                       (11)
        ṡ = 2 p s (τ − κ p) − 2η s                        (12)
        τ̇ = β (1 − τ) − τ ṡ / (2s) = β (1 − τ) − τ [p (τ − κ p) − η]     (13)

    Eq. 13 is used in the simplified form on the right, defined at s = 0 too. In collapse
    τ still runs off to β/(β − η), or to infinity if η >= β (section 7.5): prefer `mode_field`.

    **Arguments:** `state` a `ModePST`; `hyper`, `kappa` as `mode_field`; `evolve_tau=False`
    holds τ fixed, giving the 2-D (p, s) system of Fig. 3.

    **Returns:** the time derivative, a `ModePST`.
    """
    _fields(state, ModePST)
    alpha_p, eta, eta_p, beta, k = _params(hyper, kappa)
    p, s, tau = state
    g = tau - k * p
    dp = alpha_p * s * g - eta_p * p
    growth = p * g - eta  # ṡ / (2s)
    ds = 2.0 * s * growth
    dtau = jnp.where(evolve_tau, beta * (1.0 - tau) - tau * growth, 0.0)
    return ModePST(dp, ds, dtau)


def cubic_field(p, hyper: Hyper, kappa, tau) -> jax.Array:
    """The 1-D flow on the invariant parabola s = p²/α_p at fixed τ, Eq. 16 (THEORY.md section 7.4):

        ṗ = p² (τ − κ p) − η p = −κ p (p − p*_−)(p − p*_+)

    **Arguments:** `p` an array over modes; `hyper`, `kappa` as `mode_field` (η only: the parabola
    is invariant when η_p = η); `tau` the fixed τ.

    **Returns:** ṗ, an array like `p`.
    """
    p = _float("p", p)
    _, eta, _, _, k = _params(hyper, kappa)
    return p * p * (tau - k * p) - eta * p


def parabola_field(state: ParabolaState, hyper: Hyper, kappa) -> ParabolaState:
    """The 2-D flow on the invariant parabola with τ from Eq. 15 (THEORY.md section 7.4).

    Eq. 15, τ(t) = p(t)⁻¹ β e^{−βt} ∫_0^t p(t') e^{βt'} dt', says q = τ p obeys q̇ = β (p − q),
    q(0) = 0. With Eq. 16 (p² τ = p q):

        ṗ = p q − κ p³ − η p,      q̇ = β (p − q)

    Finite in collapse (p, q → 0), unlike τ itself.

    **Arguments:** `state` a `ParabolaState`; `hyper`, `kappa` as `mode_field` (η only, as `cubic_field`).

    **Returns:** the time derivative, a `ParabolaState`.
    """
    _fields(state, ParabolaState)
    _, eta, _, beta, k = _params(hyper, kappa)
    p, q = state
    return ParabolaState(p * q - k * p * p * p - eta * p, beta * (p - q))


# ---------------------------------------------------------------------------------------------
# integration


@eqx.filter_jit
def _solve(field, y0, args, t0, t1, ts, solver, rtol, atol, max_steps, max_norm):
    ys, status, t_final, n = adaptive_solve(field, y0, args, t0, t1, ts, solver=solver, rtol=rtol, atol=atol,
                                            max_steps=max_steps, max_norm=max_norm)
    return Solution(ts=ts, states=ys, observed=None, status=status, t_final=t_final, num_steps=n)


def solve_modes(
    field: Callable,
    y0,
    t1: float,
    *,
    args: tuple = (),
    ts=None,
    t0: float = 0.0,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    max_norm: float = 1e8,
) -> Solution:
    """Integrate a mode system `dy/dt = field(y, *args)` from `t0` to `t1` (diffrax Tsit5, PID steps).

    All modes in `y0` share one adaptive solve; `jit`-compiled and `vmap`-able over `y0` and `args`.
    A run whose state turns non-finite or exceeds `max_norm` stops with status `DIVERGED`
    and NaN saves after it, as in `byoldyn.simulate` (the same solve: `byoldyn.stepper.adaptive_solve`).

    **Arguments:**

    - `field`: one of `mode_field`, `pst_field`, `cubic_field`, `parabola_field` (or any
      module-level function of the same kind; a new lambda per call recompiles).
    - `y0`: initial state, e.g. a `ModeState`; float64 if its arrays are float64.
    - `t1`, `t0`: final and initial time; `ts`: save times in [t0, t1] (default 101 points).
    - `args`: the remaining arguments of `field`, e.g. `(hyper, kappa)` or `(hyper, kappa, tau)`;
      Python numbers and bools become arrays, so changing them does not recompile.
    - `solver`, `rtol`, `atol`, `max_steps`, `max_norm`: as `byoldyn.simulate`.

    **Returns:** a `byoldyn.Solution` whose `states` is a pytree like `y0` with a leading time axis.
    """
    if not callable(field):
        raise ValueError(f"field must be callable, got {field!r}")
    leaves = jax.tree.leaves(y0)
    if not leaves:
        raise ValueError("y0 must contain arrays")
    y0 = jax.tree.map(lambda a: _float("y0", a), y0)
    t0, t1, ts = check_times(t0, t1, ts, jax.tree.leaves(y0)[0].dtype)
    check_tolerances(rtol, atol, max_steps)
    if not float(max_norm) > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    dtype = t1.dtype
    args = tuple(jnp.asarray(a) if isinstance(a, bool) else
                 jnp.asarray(a, dtype) if isinstance(a, (int, float)) else a for a in args)
    field(y0, *args)  # validates the arguments once, outside jit
    # strong types everywhere, so that equal shapes and dtypes share one compiled solve
    y0, args = jax.tree.map(lambda a: jnp.asarray(a, a.dtype) if isinstance(a, jax.Array) else a, (y0, args))
    solver = diffrax.Tsit5() if solver is None else solver
    return _solve(field, y0, args, t0, t1, ts, solver, float(rtol), float(atol), int(max_steps), float(max_norm))


# ---------------------------------------------------------------------------------------------
# DirectPred / DirectCopy: p_j slaved to the spectrum (docs/directpred_modes.md; THEORY.md sections 7.1, 10)


class DirectModeState(NamedTuple):
    """Per-mode (w, w_a) of a mode system whose predictor eigenvalue p_j = g(s_j, max_k s_k) is not a state
    (DirectPred / DirectCopy, docs/directpred_modes.md); arrays of one shape (..., modes), modes on the LAST axis.

    s = w², τ = w_a / w (NaN or ±inf at w = 0), as `ModeState` without w_p.
    """

    w: jax.Array
    w_a: jax.Array

    @property
    def s(self) -> jax.Array:
        """s = w²."""
        return self.w * self.w

    @property
    def tau(self) -> jax.Array:
        """τ = w_a / w (NaN or ±inf at w = 0)."""
        return self.w_a / self.w

    @classmethod
    def from_s_tau(cls, s, tau=0.0) -> DirectModeState:
        """(w, w_a) = (√s, τ√s) (s >= 0; τ(0) = 0 is the paper's W_a(0) = 0, THEORY.md section 5)."""
        s, tau = _float("s", s), _float("tau", tau)
        check_sign("s", s, strict=False)
        w = jnp.sqrt(s)
        return cls(*jnp.broadcast_arrays(w, tau * w))


@runtime_checkable
class _Slaving(Protocol):
    """What the slaved fields read of a predictor: p = g(s, max s) over the last axis (`byoldyn.predictors.Direct`,
    or any object with such a `.modes(s)`)."""

    def modes(self, s: jax.Array) -> jax.Array: ...


def _direct(predictor) -> _Slaving:
    """The predictor object of a name or object; `ValueError` unless its Wp is set from F̂ (a `.modes(s)`)."""
    p = as_predictor(predictor) if isinstance(predictor, (str, Predictor)) else predictor
    if not isinstance(p, _Slaving) or not callable(p.modes):
        raise ValueError(f"predictor must be one whose Wp is set from F̂, with a .modes(s) method (DirectPred, "
                         f"DirectCopy, ...), got {predictor!r}")
    return p


def _slaved_p(predictor, s):
    """p = predictor.modes(s) over the last axis; 0 where undefined (every mode exactly 0: s/max s = 0/0),
    where ṡ = 2 p s (...) vanishes anyway."""
    p = _direct(predictor).modes(s)
    return jnp.where(jnp.isfinite(p), p, 0.0)


def directpred_field(state: DirectModeState, hyper: Hyper, kappa, predictor, tau=None,
                     lambda_d=1.0) -> DirectModeState:
    """Eqs. 12-13 with the predictor slaved to the spectrum, p = g(s, max s) = `predictor.modes(s)`
    (docs/directpred_modes.md; THEORY.md sections 7.1, 10.1 Eq. 18, 10.2), in the scalar form of `mode_field`:

        ẇ   = p (λ_d w_a − κ p w) − η w,     p_j = g(w_j², max_k w_k²)
        ẇ_a = β (w − w_a)

    i.e. ṡ_j = 2 p_j s_j (λ_d τ_j − κ p_j) − 2η s_j (Eq. 12) and Eq. 13 for τ_j = w_a/w, finite in collapse.
    Eq. 11 is gone: there is no predictor state (α_p and η_p play no role).

    **Arguments:**

    - `state`: a `DirectModeState`, modes on the last axis (the max is taken over it; leading axes are members).
    - `hyper`: a `Hyper` (η, β); `kappa`: κ = 1 + σ² or an isotropic `Data`.
    - `predictor`: a predictor whose Wp is set from F̂ (`DirectPred`, `DirectCopy`, ...; or its name), whose
      `.modes(s)` over the last axis gives p; its own ε and form are the ones used.
    - `tau`: None evolves w_a (BYOL, Eq. 13); a number fixes τ (w_a = τ w; τ = 1 is SimSiam).
    - `lambda_d`: λ_d of App. D.4 (1 for the main model).

    **Returns:** the time derivative, a `DirectModeState`.
    """
    _fields(state, DirectModeState)
    _, eta, _, beta, k = _params(hyper, kappa)
    w = state.w
    w_a = state.w_a if tau is None else tau * w
    p = _slaved_p(predictor, w * w)
    dw = p * (lambda_d * w_a - k * p * w) - eta * w
    dw_a = beta * (w - w_a) if tau is None else tau * dw
    return DirectModeState(dw, dw_a)


def directpred_s_field(s, hyper: Hyper, kappa, predictor, tau) -> jax.Array:
    """Eq. 12 alone at fixed τ with p = `predictor.modes(s)` (docs/directpred_modes.md, section D1):

        ṡ_j = 2 s_j [p_j (τ − κ p_j) − η],     p_j = g(s_j, max_k s_k)

    **Arguments:** `s` (..., modes), >= 0; `hyper`, `kappa`, `predictor` as `directpred_field`; `tau` the fixed τ.

    **Returns:** ṡ, an array like `s`.
    """
    s = _float("s", s)
    check_sign("s", s, strict=False)
    _, eta, _, _, k = _params(hyper, kappa)
    p = _slaved_p(predictor, s)
    return 2.0 * s * (p * (tau - k * p) - eta)


def solve_directpred(
    y0: DirectModeState,
    t1: float,
    hyper: Hyper,
    kappa,
    predictor,
    *,
    tau=None,
    lambda_d: float = 1.0,
    **kwargs,
) -> Solution:
    """Integrate `directpred_field` from `y0` to `t1` with `solve_modes` (same solver, tolerances, blow-up rule).

    **Arguments:** `y0` a `DirectModeState` (modes on the last axis); `hyper`, `kappa`, `predictor`, `tau`,
    `lambda_d` as `directpred_field`; `kwargs` (`ts`, `t0`, `solver`, `rtol`, `atol`, `max_steps`, `max_norm`)
    as `solve_modes`.

    **Returns:** a `byoldyn.Solution` whose `states` is a `DirectModeState` with a leading time axis
    (s = states.s, τ = states.tau; p = predictor.modes(states.s)).

    Example (p = √s + ε with ε(τ − κε) > η: every mode ends at s*_+ = (p*_+ − ε)², docs/directpred_modes.md D3):

    >>> import numpy as np, byoldyn as bd
    >>> from byoldyn.flows import DirectModeState, solve_directpred
    >>> pred = bd.DirectPred(eps=0.1, form="raw")
    >>> y0 = DirectModeState.from_s_tau([0.01, 0.5], 1.0)
    >>> sol = solve_directpred(y0, 400.0, bd.Hyper(eta=0.05), 1.5, pred, tau=1.0, ts=[400.0])
    >>> np.round(np.asarray(sol.states.s[-1]), 4).tolist(), round(float(bd.theory.directpred_s_star(
    ...     pred, 1.0, 1.5, 0.05)[1]), 4)
    ([0.2624, 0.2624], 0.2624)
    """
    if not isinstance(y0, DirectModeState):
        raise ValueError(f"y0 must be a DirectModeState, got {type(y0).__name__}")
    predictor = _direct(predictor)
    if tau is None:
        return solve_modes(_directpred_byol, y0, t1, args=(hyper, kappa, predictor, lambda_d), **kwargs)
    return solve_modes(_directpred_fixed_tau, y0, t1, args=(hyper, kappa, predictor, tau, lambda_d), **kwargs)


def _directpred_byol(state, hyper, kappa, predictor, lambda_d):
    return directpred_field(state, hyper, kappa, predictor, None, lambda_d)


def _directpred_fixed_tau(state, hyper, kappa, predictor, tau, lambda_d):
    return directpred_field(state, hyper, kappa, predictor, tau, lambda_d)
