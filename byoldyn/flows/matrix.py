"""Lemma 1 (Eqs. 2-4) and its variants: the full-matrix gradient flow of linear BYOL.

Two independent constructions of the same field:

- `vector_field`: the closed-form right-hand sides of THEORY.md sections 2 and 4;
- `autodiff_field`: `jax.grad` of the closed-form expected loss (Eq. 1), with
  `stop_gradient` on the target branch where the method has it. Used as a cross-check.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..model import Data, Hyper, State

__all__ = ["vector_field", "autodiff_field", "expected_loss", "PREDICTORS"]

PREDICTORS = ("learned", "symmetric", "identity")


def check_variant(ema: bool, stop_grad: bool, predictor: str) -> None:
    """`ValueError` for a variant outside DESIGN.md's semantics."""
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    if not stop_grad and ema:
        raise ValueError("stop_grad=False needs ema=False: with an EMA target no gradient reaches Wa (Theorem 2)")


def _sym(A: jax.Array) -> jax.Array:
    return 0.5 * (A + jnp.swapaxes(A, -1, -2))


def _T(A: jax.Array) -> jax.Array:
    return jnp.swapaxes(A, -1, -2)


def vector_field(
    state: State,
    hyper: Hyper,
    data: Data,
    *,
    ema: bool = True,
    stop_grad: bool = True,
    predictor: str = "learned",
) -> State:
    """Time derivative of (W, Wp, Wa) under Lemma 1 or one of its variants.

    With target T = Wa (BYOL, `ema=True`) or T = W (SimSiam, `ema=False`) and
    G = -Wp W (X + X') + T X:

        dWp = alpha_p G Wᵀ - eta_p Wp                        (Eq. 2)
        dW  = Wpᵀ G - eta W                                  (Eq. 3)
        dWa = beta (W - Wa)        (ema)   or  dW (SimSiam)  (Eq. 4)

    - `stop_grad=False` (SimSiam only, Theorem 2, Eq. 6):
      dW = -(WpᵀWp + I) W X' - (Wp - I)ᵀ(Wp - I) W X - eta W; dWp unchanged.
    - `predictor="identity"`: Wp ≡ I and dWp = 0 (remark after Theorem 2).
    - `predictor="symmetric"`: dWp is replaced by its symmetric part (Assumption 3).

    **Arguments:** an unbatched `State`, `Hyper` and `Data` (use `jax.vmap` for batches).

    **Returns:** a `State` of derivatives (dW, dWp, dWa).
    """
    check_variant(ema, stop_grad, predictor)
    W, Wa = state.W, state.Wa
    Wp = jnp.eye(state.n2, dtype=W.dtype) if predictor == "identity" else state.Wp
    T = Wa if ema else W
    PW = Wp @ W
    G = -data.right(PW, "S") + data.right(T, "X")
    if stop_grad:
        dW = _T(Wp) @ G - hyper.eta * W
    else:  # Theorem 2: gradient through both branches, written as -H vec(W)
        Wt = Wp - jnp.eye(state.n2, dtype=W.dtype)
        dW = -data.right(_T(Wp) @ PW + W, "Xp") - data.right(_T(Wt) @ (Wt @ W), "X") - hyper.eta * W
    if predictor == "identity":
        dWp = jnp.zeros_like(state.Wp)
    else:
        dWp = hyper.alpha_p * (G @ _T(W)) - hyper.eta_p * Wp
        if predictor == "symmetric":
            dWp = _sym(dWp)
    dWa = hyper.beta * (W - Wa) if ema else dW
    return State.unchecked(dW, dWp, dWa)


def expected_loss(W, Wp, T, X, Xp) -> jax.Array:
    """Eq. 1 in closed form: ½ E‖Wp W x1 − T x2‖² with E[x1x1ᵀ] = E[x2x2ᵀ] = X + X', E[x1x2ᵀ] = X.

    = ½ tr(A S Aᵀ) − tr(A X Tᵀ) + ½ tr(T S Tᵀ), with A = Wp W and S = X + X'.
    """
    A = Wp @ W
    S = X + Xp
    return 0.5 * jnp.sum((A @ S) * A) - jnp.sum((A @ X) * T) + 0.5 * jnp.sum((T @ S) * T)


def autodiff_field(
    state: State,
    hyper: Hyper,
    data: Data,
    *,
    ema: bool = True,
    stop_grad: bool = True,
    predictor: str = "learned",
) -> State:
    """The same field as `vector_field`, as `-grad` of `expected_loss` plus weight decay.

    dW = -∂J/∂W - eta W, dWp = -alpha_p ∂J/∂Wp - eta_p Wp, where J is Eq. 1 with
    `stop_gradient` on the target branch when `stop_grad` (full matrices, no structure).
    """
    check_variant(ema, stop_grad, predictor)
    X, Xp = data.matrices()
    eye = jnp.eye(state.n2, dtype=state.W.dtype)

    def J(W, Wp):
        Wp = eye if predictor == "identity" else Wp
        T = state.Wa if ema else W
        T = jax.lax.stop_gradient(T) if stop_grad else T
        return expected_loss(W, Wp, T, X, Xp)

    gW, gWp = jax.grad(J, argnums=(0, 1))(state.W, state.Wp)
    dW = -gW - hyper.eta * state.W
    if predictor == "identity":
        dWp = jnp.zeros_like(state.Wp)
    else:
        dWp = -hyper.alpha_p * gWp - hyper.eta_p * state.Wp
        if predictor == "symmetric":
            dWp = _sym(dWp)
    dWa = hyper.beta * (state.W - state.Wa) if ema else dW
    return State.unchecked(dW, dWp, dWa)
