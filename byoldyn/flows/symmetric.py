"""Reduced matrix flows of (Wp, F) under Assumptions 1-2, with and without the symmetric predictor.

- `symmetric_field`: the symmetrized flow (A1-A3), Eq. 7 = appendix Eq. 67;
- `reduced_field`: the non-symmetrized reduced flow (A1-A2), appendix Eq. 62.

Both act on a `SymState(Wp, F, tau)`. Under Assumption 2 the data enter through
κ = 1 + σ² only. τ is held constant (default) or evolves by the trace projection
of Assumption 1 (see `tau_rate`). THEORY.md section 5.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..model import Data, Hyper, State
from ..validate import check_finite, check_sign, is_concrete

__all__ = ["SymState", "symmetric_field", "reduced_field", "tau_rate", "kappa_of"]


def _T(A):
    return jnp.swapaxes(A, -1, -2)


def _m(x):
    """A scalar (or a batch of scalars) made broadcastable against (..., n, n) matrices."""
    x = jnp.asarray(x)
    return x if x.ndim == 0 else x[..., None, None]


def kappa_of(data) -> jax.Array:
    """κ = 1 + σ² (THEORY.md section 5, Assumption 2) from a number or an isotropic `Data`.

    **Arguments:** `data`: κ itself (> 0), or `Data.isotropic(n1, sigma2)` with X = I.

    **Returns:** κ as an array. `ValueError` for non-isotropic data or X ≠ I.
    """
    if isinstance(data, Data):
        if not data.is_isotropic:
            raise ValueError("the reduced flows need isotropic data (Assumption 2), got a general Data(X, Xp)")
        if is_concrete(data.X) and not np.allclose(np.asarray(data.X), 1.0):
            raise ValueError(f"the reduced flows need X = I (Assumption 2), got X = {np.asarray(data.X)} I")
        return data.X + data.Xp
    kappa = jnp.asarray(data)
    if not jnp.issubdtype(kappa.dtype, jnp.floating):
        kappa = kappa.astype(jnp.result_type(float))
    check_finite("kappa", kappa)
    check_sign("kappa", kappa, strict=True)
    return kappa


class SymState(NamedTuple):
    """State of the reduced flows: predictor Wp (..., n2, n2), F = W Wᵀ (..., n2, n2), EMA ratio τ (...).

    `SymState.from_state` builds one from a Lemma 1 `State` (Assumption 2: F = W Wᵀ,
    τ = ⟨Wa, W⟩_F / ‖W‖_F², the least-squares τ of Assumption 1).
    """

    Wp: jax.Array
    F: jax.Array
    tau: jax.Array

    @classmethod
    def from_state(cls, state: State) -> SymState:
        W, Wa = state.W, state.Wa
        nW = jnp.sum(W * W, axis=(-2, -1))
        tau = jnp.where(nW > 0, jnp.sum(Wa * W, axis=(-2, -1)) / jnp.where(nW > 0, nW, 1.0), 0.0)
        return cls(state.Wp, W @ _T(W), tau)


def _check(state: SymState, hyper: Hyper) -> None:
    if not isinstance(state, SymState):
        raise ValueError(f"state must be a SymState, got {type(state).__name__}")
    if not isinstance(hyper, Hyper):
        raise ValueError(f"hyper must be a Hyper, got {type(hyper).__name__}")
    Wp, F = jnp.asarray(state.Wp), jnp.asarray(state.F)
    if Wp.ndim < 2 or Wp.shape[-1] != Wp.shape[-2] or F.shape[-2:] != Wp.shape[-2:]:
        raise ValueError(f"Wp and F must be square matrices of one size, got shapes {Wp.shape} and {F.shape}")
    for name in ("Wp", "F", "tau"):
        check_finite(name, getattr(state, name))


def tau_rate(state: SymState, dF: jax.Array, beta) -> jax.Array:
    """dτ/dt of Assumption 1 at the matrix level (THEORY.md sections 5 and 7.1).

    Wa = τ W in Eq. 4 gives τ̇ W + τ Ẇ = β (1 − τ) W. Its least-squares solution
    (projection on W) is the matrix form of Eq. 13:

        τ̇ = β (1 − τ) − τ tr(Ḟ) / (2 tr F)

    since ⟨Ẇ, W⟩_F = tr(Ḟ)/2 and ‖W‖_F² = tr F. For one mode it is Eq. 13 exactly.
    At F = 0 (exact collapse) the ratio is 0/0 and is set to 0 (THEORY.md section 7.5).
    """
    trF = jnp.trace(state.F, axis1=-2, axis2=-1)
    trdF = jnp.trace(dF, axis1=-2, axis2=-1)
    ok = trF > 0
    rate = jnp.where(ok, trdF / jnp.where(ok, 2.0 * trF, 1.0), 0.0)
    return beta * (1.0 - state.tau) - state.tau * rate


def _finish(state, dWp, dF, hyper, evolve_tau):
    dtau = jnp.where(evolve_tau, tau_rate(state, dF, hyper.beta), 0.0)
    return SymState(dWp, dF, dtau)


def symmetric_field(state: SymState, hyper: Hyper, kappa, evolve_tau: bool = False) -> SymState:
    """The symmetrized reduced flow, Eq. 7 (= appendix Eq. 67; THEORY.md section 5), {A, B} = AB + BA:

        Ẇp = −(α_p/2) κ {Wp, F} + α_p τ F − η_p Wp
        Ḟ  = −κ {Wp², F} + τ {Wp, F} − 2η F

    **Arguments:**

    - `state`: a `SymState` with symmetric Wp and F; fields may carry leading batch axes.
    - `hyper`: a `Hyper` (α_p, η, β; η_p for the predictor, default η).
    - `kappa`: κ = 1 + σ², or an isotropic `Data` (see `kappa_of`).
    - `evolve_tau`: False holds τ constant (dτ = 0); True evolves it by `tau_rate`.

    **Returns:** the time derivative, a `SymState` (dWp, dF, dτ).
    """
    _check(state, hyper)
    k = _m(kappa_of(kappa))
    Wp, F, tau = state.Wp, state.F, _m(state.tau)
    ap, eta, eta_p = _m(hyper.alpha_p), _m(hyper.eta), _m(hyper.eta_p)
    WpF = Wp @ F
    anti = WpF + _T(WpF)  # {Wp, F} for symmetric Wp, F
    Wp2 = Wp @ Wp
    dWp = -0.5 * ap * k * anti + ap * tau * F - eta_p * Wp
    dF = -k * (Wp2 @ F + F @ Wp2) + tau * anti - 2.0 * eta * F
    return _finish(state, dWp, dF, hyper, evolve_tau)


def reduced_field(state: SymState, hyper: Hyper, kappa, evolve_tau: bool = False) -> SymState:
    """The non-symmetrized reduced flow, appendix Eq. 62 (THEORY.md section 5):

        Ẇp = −α_p κ Wp F + α_p τ F − η_p Wp
        Ḟ  = −κ (WpᵀWp F + F WpᵀWp) + τ (Wpᵀ F + F Wp) − 2η F

    Lemma 1 (Eqs. 2-3) with X = I, X' = σ² I, Wa = τ W and F = W Wᵀ, for any Wp.

    **Arguments:** as `symmetric_field`; Wp may be any square matrix.

    **Returns:** the time derivative, a `SymState` (dWp, dF, dτ).
    """
    _check(state, hyper)
    k = _m(kappa_of(kappa))
    Wp, F, tau = state.Wp, state.F, _m(state.tau)
    ap, eta, eta_p = _m(hyper.alpha_p), _m(hyper.eta), _m(hyper.eta_p)
    PtP = _T(Wp) @ Wp
    WptF = _T(Wp) @ F
    dWp = -ap * k * (Wp @ F) + ap * tau * F - eta_p * Wp
    dF = -k * (PtP @ F + F @ PtP) + tau * (WptF + _T(WptF)) - 2.0 * eta * F
    return _finish(state, dWp, dF, hyper, evolve_tau)
