"""DirectPred and DirectCopy at the ResNet level: thin names over `byoldyn.predictors` (THEORY.md 10.1-10.2).

The one definition is `byoldyn.predictors.DirectPred` / `DirectCopy` (and `correlation`,
`update_correlation`, Eq. 19); these functions keep the former calls of `byoldyn.nets.directpred` working.
"""

from __future__ import annotations

import jax

from ..predictors import DirectCopy, DirectPred, correlation, update_correlation

__all__ = ["correlation", "update_correlation", "directpred_matrix", "directcopy_matrix"]


def directpred_matrix(F: jax.Array, eps: float, *, form: str = "code") -> jax.Array:
    """`DirectPred(eps, form=form).matrix(F)`: Eq. 18 ("paper") or the official code's form ("code")."""
    return DirectPred(eps=eps, form=form).matrix(F)


def directcopy_matrix(F: jax.Array, eps: float) -> jax.Array:
    """`DirectCopy(eps).matrix(F)`: Wp = F̂ / ‖F̂‖_2 + eps I."""
    return DirectCopy(eps=eps).matrix(F)
