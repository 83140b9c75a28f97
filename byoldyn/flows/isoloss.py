"""IsoLoss at the mode level (docs/isoloss.md, Eqs. I1-I6; Halvagal, Laborieux & Zenke, NeurIPS 2023).

IsoLoss sends the output error to the online projection without the factor Wpᵀ: Eq. 3 becomes dW = G − ηW, Eqs. 2
and 4 are unchanged (`Variant(loss="isoloss")` at the matrix level). With W, Wp, Wa diagonal in the common
eigenbasis of X = diag(x), X' = diag(x') (`Data.diagonal`; λ_s = x_j + x'_j, λ_d = x_j) each mode obeys Eq. I1,

    ẇ_p = α_p (λ_d w_a − λ_s w_p w) w − η_p w_p
    ẇ   =      λ_d w_a − λ_s w_p w     − η w
    ẇ_a = β (w − w_a)

`byoldyn.flows.modes.mode_field` with the factor w_p removed from ẇ.

- `iso_mode_field`: Eq. I1 (the arguments of `mode_field`).
- `iso_fixed_point`: the non-collapsed fixed point (p*, s*) per mode at fixed τ (Eqs. I4-I5), s = λ_s w² the
  eigenvalue of F̂ = W (X + X') Wᵀ along the mode.
- `iso_rates`: the eigenvalues of the (p, g = w²) Jacobian there (Eq. I6): the rates of convergence.
"""

from __future__ import annotations

import numpy as np

from ..model import Data, Hyper
from ..validate import check_finite
from .modes import ModeState
from .symmetric import kappa_of

__all__ = ["iso_mode_field", "iso_fixed_point", "iso_rates"]


def iso_mode_field(state: ModeState, hyper: Hyper, kappa, tau=None, lambda_d=1.0) -> ModeState:
    """IsoLoss per mode, Eq. I1 of docs/isoloss.md (Eqs. 2-4 with Wpᵀ removed from Eq. 3, on diagonal W, Wp, Wa):

        ẇ_p = α_p (λ_d w_a − λ_s w_p w) w − η_p w_p,    ẇ = λ_d w_a − λ_s w_p w − η w,    ẇ_a = β (w − w_a)

    **Arguments:** as `byoldyn.flows.modes.mode_field`: `kappa` is λ_s (κ = 1 + σ² for isotropic data), an isotropic
    `Data` or `Data.diagonal(x, xp)` (λ_s = x_j + x'_j, λ_d = x_j per mode on the last axis); `tau` None evolves
    w_a (BYOL), a number fixes w_a = τ w (τ = 1: SimSiam). **Returns:** the time derivative, a `ModeState`.

    >>> import byoldyn as bd
    >>> from byoldyn.flows.modes import ModeState
    >>> from byoldyn.flows.isoloss import iso_mode_field
    >>> d = iso_mode_field(ModeState.from_pst(p=0.5, s=0.25, tau=1.0), bd.Hyper(eta=0.0), 1.5)
    >>> round(float(d.w), 4), round(float(d.w_p), 4)       # (1 − 1.5 · 0.5) · 0.5 and α_p s (1 − 1.5 · 0.5)
    (0.125, 0.0625)
    """
    k, lambda_d = _checked(state, hyper, kappa, lambda_d)
    alpha_p, eta, eta_p, beta = hyper.alpha_p, hyper.eta, hyper.eta_p, hyper.beta
    w, w_p = state.w, state.w_p
    w_a = state.w_a if tau is None else tau * w
    r = lambda_d * w_a - k * w_p * w
    dw_p = alpha_p * r * w - eta_p * w_p
    dw = r - eta * w
    dw_a = beta * (w - w_a) if tau is None else tau * dw
    return ModeState(dw, dw_p, dw_a)


def _checked(state, hyper, kappa, lambda_d):
    """`mode_field`'s checks: a finite `ModeState`, a `Hyper`; (λ_s, λ_d) from `Data.diagonal` (per mode) or
    (κ, lambda_d) as given."""
    if not isinstance(state, ModeState):
        raise ValueError(f"state must be a ModeState, got {type(state).__name__}")
    for name, v in zip(ModeState._fields, state):
        check_finite(name, v)
    if not isinstance(hyper, Hyper):
        raise ValueError(f"hyper must be a Hyper, got {type(hyper).__name__}")
    if isinstance(kappa, Data) and not kappa.is_isotropic:
        if not (isinstance(lambda_d, (int, float)) and lambda_d == 1.0):
            raise ValueError("lambda_d is read from the Data (its X); leave lambda_d at 1")
        return kappa.mode_moments()
    return kappa_of(kappa), lambda_d


