"""DirectPred and DirectCopy: the predictor set from the EMA correlation F̂ (THEORY.md section 10)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["FORMS", "fhat_update", "directpred_predictor", "directcopy_predictor"]

FORMS = ("boost_scale", "paper")


def fhat_update(Fhat: jax.Array, d: jax.Array, rho, first) -> jax.Array:
    """Eq. 19: F̂ <- rho F̂ + (1 - rho) d, with d = E_B[f fᵀ] (not centered); the first call sets F̂ = d (code)."""
    return jnp.where(first, d, rho * Fhat + (1.0 - rho) * d)


def _eig(Fhat):
    s, U = jnp.linalg.eigh(0.5 * (Fhat + jnp.swapaxes(Fhat, -1, -2)))
    return jnp.clip(s, 0.0, None), U  # F̂ is PSD; clamp rounding negatives (THEORY.md section 10.2)


def directpred_predictor(Fhat: jax.Array, eps, form: str = "boost_scale") -> jax.Array:
    """Wp = Û diag(p_j) Ûᵀ from F̂ = Û diag(s_j) Ûᵀ (Eq. 18; THEORY.md sections 10.1-10.2).

    - `form="paper"` (Eq. 18): p_j = sqrt(s_j) + eps max_j s_j.
    - `form="boost_scale"` (official code): p_j = max(sqrt(s_j / max_j s_j) + eps, 1e-4),
      i.e. ∝ sqrt(s_j) + eps sqrt(max s_j); Wp = 0 + eps I-like boost if F̂ = 0.

    Negative eigenvalues of F̂ are clamped to 0 first.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    s, U = _eig(Fhat)
    smax = jnp.max(s, axis=-1, keepdims=True)
    if form == "paper":
        p = jnp.sqrt(s) + eps * smax
    else:
        ok = smax > 0
        p = jnp.maximum(jnp.sqrt(jnp.where(ok, s / jnp.where(ok, smax, 1.0), 0.0)) + eps, 1e-4)
    return (U * p[..., None, :]) @ jnp.swapaxes(U, -1, -2)


def directcopy_predictor(Fhat: jax.Array, eps) -> jax.Array:
    """DirectCopy (Wang et al. 2021, arXiv 2110.04947): Wp = F̂ / ‖F̂‖_2 + eps I, no eigendecomposition.

    The spectral-norm normalization (so that it is DirectPred's boost_scale with s_j in place of
    sqrt(s_j)) is our reading; F̂ = 0 gives Wp = eps I.
    """
    s = jnp.linalg.eigvalsh(0.5 * (Fhat + jnp.swapaxes(Fhat, -1, -2)))
    norm = jnp.max(jnp.abs(s), axis=-1)[..., None, None]
    ok = norm > 0
    eye = jnp.eye(Fhat.shape[-1], dtype=Fhat.dtype)
    return jnp.where(ok, Fhat / jnp.where(ok, norm, 1.0), 0.0) + eps * eye
