"""DirectPred and DirectCopy at the sampled level: thin names over `byoldyn.predictors` (THEORY.md 10.1-10.2).

The one definition is `byoldyn.predictors.DirectPred` / `DirectCopy` (and `fhat_update`, Eq. 19); these
functions keep the sampled level's former calls working. The form "boost_scale" is the official code's name of the "code" form.
"""

from __future__ import annotations

import jax

from ..predictors import FORM_ALIASES, FORMS, DirectCopy, DirectPred, fhat_update

__all__ = ["FORMS", "FORM_ALIASES", "fhat_update", "directpred_predictor", "directcopy_predictor"]


def directpred_predictor(Fhat: jax.Array, eps, form: str = "code") -> jax.Array:
    """`DirectPred(eps, form=form).matrix(Fhat)` (Eq. 18 "paper" or the official "code" / "boost_scale")."""
    return DirectPred(eps=eps, form=form).matrix(Fhat)


def directcopy_predictor(Fhat: jax.Array, eps) -> jax.Array:
    """`DirectCopy(eps).matrix(Fhat)`: Wp = F̂ / ‖F̂‖_2 + eps I."""
    return DirectCopy(eps=eps).matrix(Fhat)