def _modes(data: Data):
    if not isinstance(data, Data):
        raise ValueError(f"data must be a byoldyn.Data (isotropic or Data.diagonal), got {type(data).__name__}")
    lambda_s, lambda_d = (np.asarray(a, float) for a in data.mode_moments())
    return lambda_s, lambda_d


def _rates(name, v, lo=0.0):
    a = np.asarray(v, float)
    if not np.all(np.isfinite(a)) or np.any(a < lo):
        raise ValueError(f"{name} must be finite and >= {lo:g}, got {v!r}")
    return a


def iso_fixed_point(tau, data: Data, eta=0.0, alpha_p=1.0, *, eta_p=None, c=0.0):
    """The non-collapsed fixed point of Eq. I1 per mode at fixed τ (docs/isoloss.md, Eqs. I4-I5): (p*, s*), s the
    eigenvalue of F̂ = W (X + X') Wᵀ, s = λ_s w².

    - η = 0 (Eq. I4): p* = τ λ_d/λ_s (Eq. 103, as the Euclidean loss) on the line of fixed points
      s = 2 λ_s p/α_p + λ_s c, where c = g(0) − 2 p(0)/α_p is the mode's invariant (g = w², Eq. I2; `c` per mode),
      so s* = 2 τ λ_d/α_p + λ_s c.
    - η > 0 (Eq. I5): p* = (τ λ_d − η)/λ_s and s* = η_p (τ λ_d − η)/(α_p η) ((τ λ_d − η)/α_p at η_p = η), the one
      non-collapsed fixed point; it exists iff η < τ λ_d (`nan` where it does not).

    s* depends on the mode only through its signal λ_d = x_j, never on the augmentation noise x'_j: modes of equal
    signal share one s* (the representation is isotropic), while p* = τ λ_d/λ_s differs with the noise.

    **Arguments:** `tau` (τ = 1: SimSiam, and BYOL at its fixed points); `data` an isotropic `Data` or
    `Data.diagonal`; `eta`, `alpha_p`, `eta_p` (default `eta`) >= 0, `alpha_p` > 0; `c` (η = 0 only) scalar or per
    mode. **Returns:** `(p, s)`, numpy arrays, one value per mode (scalars for isotropic data).
    """
    lambda_s, lambda_d = _modes(data)
    eta = float(_rates("eta", eta))
    eta_p = eta if eta_p is None else float(_rates("eta_p", eta_p))
    alpha_p = float(_rates("alpha_p", alpha_p))
    if alpha_p <= 0:
        raise ValueError(f"alpha_p must be > 0, got {alpha_p!r}")
    tau = float(_rates("tau", tau))
    if eta == 0.0:
        p = tau * lambda_d / lambda_s
        return p, 2.0 * tau * lambda_d / alpha_p + lambda_s * np.asarray(c, float)
    e = tau * lambda_d - eta
    ok = e > 0
    return np.where(ok, e / lambda_s, np.nan), np.where(ok, eta_p * e / (alpha_p * eta), np.nan)


def iso_rates(tau, data: Data, eta=0.0, alpha_p=1.0, *, eta_p=None, c=0.0):
    """The eigenvalues of the Jacobian of Eq. I1 in (p, g = w²) at `iso_fixed_point` (fixed τ; docs/isoloss.md,
    Eq. I6), sorted, shape (..., 2): the rates of convergence of each mode are their negatives.

    - η = 0: {−α_p s*, 0} (0 along the line of fixed points): −α_p s* = −(2 τ λ_d + α_p λ_s c).
    - η > 0: the roots of μ² + (α_p s* + η_p) μ + 2 η_p (τ λ_d − η) = 0 (at η_p = η: μ² + τ λ_d μ + 2η (τ λ_d − η)).

    Neither depends on the augmentation noise x'_j (at c = 0): modes of equal signal converge at equal rates. Complex
    roots (a damped spiral, η near τ λ_d / 2) are returned as complex numbers. **Arguments:** as `iso_fixed_point`.
    """
    lambda_s, lambda_d = _modes(data)
    p, s = iso_fixed_point(tau, data, eta, alpha_p, eta_p=eta_p, c=c)
    eta = float(eta)
    eta_p = eta if eta_p is None else float(eta_p)
    a = alpha_p * s + eta_p
    if eta == 0.0:
        return np.stack(np.broadcast_arrays(-alpha_p * s, 0.0 * s), axis=-1)
    b = 2.0 * eta_p * (float(tau) * lambda_d - eta)
    disc = np.sqrt((a * a - 4.0 * b).astype(complex))
    roots = np.stack([(-a - disc) / 2.0, (-a + disc) / 2.0], axis=-1)
    return roots.real if np.all(np.abs(roots.imag) == 0) else roots
