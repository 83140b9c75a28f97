"""DirectPred and DirectCopy: the predictor set directly from the feature correlation F̂.

THEORY.md section 10. Two forms of DirectPred's eigenvalue map are offered, because the paper and the
official code disagree (section 10.2, "Formula mismatch"):

* `form="paper"`, Eq. 18:  `p_j = sqrt(s_j) + eps * max_j s_j`;
* `form="code"` (official `balance_type=boost_scale`, `dyn_convert=2`):
  `s_j <- max(s_j, 0) / max_j s_j`,  `p_j = max(s_j^(1/2) + eps, 1e-4)`.

Both give `Wp = U diag(p) Uᵀ` with `F̂ = U diag(s) Uᵀ`. F̂ is symmetric PSD, so `eigh` replaces the
code's general `torch.eig` (section 10.2, "JAX port advice"). DirectCopy (Wang, Chen, Du & Tian 2022,
arXiv 2110.04947; not in THEORY.md) copies F̂ itself: `Wp = F̂ / ‖F̂‖_2 + eps I`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["correlation", "update_correlation", "directpred_matrix", "directcopy_matrix"]


def correlation(f: jax.Array) -> jax.Array:
    """`E_B[f fᵀ]` over the leading (sample) axis of `f` (n, d): uncentered, as in Eq. 19."""
    return f.T @ f / f.shape[0]


def update_correlation(F: jax.Array, f: jax.Array, rho, first) -> jax.Array:
    """Eq. 19, `F̂ <- rho F̂ + (1 - rho) E_B[f fᵀ]`; when `first` is true, `F̂ <- E_B[f fᵀ]` (official code).

    `rho` is the *retention*: rho = 0.3 gives the current batch weight 0.7 (section 15, item 3).
    `f` pools both views, (2B, d), and should be detached (stop-gradient) projector outputs.
    """
    d = correlation(f)
    return jnp.where(first, d, rho * F + (1.0 - rho) * d)


def directpred_matrix(F: jax.Array, eps: float, *, form: str = "code", power: float = 2.0) -> jax.Array:
    """DirectPred's predictor `Wp = U diag(p) Uᵀ` from `F̂ = U diag(s) Uᵀ` (Eq. 18; section 10.2).

    **Arguments:**
    - `F`: the correlation estimate F̂ (d, d), symmetric.
    - `eps`: the boost ε of small eigenvalues.
    - `form`: `"code"` (official boost_scale: `p = max((s⁺/s_max)^(1/power) + eps, 1e-4)`) or
      `"paper"` (Eq. 18: `p = sqrt(s⁺) + eps * s_max`), where `s⁺ = max(s, 0)`.
    - `power`: the code's `dyn_convert` (2 = square root); used by `form="code"` only.

    **Returns:** Wp (d, d), symmetric, as used in `y = Wp f`. Zero F̂ gives `eps`-scaled identity
    (`"code"`) or zero (`"paper"`).
    """
    s, U = jnp.linalg.eigh(F)
    s = jnp.clip(s, 0.0, None)
    smax = jnp.max(s)
    if form == "code":
        sn = jnp.where(smax > 0, s / jnp.where(smax > 0, smax, 1.0), 0.0)
        p = jnp.clip(sn ** (1.0 / power) + eps, 1e-4, None)
    elif form == "paper":
        p = jnp.sqrt(s) + eps * smax
    else:
        raise ValueError(f"form must be 'code' or 'paper', got {form!r}")
    return (U * p[None, :]) @ U.T


def directcopy_matrix(F: jax.Array, eps: float) -> jax.Array:
    """DirectCopy's predictor `Wp = F̂ / ‖F̂‖_2 + eps I` (spectral norm; F̂ PSD so ‖F̂‖_2 = s_max)."""
    F = 0.5 * (F + F.T)
    smax = jnp.max(jnp.abs(jnp.linalg.eigvalsh(F)))
    Fn = jnp.where(smax > 0, F / jnp.where(smax > 0, smax, 1.0), 0.0)
    return Fn + eps * jnp.eye(F.shape[0], dtype=F.dtype)
