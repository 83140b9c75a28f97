"""Lemma 1 (Eqs. 2-4) and its variants: the full-matrix gradient flow of linear BYOL.

Two independent constructions of the same field:

- `vector_field`: the closed-form right-hand sides of THEORY.md sections 2 and 4;
- `autodiff_field`: `jax.grad` of the closed-form expected loss (Eq. 1), with
  `stop_gradient` on the target branch where the method has it. Used as a cross-check.

`Variant(loss="cosine")` is the normalised loss in its high-dimensional mean-field form
(`expected_cosine_loss`, docs/cosine_loss.md); its field is `autodiff_field`'s construction with that loss
(it has no second closed form here). `Variant(loss="isoloss")` is IsoLoss (docs/isoloss.md): Eq. 3 without the
factor Wpᵀ, dW = G − ηW, the rest of Lemma 1 unchanged; `expected_isoloss` is its expected loss for the
autodiff construction.

The variant is a `byoldyn.Variant` (`variant=`), or its shorthands `ema=`, `stop_grad=`, `predictor=`
(`byoldyn.predictors.as_variant`); the predictor object carries its own parameters (ε, form, beta_F), which
are the ones the field reads. The predictor is any predictor of `byoldyn.predictors` (or its name). Learned ones
(learned, symmetric) have the gradient flow Eq. 2; `identity` fixes Wp = I; DirectPred and
DirectCopy set Wp = g(F̂) from the predictor-input correlation (THEORY.md 10.1-10.2, 15.13):
F̂ = F_aug = W (X + X') Wᵀ when `beta_F` is None, else the extra state `State.Fhat` with
dF̂/dt = beta_F (F_aug - F̂). Their Wp gets no gradient flow (dWp = 0): the field reads g(F̂),
never `state.Wp`, and `synced` writes g(F̂) into the saved states.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import predictors as P
from ..model import Data, Hyper, State

__all__ = ["vector_field", "autodiff_field", "expected_loss", "expected_cosine_loss", "expected_isoloss", "PREDICTORS",
           "check_variant",
           "augmented_correlation", "derives_wp", "effective_wp", "synced"]

#: the predictors of the matrix level: every one of the registry (`byoldyn.predictors.PREDICTORS`)
PREDICTORS = tuple(P.PREDICTORS)


def check_variant(ema: bool, stop_grad: bool, predictor) -> P.Predictor:
    """The predictor object of a name or object (`ValueError` listing the names for an unknown one), after
    checking the variant against DESIGN.md's semantics (`byoldyn.Variant`'s checks)."""
    return P.Variant(ema=ema, stop_grad=stop_grad, predictor=predictor).predictor


def _variant(variant, ema, stop_grad, predictor) -> P.Variant:
    return P.as_variant(variant, ema=ema, stop_grad=stop_grad, predictor=predictor)


def derives_wp(predictor) -> bool:
    """True for a predictor whose Wp is a function g(F̂) of the correlation (DirectPred, DirectCopy)."""
    return isinstance(P.as_predictor(predictor), P.Direct)


def _uses_fhat(p) -> bool:
    return derives_wp(p) and getattr(p, "beta_F", None) is not None


def _sym(A: jax.Array) -> jax.Array:
    return 0.5 * (A + jnp.swapaxes(A, -1, -2))


def _T(A: jax.Array) -> jax.Array:
    return jnp.swapaxes(A, -1, -2)


def augmented_correlation(W: jax.Array, data: Data) -> jax.Array:
    """F_aug = E[f1 f1ᵀ] = W (X + X') Wᵀ, the correlation of the augmented views that DirectPred's
    F̂ accumulates (THEORY.md 15.13; the theory's F = W X Wᵀ is `observables.F`)."""
    if not data.is_isotropic:
        return _sym(data.right(W, "S") @ _T(W))
    S, WWt = jnp.asarray(data.X + data.Xp), W @ _T(W)
    if S.ndim:  # one kappa per member (simulate_batch): kappa_b W_b W_bᵀ, ranks made equal explicitly
        S = S[..., None, None]
        n = max(S.ndim, WWt.ndim)
        S, WWt = (a.reshape((1,) * (n - a.ndim) + a.shape) for a in (S, WWt))
    return S * WWt


def _fhat(state: State, data: Data | None, p) -> jax.Array:
    if not _uses_fhat(p):
        if data is None:
            raise ValueError(f"{p.name} without beta_F needs the data (F̂ = W (X + X') Wᵀ)")
        return augmented_correlation(state.W, data)
    if state.Fhat is None:
        raise ValueError(f"{p.name} with beta_F = {p.beta_F} needs the state's Fhat (State(W, Wp, Wa, Fhat=...)); "
                         "simulate starts it at W (X + X') Wᵀ")
    return state.Fhat


def effective_wp(state: State, data: Data | None, predictor) -> jax.Array:
    """The Wp the field uses: I (`identity`), g(F̂) (DirectPred, DirectCopy) or `state.Wp` (learned).
    `data` may be None for a predictor that carries F̂ (`beta_F` set: F̂ is `state.Fhat`)."""
    p = P.as_predictor(predictor)
    if p.name == "identity":
        return jnp.broadcast_to(jnp.eye(state.n2, dtype=state.W.dtype), state.Wp.shape)
    if isinstance(p, P.Direct):
        return p.matrix(_fhat(state, data, p)).astype(state.Wp.dtype)
    return state.Wp


def synced(state: State, data: Data, predictor) -> State:
    """`state` with Wp = g(F̂) for DirectPred / DirectCopy (unchanged otherwise); any leading axes."""
    if not derives_wp(predictor):
        return state
    return State.unchecked(state.W, effective_wp(state, data, predictor), state.Wa, state.Fhat)


def _dfhat(state: State, data: Data, p):
    """dF̂/dt = beta_F (W (X + X') Wᵀ - F̂) (THEORY.md 15.13, the ODE limit of Eq. 19); 0 if F̂ is not used."""
    if state.Fhat is None:
        return None
    if not _uses_fhat(p):
        return jnp.zeros_like(state.Fhat)
    return jnp.asarray(p.beta_F, state.Fhat.dtype) * (augmented_correlation(state.W, data) - state.Fhat)


def vector_field(
    state: State,
    hyper: Hyper,
    data: Data,
    *,
    variant: P.Variant | None = None,
    ema: bool | None = None,
    stop_grad: bool | None = None,
    predictor: str | P.Predictor | None = None,
) -> State:
    """Time derivative of (W, Wp, Wa[, Fhat]) under Lemma 1 or one of its variants.

    With target T = Wa (BYOL, `ema=True`) or T = W (SimSiam, `ema=False`) and
    G = -Wp W (X + X') + T X:

        dWp = alpha_p G Wᵀ - eta_p Wp                        (Eq. 2)
        dW  = Wpᵀ G - eta W                                  (Eq. 3)
        dWa = beta (W - Wa)        (ema)   or  dW (SimSiam)  (Eq. 4)

    - `stop_grad=False` (SimSiam only, Theorem 2, Eq. 6):
      dW = -(WpᵀWp + I) W X' - (Wp - I)ᵀ(Wp - I) W X - eta W; dWp unchanged.
    - `predictor="identity"`: Wp ≡ I and dWp = 0 (remark after Theorem 2).
    - `predictor="symmetric"`: dWp is replaced by its symmetric part (Assumption 3).
    - DirectPred / DirectCopy (`"directpred"`, `bd.DirectPred(eps=...)`, THEORY.md 10.1-10.2): Wp = g(F̂)
      in Eq. 3, F̂ = W (X + X') Wᵀ (`beta_F=None`) or `state.Fhat` with
      dF̂ = beta_F (W (X + X') Wᵀ - F̂) (THEORY.md 15.13); dWp = 0 (`state.Wp` is not read).
    - `Variant(loss="cosine")`: the same structure with Eq. 1 replaced by the mean-field cosine loss
      `expected_cosine_loss` (docs/cosine_loss.md): dW = -∂J_cos/∂W - eta W, dWp = -alpha_p ∂J_cos/∂Wp - eta_p Wp,
      by `jax.grad` (`autodiff_field`'s construction), the other rules above unchanged.
    - `Variant(loss="isoloss")` (IsoLoss, docs/isoloss.md): the output error reaches W without the factor Wpᵀ,
      dW = G - eta W (Eq. 3 with Wpᵀ removed); dWp (Eq. 2), dWa (Eq. 4) and the predictor rules unchanged.

    **Arguments:** an unbatched `State`, `Hyper` and `Data` (use `jax.vmap` for batches); `variant` a
    `byoldyn.Variant`, or its shorthands `ema`, `stop_grad`, `predictor` (defaults True, True, "learned"; given
    with `variant`, they must agree with it).

    **Returns:** a `State` of derivatives (dW, dWp, dWa[, dFhat]); dFhat is None when `state.Fhat` is,
    0 when the predictor does not use it.

    Example (Theorem 1 at a random state, α_p = 2, η = 0.1: d/dt (WWᵀ − WpᵀWp/α_p) = −2η (WWᵀ − WpᵀWp/α_p),
    entry by entry):

    >>> import numpy as np, byoldyn as bd
    >>> rng = np.random.default_rng(0)
    >>> W, Wp, Wa = rng.standard_normal((3, 5)), rng.standard_normal((3, 3)), rng.standard_normal((3, 5))
    >>> d = bd.vector_field(bd.State(W, Wp, Wa), bd.Hyper(alpha_p=2.0, eta=0.1), bd.Data.isotropic(5, sigma2=0.5))
    >>> dW, dWp = np.asarray(d.W), np.asarray(d.Wp)
    >>> np.round((dW @ W.T + W @ dW.T - (dWp.T @ Wp + Wp.T @ dWp) / 2.0) / (W @ W.T - Wp.T @ Wp / 2.0), 4).tolist()
    [[-0.2, -0.2, -0.2], [-0.2, -0.2, -0.2], [-0.2, -0.2, -0.2]]
    """
    v = _variant(variant, ema, stop_grad, predictor)
    if v.loss == "cosine":
        return _gradient_field(state, hyper, data, v)
    ema, stop_grad, p = v.ema, v.stop_grad, v.predictor
    W, Wa = state.W, state.Wa
    Wp = effective_wp(state, data, p)
    T = Wa if ema else W
    PW = Wp @ W
    G = -data.right(PW, "S") + data.right(T, "X")
    if stop_grad:
        dW = (G if v.loss == "isoloss" else _T(Wp) @ G) - hyper.eta * W
    else:  # Theorem 2: gradient through both branches, written as -H vec(W)
        Wt = Wp - jnp.eye(state.n2, dtype=W.dtype)
        dW = -data.right(_T(Wp) @ PW + W, "Xp") - data.right(_T(Wt) @ (Wt @ W), "X") - hyper.eta * W
    if not p.learned:  # identity, DirectPred, DirectCopy: no gradient flow on Wp
        dWp = jnp.zeros_like(state.Wp)
    else:
        dWp = hyper.alpha_p * (G @ _T(W)) - hyper.eta_p * Wp
        if p.name == "symmetric":
            dWp = _sym(dWp)
    dWa = hyper.beta * (W - Wa) if ema else dW
    return State.unchecked(dW, dWp, dWa, _dfhat(state, data, p))


def expected_loss(W, Wp, T, X, Xp) -> jax.Array:
    """Eq. 1 in closed form: ½ E‖Wp W x1 − T x2‖² with E[x1x1ᵀ] = E[x2x2ᵀ] = X + X', E[x1x2ᵀ] = X.

    = ½ tr(A S Aᵀ) − tr(A X Tᵀ) + ½ tr(T S Tᵀ), with A = Wp W and S = X + X'.
    """
    return _euclidean_at(Wp @ W, T, X, Xp)


def _euclidean_at(A, T, X, Xp) -> jax.Array:
    """½ tr(A S Aᵀ) − tr(A X Tᵀ) + ½ tr(T S Tᵀ): Eq. 1 at the prediction matrix A, S = X + X'."""
    S = X + Xp
    return 0.5 * jnp.sum((A @ S) * A) - jnp.sum((A @ X) * T) + 0.5 * jnp.sum((T @ S) * T)


def expected_cosine_loss(W, Wp, T, X, Xp) -> jax.Array:
    """The cosine loss E[1 − cos(Wp W x1, T x2)] in its high-dimensional mean-field form (docs/cosine_loss.md):

        J_cos = 1 − tr(A X Tᵀ) / √(N1 N2),   N1 = tr(A S Aᵀ) ≈ ‖A x1‖²,   N2 = tr(T S Tᵀ) ≈ ‖T x2‖²,

    with A = Wp W and S = X + X' (the norms replaced by their expectations; exact as n → ∞ when they
    concentrate). Invariant to A → cA and T → cT (c > 0). One view or both (the symmetric loss) give the same J_cos.
    A zero branch (N = 0, e.g. Wa = 0) counts as norm 1e-12, as at the sampled level: J_cos = 1, no gradient.
    """
    A = Wp @ W
    S = X + Xp
    N1 = jnp.sum((A @ S) * A)
    N2 = jnp.sum((T @ S) * T)
    return 1.0 - jnp.sum((A @ X) * T) / (_root(N1) * _root(N2))


def expected_isoloss(W, Wp, T, X, Xp) -> jax.Array:
    """IsoLoss in expectation (docs/isoloss.md): Eq. 1's `expected_loss` at the prediction matrix
    A = Wp sg(W) + W − sg(W) (`byoldyn.predictors.iso_output`: the value Wp W, the identity Jacobian in W).

    Its value is Eq. 1's; ∂/∂W = Wp W (X + X') − T X = −G (Eq. 3 without Wpᵀ), ∂/∂Wp = −G Wᵀ (Eq. 2's). It is the
    expectation of the sampled level's `byoldyn.sampled.isoloss` over the views (E[x1x1ᵀ] = X + X', E[x1x2ᵀ] = X).
    """
    return _euclidean_at(P.iso_output(Wp @ jax.lax.stop_gradient(W), W), T, X, Xp)


def _root(N: jax.Array) -> jax.Array:
    """√N floored at 1e-12, as the sampled level's normalisation (torch `F.normalize`): a zero branch (e.g. the
    target Wa = 0 at the start) gives J_cos = 1 and no gradient, not NaN."""
    return jnp.maximum(jnp.sqrt(jnp.maximum(N, 0.0)), 1e-12)


def autodiff_field(
    state: State,
    hyper: Hyper,
    data: Data,
    *,
    variant: P.Variant | None = None,
    ema: bool | None = None,
    stop_grad: bool | None = None,
    predictor: str | P.Predictor | None = None,
) -> State:
    """The same field as `vector_field`, as `-grad` of the expected loss plus weight decay.

    dW = -∂J/∂W - eta W, dWp = -alpha_p ∂J/∂Wp - eta_p Wp, where J is Eq. 1 (`expected_loss`; the variant's
    `loss="cosine"`: `expected_cosine_loss`) with `stop_gradient` on the target branch when `stop_grad` (full
    matrices, no structure). DirectPred / DirectCopy: J is evaluated at Wp = stop_gradient(g(F̂)), so dW is Eq. 3
    with that Wp and dWp = 0; dF̂ (not a gradient) is `vector_field`'s. `loss="isoloss"`: `expected_isoloss`.
    """
    return _gradient_field(state, hyper, data, _variant(variant, ema, stop_grad, predictor))


#: the expected loss of each `Variant.loss`, J(W, Wp, T, X, X')
_LOSSES = {"euclidean": expected_loss, "cosine": expected_cosine_loss, "isoloss": expected_isoloss}


def _gradient_field(state: State, hyper: Hyper, data: Data, v: P.Variant) -> State:
    """-grad of the variant's expected loss (`_LOSSES`) plus weight decay, the EMA and the predictor's rules."""
    ema, stop_grad, p, loss = v.ema, v.stop_grad, v.predictor, _LOSSES[v.loss]
    X, Xp = data.matrices()
    eye = jnp.eye(state.n2, dtype=state.W.dtype)
    derived = derives_wp(p)
    Wp_derived = jax.lax.stop_gradient(effective_wp(state, data, p)) if derived else None

    def J(W, Wp):
        Wp = eye if p.name == "identity" else (Wp_derived if derived else Wp)
        T = state.Wa if ema else W
        T = jax.lax.stop_gradient(T) if stop_grad else T
        return loss(W, Wp, T, X, Xp)

    gW, gWp = jax.grad(J, argnums=(0, 1))(state.W, state.Wp)
    dW = -gW - hyper.eta * state.W
    if not p.learned:
        dWp = jnp.zeros_like(state.Wp)
    else:
        dWp = -hyper.alpha_p * gWp - hyper.eta_p * state.Wp
        if p.name == "symmetric":
            dWp = _sym(dWp)
    dWa = hyper.beta * (state.W - state.Wa) if ema else dW
    return State.unchecked(dW, dWp, dWa, _dfhat(state, data, p))
