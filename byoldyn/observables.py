"""Observables shared by every level of the model ladder (THEORY.md section 14).

Every function acts on the last two axes and broadcasts over leading batch axes
(time, members, ...), so it applies equally to one state, a trajectory or a sweep.
Eigen-quantities are sorted by decreasing eigenvalue of F.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .model import Data, Hyper, State

__all__ = [
    "F", "eigen_alignment", "commutator", "commutator_normalized", "asymmetry",
    "spectrum_F", "spectrum_Wp", "tau_hat", "wa_correlation", "theorem1_C",
    "theorem1_residual", "norm_W", "n_modes", "effective_rank", "standard",
]


def _T(A):
    return jnp.swapaxes(A, -1, -2)


def _fro(A):
    return jnp.sqrt(jnp.sum(A * A, axis=(-2, -1)))


def _safe_div(a, b):
    ok = b > 0
    return jnp.where(ok, a / jnp.where(ok, b, 1.0), 0.0)


def F(W: jax.Array, data: Data | None = None) -> jax.Array:
    """F = W X Wᵀ, the correlation of the online features (Assumption 2: F = W Wᵀ).

    With `data=None`, X = I.
    """
    WX = W if data is None else data.right(W, "X")
    return WX @ _T(W)


def _eigh_desc(A):
    s, U = jnp.linalg.eigh(A)
    return s[..., ::-1], U[..., ::-1]


def eigen_alignment(F_: jax.Array, Wp: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per eigenvector u_j of F: cos_j = u_jᵀ Wp u_j / ‖Wp u_j‖ (Fig. 2, Theorem 3).

    **Returns:** `(s, cos)`: eigenvalues s_j of F in decreasing order and the cosines (0 where Wp u_j = 0).
    Modes with tiny s_j are noisy; weight or mask them by `s`.
    """
    s, U = _eigh_desc(F_)
    WpU = Wp @ U
    num = jnp.sum(U * WpU, axis=-2)
    return s, _safe_div(num, jnp.linalg.norm(WpU, axis=-2))


def commutator(F_: jax.Array, Wp: jax.Array) -> jax.Array:
    """‖[F, Wp]‖_F = ‖F Wp − Wp F‖_F (Theorem 3, Fig. 9)."""
    return _fro(F_ @ Wp - Wp @ F_)


def commutator_normalized(F_: jax.Array, Wp: jax.Array) -> jax.Array:
    """‖[F, Wp]‖_F / (‖F‖_F ‖Wp‖_F), scale free, in [0, √2]."""
    return _safe_div(commutator(F_, Wp), _fro(F_) * _fro(Wp))


def asymmetry(Wp: jax.Array) -> jax.Array:
    """‖Wp − Wpᵀ‖_F / ‖Wp‖_F (0 for symmetric Wp; Fig. 8 tracks the skew part B)."""
    return _safe_div(_fro(Wp - _T(Wp)), _fro(Wp))


def spectrum_F(F_: jax.Array) -> jax.Array:
    """Eigenvalues s_j of F, decreasing."""
    return jnp.linalg.eigvalsh(F_)[..., ::-1]


def spectrum_Wp(Wp: jax.Array) -> jax.Array:
    """Eigenvalues of the symmetric part A = (Wp + Wpᵀ)/2, decreasing (THEORY.md section 14)."""
    return jnp.linalg.eigvalsh(0.5 * (Wp + _T(Wp)))[..., ::-1]


def tau_hat(W: jax.Array, Wa: jax.Array) -> jax.Array:
    """τ̂ = ⟨Wa, W⟩_F / ‖W‖_F², the least-squares τ in Wa ≈ τ W (Assumption 1); 0 if W = 0."""
    return _safe_div(jnp.sum(Wa * W, axis=(-2, -1)), jnp.sum(W * W, axis=(-2, -1)))


def wa_correlation(W: jax.Array, Wa: jax.Array) -> jax.Array:
    """⟨Wa, W⟩_F / (‖Wa‖_F ‖W‖_F), the normalized correlation of Fig. 7; 0 if either is 0."""
    return _safe_div(jnp.sum(Wa * W, axis=(-2, -1)), _fro(Wa) * _fro(W))


def theorem1_C(state: State, hyper: Hyper) -> jax.Array:
    """C = W Wᵀ − Wpᵀ Wp / alpha_p, fixed by the initial state (Theorem 1, Eq. 5)."""
    W, Wp = state.W, state.Wp
    a = jnp.asarray(hyper.alpha_p)[..., None, None]
    return W @ _T(W) - (_T(Wp) @ Wp) / a


def theorem1_residual(state: State, hyper: Hyper, t, C: jax.Array, *, relative: bool = False) -> jax.Array:
    """‖W Wᵀ − Wpᵀ Wp / alpha_p − e^{−2 eta t} C‖_F (Theorem 1, Eq. 5).

    Zero along any run of Eqs. 2-3 with eta_p = eta, for any Wa dynamics. With
    `relative=True`, divided by ‖W Wᵀ‖_F.
    """
    W = state.W
    WWt = W @ _T(W)
    decay = jnp.exp(-2.0 * jnp.asarray(hyper.eta) * jnp.asarray(t))[..., None, None]
    r = _fro(theorem1_C(state, hyper) - decay * C)
    return _safe_div(r, _fro(WWt)) if relative else r


def norm_W(W: jax.Array) -> jax.Array:
    """‖W‖_F, the simplest collapse indicator."""
    return _fro(W)


def n_modes(F_: jax.Array, threshold: float = 1e-3) -> jax.Array:
    """Number of eigenvalues of F above `threshold` (absolute): the surviving modes."""
    return jnp.sum(spectrum_F(F_) > threshold, axis=-1)


def effective_rank(F_: jax.Array) -> jax.Array:
    """exp of the entropy of the normalized spectrum of F (Roy & Vetterli 2007); 0 for F = 0."""
    s = jnp.clip(spectrum_F(F_), 0.0, None)
    tot = jnp.sum(s, axis=-1, keepdims=True)
    p = _safe_div(s, tot)
    ent = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)
    return jnp.where(tot[..., 0] > 0, jnp.exp(ent), 0.0)


def standard(hyper: Hyper, data: Data, state0: State, *, threshold: float = 1e-3):
    """An `observe(t, state)` for `simulate` that records the standard observables.

    **Returns:** a function giving a dict with scalars `norm_W`, `commutator`,
    `commutator_normalized`, `asymmetry`, `tau_hat`, `wa_correlation`, `theorem1_residual`
    (relative), `n_modes`, `effective_rank`, and per-mode arrays `s` (spectrum of F),
    `p` (spectrum of the symmetric part of Wp) and `alignment`.
    """
    C = theorem1_C(state0, hyper)

    def observe(t, state: State) -> dict[str, jax.Array]:
        F_ = F(state.W, data)
        s, cos = eigen_alignment(F_, state.Wp)
        return {
            "norm_W": norm_W(state.W),
            "commutator": commutator(F_, state.Wp),
            "commutator_normalized": commutator_normalized(F_, state.Wp),
            "asymmetry": asymmetry(state.Wp),
            "tau_hat": tau_hat(state.W, state.Wa),
            "wa_correlation": wa_correlation(state.W, state.Wa),
            "theorem1_residual": theorem1_residual(state, hyper, t, C, relative=True),
            "n_modes": n_modes(F_, threshold).astype(F_.dtype),  # float: NaN-able in saves
            "effective_rank": effective_rank(F_),
            "s": s,
            "p": spectrum_Wp(state.Wp),
            "alignment": cos,
        }

    return observe
