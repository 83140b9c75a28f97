"""DirectPred and DirectCopy at the sampled level: thin names over `byoldyn.predictors` (THEORY.md 10.1-10.2).

The one definition is `byoldyn.predictors.DirectPred` / `DirectCopy`; these functions keep the sampled
level's former calls working. The form "boost_scale" is the official code's name of the "code" form.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..predictors import FORM_ALIASES, FORMS, DirectCopy, DirectPred

__all__ = ["FORMS", "FORM_ALIASES", "fhat_update", "directpred_predictor", "directcopy_predictor"]


def fhat_update(Fhat: jax.Array, d: jax.Array, rho, first) -> jax.Array:
    """Eq. 19 from a correlation d = E_B[f fᵀ]: F̂ <- rho F̂ + (1 - rho) d; the first call sets F̂ = d (code)."""
    return jnp.where(first, d, rho * Fhat + (1.0 - rho) * d)


def directpred_predictor(Fhat: jax.Array, eps, form: str = "code") -> jax.Array:
    """`DirectPred(eps, form=form).matrix(Fhat)` (Eq. 18 "paper" or the official "code" / "boost_scale")."""
    return DirectPred(eps=eps, form=form).matrix(Fhat)


def directcopy_predictor(Fhat: jax.Array, eps) -> jax.Array:
    """`DirectCopy(eps).matrix(Fhat)`: Wp = F̂ / ‖F̂‖_2 + eps I."""
    return DirectCopy(eps=eps).matrix(Fhat)
