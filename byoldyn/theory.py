"""Closed forms of the reduced dynamics (THEORY.md sections 6-8; DirectPred modes: docs/directpred_modes.md, the
power family p ∝ s^a of DirectPred, DirectCopy and DirectSet: docs/directset.md).

Scalar functions broadcast over arrays of parameters and modes; `kappa` is κ = 1 + σ² or an
isotropic `Data` throughout. Conventions: c_j has the corrected sign of section 7.2
(c_j = s_j(0) − p_j(0)²/α_p); Theorem 3 uses the infimum of λ_min(K) (section 15, item 10);
Eq. 16 keeps the κ factor that the Fig. 4 caption drops (section 15, item 11).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .flows.symmetric import SymState, kappa_of
from .model import Data, Hyper, State
from .validate import as_array, check_finite, check_psd, check_sign, is_concrete

__all__ = [
    "eta_c", "p_star", "spectrum_slope", "parabola", "parabola_c", "delta", "margin_17", "K", "lambda_min_K",
    "jacobian_ps", "classify", "fixed_points_ps", "final_s_eta0", "cosine_fixed_point", "appendix_d_fixed_point",
    "appendix_d_residual", "STABILITY_NAMES", "NO_POINT", "STABLE_NODE", "STABLE_FOCUS",
    "UNSTABLE_NODE", "UNSTABLE_FOCUS", "SADDLE", "NON_HYPERBOLIC",
    "DIRECTPRED_FORMS", "directpred_form", "directpred_predictor", "directpred_p0", "directpred_origin_rate",
    "directpred_eta_c", "directpred_top_rate", "directpred_s_star", "directpred_fixed_points", "directpred_ratio_star",
]

NO_POINT, STABLE_NODE, STABLE_FOCUS, UNSTABLE_NODE, UNSTABLE_FOCUS, SADDLE, NON_HYPERBOLIC = -1, 0, 1, 2, 3, 4, 5
STABILITY_NAMES = ("stable node", "stable focus", "unstable node", "unstable focus", "saddle", "non-hyperbolic")


def _num(name, x, sign=None):
    """A finite real array; sign "+" (> 0) or "0+" (>= 0) checked when concrete."""
    a = as_array(name, x)
    check_finite(name, a)
    if sign is not None:
        check_sign(name, a, strict=sign == "+")
    return a


def _modes(kappa) -> tuple[jax.Array, jax.Array]:
    """(κ_j, λ_d): each mode's κ and its rate. Anisotropic modes (`Data.diagonal(x, xp)`) are isotropic modes with
    κ_j = (x_j + x'_j)/x_j, η/x_j for η and time x_j t (docs/anisotropic_modes.md, A2); λ_d = 1 otherwise."""
    if isinstance(kappa, Data) and not kappa.is_isotropic:
        lambda_s, lambda_d = kappa.mode_moments()
        return lambda_s / lambda_d, lambda_d
    return kappa_of(kappa), jnp.ones(())


def eta_c(tau, kappa) -> jax.Array:
    """The saddle-node bifurcation η_c = τ²/(4κ) (Eq. 16; THEORY.md section 7.4, Obs#5).

    For η > η_c the only fixed point on the parabola is p = 0: collapse is certain. With anisotropic modes
    (`kappa` a `Data.diagonal(x, xp)`) one threshold per mode, η_c(j) = τ² x_j² / (4 (x_j + x'_j)): the data
    directions with η > η_c(j) die (docs/anisotropic_modes.md, A3).

    >>> import byoldyn as bd
    >>> [round(float(e), 4) for e in bd.theory.eta_c(1.0, bd.Data.diagonal([1.0, 0.4, 0.1], [0.5, 0.5, 0.5]))]
    [0.1667, 0.0444, 0.0042]
    """
    tau = _num("tau", tau)
    kappa, rate = _modes(kappa)
    return rate * tau * tau / (4.0 * kappa)


def p_star(tau, kappa, eta) -> tuple[jax.Array, jax.Array]:
    """Non-zero fixed points of Eq. 16 (THEORY.md section 7.4): p*_± = [τ ± √(τ² − 4ηκ)] / (2κ).

    p*_− (unstable) bounds the collapse basin p < p*_−; p*_+ is stable. At η = 0,
    (p*_−, p*_+) = (0, τ/κ). With anisotropic modes (`kappa` a `Data.diagonal(x, xp)`), per mode
    p*_± = [τ x_j ± √(τ² x_j² − 4η (x_j + x'_j))] / (2 (x_j + x'_j)) (docs/anisotropic_modes.md, A3).

    **Returns:** `(p_minus, p_plus)`, NaN where η > η_c (no real fixed point).

    >>> from byoldyn import theory
    >>> [round(float(p), 4) for p in theory.p_star(1.0, 1.5, 0.05)]
    [0.0544, 0.6122]
    """
    tau, eta = _num("tau", tau), _num("eta", eta, "0+")
    kappa, rate = _modes(kappa)
    disc = tau * tau - 4.0 * (eta / rate) * kappa
    root = jnp.where(disc >= 0, jnp.sqrt(jnp.where(disc >= 0, disc, 0.0)), jnp.nan)
    return (tau - root) / (2.0 * kappa), (tau + root) / (2.0 * kappa)


def spectrum_slope(tau, data, eta) -> jax.Array:
    """The local slope d log p_j / d log s_j of the surviving fixed point p*_+ along a data spectrum with constant
    augmentation noise (docs/anisotropic_modes.md, A5): s_j = (x_j + x'_j) p_j²/α_p is the eigenvalue of
    F̂ = W (X + X') Wᵀ (what DirectPred and the real network measure), and with e = d log p / d log x =
    x (τ − p) / (2 (x + x') p − τ x),

        d log p / d log s = e / (x/(x + x') + 2e),

    which is x'/(x + 2x') at η = 0 and lies in (0, 1/2) for every surviving mode: → 0 for modes far above the
    noise (their p_j crowd at τ), → 1/2 near η_c(j). α_p drops out.

    **Arguments:** `tau`; `data` a `Data.diagonal(x, xp)` (or isotropic `Data`); `eta` the weight decay.

    **Returns:** one slope per mode, NaN for the modes that die (η > η_c(j)).

    >>> import byoldyn as bd
    >>> [round(float(a), 4) for a in bd.theory.spectrum_slope(1.0, bd.Data.diagonal([4.0, 1.0, 0.25], [1.0] * 3), 0.0)]
    [0.1667, 0.3333, 0.4444]
    """
    if not isinstance(data, Data):
        raise ValueError(f"data must be a Data (Data.diagonal(x, xp)), got {type(data).__name__}")
    lambda_s, x = data.mode_moments()
    p = p_star(tau, data, eta)[1]
    tau = _num("tau", tau)
    e = x * (tau - p) / (2.0 * lambda_s * p - tau * x)
    return e / (x / lambda_s + 2.0 * e)


def parabola(p, alpha_p, c=0.0, eta=0.0, t=0.0) -> jax.Array:
    """The exact integral Eq. 14 (THEORY.md section 7.2): s(t) = p(t)²/α_p + e^{−2ηt} c.

    With c = 0 it is the invariant parabola s = p²/α_p (all non-collapsed fixed points for η > 0).
    """
    p, alpha_p = _num("p", p), _num("alpha_p", alpha_p, "+")
    c, eta, t = _num("c", c), _num("eta", eta, "0+"), _num("t", t)
    return p * p / alpha_p + jnp.exp(-2.0 * eta * t) * c


def parabola_c(p, s, alpha_p) -> jax.Array:
    """c_j = s_j − p_j²/α_p, with the corrected sign of THEORY.md section 7.2 (Eq. 14).

    At t = 0 this is c_j; at time t it equals c_j e^{−2ηt}. c_j > 0 (start above the
    parabola) is sufficient to avoid collapse when η = 0 (section 7.3).
    """
    p, s, alpha_p = _num("p", p), _num("s", s, "0+"), _num("alpha_p", alpha_p, "+")
    return s - p * p / alpha_p


def delta(p, tau, kappa, eta) -> jax.Array:
    """Δ_j = p_j (τ − κ p_j) − η, the growth rate ṗ_j / p_j on the parabola (THEORY.md section 7.5)."""
    p, tau = _num("p", p), _num("tau", tau)
    kappa, eta = kappa_of(kappa), _num("eta", eta, "0+")
    return p * (tau - kappa * p) - eta


def margin_17(p, s, tau, kappa, alpha_p, eta) -> jax.Array:
    """The Eq. 17 margin ½(α_p κ s_j + η) − Δ_j (THEORY.md sections 7.5, 14).

    It equals the per-mode K_j = κ α_p s_j/2 + κ p_j² − τ p_j + 3η/2 of Theorem 3, so
    alignment is stable for the mode iff the margin is > 0.
    """
    s, alpha_p = _num("s", s, "0+"), _num("alpha_p", alpha_p, "+")
    return 0.5 * (alpha_p * kappa_of(kappa) * s + eta) - delta(p, tau, kappa, eta)


def K(state: SymState, hyper: Hyper, kappa) -> jax.Array:
    """K(t) of Theorem 3, Eq. 10 (THEORY.md section 6), for the symmetrized flow Eq. 7:

        K = κ [ (α_p/2) F + Wp² − (τ/κ) Wp ] + ((2η + η_p)/2) I       (= ... + (3/2) η I when η_p = η)

    so that d[F, Wp]/dt = −[F, Wp] K − K [F, Wp].

    **Arguments:** `state` a `SymState` (symmetric Wp, F; batch axes allowed), `hyper`, `kappa`.

    **Returns:** K, shape (..., n2, n2).
    """
    if not isinstance(state, SymState) or not isinstance(hyper, Hyper):
        raise ValueError("K takes (SymState, Hyper, kappa)")
    m = lambda x: x if jnp.ndim(x) == 0 else jnp.asarray(x)[..., None, None]
    k = m(kappa_of(kappa))
    Wp, F = state.Wp, state.F
    eye = jnp.broadcast_to(jnp.eye(Wp.shape[-1], dtype=Wp.dtype), Wp.shape)
    return k * (0.5 * m(hyper.alpha_p) * F + Wp @ Wp) - m(state.tau) * Wp + 0.5 * m(2.0 * hyper.eta + hyper.eta_p) * eye


def lambda_min_K(state: SymState, hyper: Hyper, kappa) -> jax.Array:
    """λ_min(K(t)) of Theorem 3 (THEORY.md section 6). If it stays >= λ0 > 0 along a run,
    `‖[F, Wp](t)‖_F <= e^{−2 λ0 t} ‖[F, Wp](0)‖_F`."""
    Km = K(state, hyper, kappa)
    return jnp.linalg.eigvalsh(0.5 * (Km + jnp.swapaxes(Km, -1, -2)))[..., 0]


def jacobian_ps(p, s, tau, kappa, alpha_p, eta, eta_p=None) -> jax.Array:
    """Jacobian of Eqs. 11-12 in (p, s) at fixed τ (THEORY.md sections 7.3-7.4):

        [[ −α_p κ s − η_p,     α_p (τ − κ p)         ],
         [ 2 s (τ − 2κ p),     2 p (τ − κ p) − 2η    ]]

    **Returns:** shape (..., 2, 2), broadcast over the arguments.
    """
    p, s, tau = _num("p", p), _num("s", s), _num("tau", tau)
    kappa, alpha_p = kappa_of(kappa), _num("alpha_p", alpha_p, "+")
    eta = _num("eta", eta, "0+")
    eta_p = eta if eta_p is None else _num("eta_p", eta_p, "0+")
    return _jacobian(p, s, tau, kappa, alpha_p, eta, eta_p)


@jax.jit
def _jacobian(p, s, tau, kappa, alpha_p, eta, eta_p):
    g = tau - kappa * p
    row0 = jnp.stack(jnp.broadcast_arrays(-alpha_p * kappa * s - eta_p, alpha_p * g), -1)
    row1 = jnp.stack(jnp.broadcast_arrays(2.0 * s * (tau - 2.0 * kappa * p), 2.0 * p * g - 2.0 * eta), -1)
    return jnp.stack(jnp.broadcast_arrays(row0, row1), -2)


def classify(J, rtol: float = 1e-9) -> jax.Array:
    """Stability class of a fixed point from its 2x2 Jacobian (THEORY.md section 7.4), by trace and determinant.

    **Arguments:** `J` of shape (..., 2, 2); `rtol`: |det| <= rtol ‖J‖² (or a zero trace at
    det > 0) counts as non-hyperbolic.

    **Returns:** int codes (...,): `STABLE_NODE`, `STABLE_FOCUS`, `UNSTABLE_NODE`,
    `UNSTABLE_FOCUS`, `SADDLE`, `NON_HYPERBOLIC` (names in `STABILITY_NAMES`), or `NO_POINT` for NaN input.
    """
    J = as_array("J", J)
    if J.shape[-2:] != (2, 2):
        raise ValueError(f"J must have shape (..., 2, 2), got {J.shape}")
    return _classify(J, rtol)


@jax.jit
def _classify(J, rtol):
    tr = J[..., 0, 0] + J[..., 1, 1]
    det = J[..., 0, 0] * J[..., 1, 1] - J[..., 0, 1] * J[..., 1, 0]
    scale = jnp.sum(J * J, axis=(-2, -1))
    zero_det = jnp.abs(det) <= rtol * scale
    zero_tr = jnp.abs(tr) <= rtol * jnp.sqrt(scale)
    node = tr * tr - 4.0 * det >= 0
    code = jnp.where(tr < 0, jnp.where(node, STABLE_NODE, STABLE_FOCUS), jnp.where(node, UNSTABLE_NODE, UNSTABLE_FOCUS))
    code = jnp.where(det < 0, SADDLE, code)
    code = jnp.where(zero_det | ((det > 0) & zero_tr), NON_HYPERBOLIC, code)
    return jnp.where(jnp.isnan(tr) | jnp.isnan(det), NO_POINT, code).astype(jnp.int32)


def fixed_points_ps(tau, kappa, alpha_p, eta) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Fixed points of Eqs. 11-12 at fixed τ with their stability (THEORY.md section 7.4).

    For 0 < η <= η_c: the origin (stable node), (p*_−, p*_−²/α_p) (saddle) and
    (p*_+, p*_+²/α_p) (stable node). For η > η_c the last two are NaN (`NO_POINT`). At
    η = 0 the fixed points are whole lines (section 7.3); the points returned are those on
    the parabola, and the origin is non-hyperbolic.

    **Returns:** `(p, s, code)`, each of shape (..., 3) in the order origin, p*_−, p*_+.
    """
    kappa = kappa_of(kappa)
    pm, pp = p_star(tau, kappa, eta)
    p = jnp.stack(jnp.broadcast_arrays(jnp.zeros_like(pm), pm, pp), -1)
    alpha_p = _num("alpha_p", alpha_p, "+")
    s = p * p / jnp.asarray(alpha_p)[..., None]
    x = lambda a: jnp.asarray(a)[..., None]
    code = classify(_jacobian(p, s, x(tau), x(kappa), x(alpha_p), x(eta), x(eta)))  # NaN rows -> NO_POINT
    return p, s, code


def final_s_eta0(p0, s0, tau, kappa, alpha_p) -> jax.Array:
    """η = 0 final value (THEORY.md section 7.3): s(∞) = s(0) + α_p⁻¹ (p(∞)² − p(0)²), p(∞) = τ/κ.

    Valid for runs that reach the non-collapsed branch, e.g. any start with c_j > 0 and τ > 0
    (c_j is conserved at η = 0).
    """
    p0, s0 = _num("p0", p0), _num("s0", s0, "0+")
    tau, kappa, alpha_p = _num("tau", tau), kappa_of(kappa), _num("alpha_p", alpha_p, "+")
    p_inf = tau / kappa
    return s0 + (p_inf * p_inf - p0 * p0) / alpha_p


def cosine_fixed_point(w0, p0, kappa, alpha_p, alive=None) -> tuple[jax.Array, jax.Array]:
    """The end point of the mean-field cosine-loss flow at the mode level, Eq. C6 (docs/cosine_loss.md), in the
    rescaled variables that weight decay leaves fixed: (p_j e^{ηt}, s_j e^{2ηt}) as t → ∞, s = w².

    With η_p = η the flow conserves ‖w_p‖ e^{ηt} and c_j = (w_j² − w_p,j²/α_p) e^{2ηt} (Eq. C4) at every η, and
    its fixed points have p_j ∝ 1/κ_j on the surviving set S (Eq. C5). So, for η < β,

        p_j e^{ηt} → λ/κ_j,   s_j e^{2ηt} → c_j + λ²/(α_p κ_j²)   (j ∈ S);   s_j → 0, p_j² e^{2ηt} → −α_p c_j  (j ∉ S),
        λ² = (‖p(0)‖² + α_p Σ_{j∉S} c_j) / Σ_{j∈S} κ_j⁻²,

    whatever η: weight decay sets no threshold. Every mode with c_j > 0 is in S.

    **Arguments:** `w0`, `p0` the start's w_j and p_j (last axis: modes); `kappa` κ, an isotropic `Data` or
    `Data.diagonal(x, xp)` (κ_j = (x_j + x'_j)/x_j); `alpha_p` > 0; `alive` a boolean mask of S (default: every mode).

    **Returns:** `(p, s)`: the rescaled end values, arrays like `p0` (dead modes: p = sign(p0) √(−α_p c_j), s = 0).

    >>> import byoldyn as bd
    >>> p, s = bd.theory.cosine_fixed_point([1.0, 1.0], [0.6, 0.8], bd.Data.diagonal([1.0, 1.0], [0.5, 2.0]), 1.0)
    >>> [round(float(v), 4) for v in p], [round(float(v), 4) for v in s]   # p_0 / p_1 = κ_1 / κ_0 = 2
    ([0.8944, 0.4472], [1.44, 0.56])
    """
    w0, p0 = _num("w0", w0), _num("p0", p0)
    alpha_p = _num("alpha_p", alpha_p, "+")
    k, _ = _modes(kappa)
    w0, p0, k = jnp.broadcast_arrays(w0, p0, k)
    alive = jnp.ones(w0.shape, bool) if alive is None else jnp.broadcast_to(jnp.asarray(alive, bool), w0.shape)
    c = w0 * w0 - p0 * p0 / alpha_p
    lam2 = (jnp.sum(p0 * p0, -1, keepdims=True) + alpha_p * jnp.sum(jnp.where(alive, 0.0, c), -1, keepdims=True)) \
        / jnp.sum(jnp.where(alive, 1.0 / (k * k), 0.0), -1, keepdims=True)
    p_live = jnp.sqrt(lam2) / k
    p = jnp.where(alive, p_live, jnp.sign(p0) * jnp.sqrt(jnp.clip(-alpha_p * c, 0.0, None)))
    s = jnp.where(alive, c + p_live * p_live / alpha_p, 0.0)
    return p, s


def _sym_inv_sqrt(S):
    lam, U = jnp.linalg.eigh(S)
    return (U / jnp.sqrt(lam)[..., None, :]) @ jnp.swapaxes(U, -1, -2)


def appendix_d_fixed_point(Sigma_s, Sigma_d, n2: int, mix=None) -> State:
    """A non-collapsed fixed point of Lemma 1 at η = 0 for general data (Appendix D, Eq. 103; THEORY.md section 8).

    Wp W = W Σ^d (Σ^s)⁻¹ and Wa = W. The special solution: the rows of W are the n2
    leading left eigenvectors of Σ^d (Σ^s)⁻¹ (normalized so that v Σ^s vᵀ = 1) and Wp is the
    diagonal of their eigenvalues. `mix` = S (invertible n2 x n2) maps it to W → S W,
    Wp → S Wp S⁻¹, covering the rest of the manifold. Σ^s, Σ^d need not commute.

    In Lemma 1 terms, X = Σ^d and X' = Σ^s − Σ^d.

    **Arguments:** `Sigma_s` (n1, n1) symmetric positive definite; `Sigma_d` (n1, n1) symmetric;
    `n2` <= n1; `mix` optional (n2, n2).

    **Returns:** a `State(W, Wp, Wa=W)`.
    """
    S, D = _num("Sigma_s", Sigma_s), _num("Sigma_d", Sigma_d)
    check_psd("Sigma_s", S)
    if S.ndim != 2 or D.shape != S.shape:
        raise ValueError(f"Sigma_s and Sigma_d must be (n1, n1) matrices of one shape, got {S.shape} and {D.shape}")
    if is_concrete(S) and float(jnp.linalg.eigvalsh(S)[0]) <= 0:
        raise ValueError("Sigma_s must be positive definite (Eq. 103 needs its inverse)")
    if is_concrete(D) and float(jnp.max(jnp.abs(D - D.T))) > 1e-6 * float(jnp.max(jnp.abs(D))):
        raise ValueError("Sigma_d must be symmetric")
    n1 = S.shape[-1]
    if isinstance(n2, bool) or not isinstance(n2, int) or not 1 <= n2 <= n1:
        raise ValueError(f"n2 must be an integer in [1, n1 = {n1}], got {n2!r}")
    R = _sym_inv_sqrt(S)
    lam, Q = jnp.linalg.eigh(R @ D @ R)   # S^{-1/2} D S^{-1/2} is similar to (Σ^s)⁻¹ Σ^d
    lam, Q = lam[::-1][:n2], Q[:, ::-1][:, :n2]
    W = (R @ Q).T                          # rows v: (Σ^s)⁻¹ Σ^d v = λ v, i.e. vᵀ Σ^d (Σ^s)⁻¹ = λ vᵀ
    Wp = jnp.diag(lam)
    if mix is not None:
        M = _num("mix", mix)
        if M.shape != (n2, n2):
            raise ValueError(f"mix must have shape ({n2}, {n2}), got {M.shape}")
        W, Wp = M @ W, M @ Wp @ jnp.linalg.inv(M)
    return State(W, Wp, W)


def appendix_d_residual(state: State, Sigma_s, Sigma_d) -> jax.Array:
    """‖Wp W Σ^s − Wa Σ^d‖_F + ‖W − Wa‖_F: zero exactly on the fixed points of Eq. 103 (THEORY.md section 8)."""
    S, D = _num("Sigma_s", Sigma_s), _num("Sigma_d", Sigma_d)
    fro = lambda A: jnp.sqrt(jnp.sum(A * A, axis=(-2, -1)))
    return fro(state.Wp @ state.W @ S - state.Wa @ D) + fro(state.W - state.Wa)


# ---------------------------------------------------------------------------------------------
# The F̂-derived predictors at the mode level: p_j = g(s_j, max_k s_k) (docs/directpred_modes.md, docs/directset.md;
# THEORY.md 7, 10). Generic over the predictor's mode function g, a power a = `predictor.exponent` of s in one of
# the forms of `byoldyn.predictors.Spectral` ("raw" s^a + ε, "paper" s^a + ε m, "code" max((s/m)^a + ε, floor))
# or DirectCopy (s/m + ε): every closed form below reads a, ε, the form and the floor from the object.

#: the form names these functions accept with `eps=` (docs/directpred_modes.md's table): "sqrt" is
#: `DirectPred(eps, form="raw")`, "paper" and "code" the DirectPred forms, "directcopy" `DirectCopy(eps)`
DIRECTPRED_FORMS = ("sqrt", "paper", "code", "directcopy")


def directpred_predictor(predictor, eps=None):
    """The predictor object of `predictor`: an F̂-derived predictor object (`eps` must be None: its own ε is used)
    or one of the form names `DIRECTPRED_FORMS` with `eps` >= 0 (scalar or array)."""
    from .predictors import DirectCopy, DirectPred, Spectral

    if isinstance(predictor, str):
        if predictor not in DIRECTPRED_FORMS:
            raise ValueError(f"form must be one of {', '.join(DIRECTPRED_FORMS)} or a DirectPred/DirectCopy/DirectSet, "
                             f"got {predictor!r}")
        if eps is None:
            raise ValueError("eps must be given with a form name")
        eps = _num("eps", eps, "0+")
        if predictor == "directcopy":
            return DirectCopy(eps=eps)
        return DirectPred(eps=eps, form="raw" if predictor == "sqrt" else predictor)
    if not isinstance(predictor, (Spectral, DirectCopy)):
        raise ValueError(f"predictor must be a DirectPred, a DirectCopy, a DirectSet or one of "
                         f"{', '.join(DIRECTPRED_FORMS)}, got {predictor!r}")
    if eps is not None:
        raise ValueError("eps must be None with a predictor object (its own eps is used)")
    return predictor


def directpred_form(predictor, eps=None) -> tuple[str, jax.Array]:
    """(form, ε) of an F̂-derived predictor or a form name (docs/directpred_modes.md, table): "raw" (p = s^a + ε;
    the name "sqrt" for DirectPred's), "paper" (s^a + ε max s, Eq. 18), "code" (max((s/max s)^a + ε, 1e-4),
    section 10.2) or "directcopy" (s/max s + ε)."""
    from .predictors import DirectCopy

    pred = directpred_predictor(predictor, eps)
    return ("directcopy" if isinstance(pred, DirectCopy) else pred.form), _num("eps", pred.eps, "0+")


def _parts(predictor, eps):
    """(predictor, form, ε, a): form "raw" | "paper" | "code" (DirectCopy: "code" with no floor)."""
    pred = directpred_predictor(predictor, eps)
    return pred, pred.form, _num("eps", pred.eps, "0+"), pred.exponent


def _h(p, tau, kappa):
    return p * (tau - kappa * p)


def _root(x, a):
    """x^{1/a} (x >= 0): x² at a = 1/2 and x at a = 1 exactly."""
    if isinstance(a, float) and a in (0.5, 1.0):
        return x * x if a == 0.5 else x
    return jnp.power(x, 1.0 / a)


def directpred_p0(predictor, m=1.0, eps=None) -> jax.Array:
    """p_0 = g(0, m), the predictor eigenvalue of a mode at s = 0 when the largest mode is m
    (docs/directpred_modes.md D2; docs/directset.md S2): ε (raw, directcopy), max(ε, 1e-4) (code), ε m (paper)."""
    from .predictors import P_MIN, DirectCopy  # the code form's floor p >= 1e-4 (THEORY.md 10.2)

    pred, form, eps, _ = _parts(predictor, eps)
    m = _num("m", m, "0+")
    if form == "paper":
        return eps * m
    floor = 0.0 if isinstance(pred, DirectCopy) else P_MIN
    return jnp.maximum(eps, floor) + 0.0 * m if form == "code" else eps + 0.0 * m


def directpred_origin_rate(predictor, tau, kappa, eta, m=1.0, eps=None) -> jax.Array:
    """λ_0 = 2 [p_0 (τ − κ p_0) − η], the linear rate of Eq. 12 at s_j → 0, ṡ_j ≈ λ_0 s_j
    (docs/directpred_modes.md, Eq. D2.1). The origin of the mode is unstable iff λ_0 > 0, i.e.
    p_0 (τ − κ p_0) > η (for p = √s + ε: ε(τ − κε) > η, not ετ > η). With BYOL (Eq. 13) the sign is that
    at τ = 1 for every β > 0 (D2). p_0 = `directpred_p0(predictor, m)`; `m` the largest mode (paper form).
    Independent of the power a (docs/directset.md S2).
    """
    tau, kappa, eta = _num("tau", tau), kappa_of(kappa), _num("eta", eta, "0+")
    p0 = directpred_p0(predictor, m, eps)
    return 2.0 * (_h(p0, tau, kappa) - eta)


def directpred_eta_c(predictor, tau, kappa, eps=None) -> jax.Array:
    """η_c = sup of p (τ − κ p) over the p the non-zero branch can take, for every power a: the supremum of the
    weight decays at which some mode persists (docs/directpred_modes.md D3, docs/directset.md S3). Every mode
    collapses from every start iff η > η_c, except for "raw" with ε >= τ/2κ, where the supremum is attained only
    at s = 0 and the mode collapses at η = η_c too (algebraically; a = 1/2: s ≈ 1/((2κε − τ)² t²) for ε > τ/2κ,
    1/(2κt) at ε = τ/2κ): there iff η >= η_c.

    - "raw" (p = s^a + ε): τ²/4κ if ε <= τ/2κ, else ε (τ − κ ε);
    - "paper" (top mode): τ²/4κ, as the learned predictor (Eq. 16);
    - "code", "directcopy": (1 + ε)(τ − κ (1 + ε)) (the top mode has p ≡ 1 + ε; < 0 when κ(1 + ε) > τ:
      the scale-free forms collapse at the mode level for every η >= 0).
    """
    _, form, eps, _ = _parts(predictor, eps)
    tau, kappa = _num("tau", tau), kappa_of(kappa)
    peak = tau * tau / (4.0 * kappa)
    if form == "raw":
        return jnp.where(eps <= tau / (2.0 * kappa), peak, _h(eps, tau, kappa))
    if form == "paper":
        return peak + 0.0 * eps
    return _h(1.0 + eps, tau, kappa)


def directpred_top_rate(predictor, tau, kappa, eta, eps=None) -> jax.Array:
    """Scale-free forms ("code", "directcopy"): the top mode has p ≡ 1 + ε, so Eq. 12 is linear,
    s_1(t) = s_1(0) e^{λ t} with λ = 2 [(1 + ε)(τ − κ(1 + ε)) − η] (docs/directpred_modes.md, D1; τ fixed)."""
    pred, form, eps, _ = _parts(predictor, eps)
    if form != "code":
        raise ValueError(f"directpred_top_rate is for the scale-free forms code / directcopy, got {form!r}")
    tau, kappa, eta = _num("tau", tau), kappa_of(kappa), _num("eta", eta, "0+")
    return 2.0 * (_h(1.0 + eps, tau, kappa) - eta)


def directpred_ratio_star(predictor, tau, kappa, eps=None) -> jax.Array:
    """Scale-free forms: the interior fixed point r* of the ratios r_j = s_j / max s, whose flow
    ṙ_j = 2 r_j [h_τ(g(r_j)) − h_τ(1 + ε)] (η cancels) has r = 0, r = 1 and r* with g(r*, 1) = τ/κ − 1 − ε
    (the mirror of 1 + ε about τ/2κ; docs/directpred_modes.md D1, docs/directset.md S1):

        r* = (τ/κ − 1 − 2ε)^{1/a}        (code: a = `predictor.exponent`; DirectCopy a = 1)

    NaN where it is not in (0, 1), i.e. unless 1 + 2ε < τ/κ < 2 + 2ε (or where g(r*) would sit on the code form's
    floor 1e-4). Where it exists it is unstable (τ/κ < 2 + 2ε puts 1 + ε above τ/2κ): a weak mode with
    r_j(0) < r* loses to the top mode (r_j → 0), one above it joins the top (r_j → 1). Outside: for
    τ/κ <= 1 + 2ε every r_j > 0 tends to 1 (the spectrum flattens), for τ/κ >= 2 + 2ε every r_j < 1 tends to 0.
    """
    from .predictors import P_MIN

    _, form, eps, a = _parts(predictor, eps)
    if form != "code":
        raise ValueError(f"directpred_ratio_star is for the scale-free forms code / directcopy, got {form!r}")
    tau, kappa = _num("tau", tau), kappa_of(kappa)
    x = tau / kappa - 1.0 - 2.0 * eps  # = r*^a
    ok = (x > 0) & (x < 1) & (x + eps > P_MIN)
    return jnp.where(ok, _root(jnp.where(ok, x, 0.5), a), jnp.nan)


def _top_paper_s(p, eps, a):
    """s with s^a + ε s = p (the paper form's top mode, m = s), s >= 0: closed form at a = 1/2
    (x = √s = 2p / (1 + √(1 + 4εp))), else bisection on [0, p^{1/a}] to the last bit (the left side increases)."""
    if isinstance(a, float) and a == 0.5:
        x = 2.0 * p / (1.0 + jnp.sqrt(1.0 + 4.0 * eps * p))
        return x * x
    pos = jnp.where(p > 0, p, 1.0)
    lo, hi = jnp.zeros_like(pos), jnp.power(pos, 1.0 / a) + 0.0 * eps

    def step(_, lh):
        lo, hi = lh
        mid = 0.5 * (lo + hi)
        up = jnp.power(mid, a) + eps * mid < pos
        return jnp.where(up, mid, lo), jnp.where(up, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 200, step, (lo, hi))
    return jnp.where(p > 0, 0.5 * (lo + hi), jnp.where(p == 0, 0.0, jnp.nan))


def directpred_s_star(predictor, tau, kappa, eta, m=None, eps=None) -> tuple[jax.Array, jax.Array]:
    """Non-zero fixed points s*_± of Eq. 12 with p = g(s, max s) (docs/directpred_modes.md D1, docs/directset.md S1):
    every one has p = p*_± = [τ ± √(τ² − 4κη)]/(2κ) (`p_star`); s*_± = g⁻¹(p*_±), with a = `predictor.exponent`:

    - "raw" (p = s^a + ε; "sqrt" at a = 1/2): s*_± = (p*_± − ε)^{1/a}, NaN where p*_± < ε;
    - "paper", `m=None` (the top mode, m = s): s^a + ε s = p*_± (a = 1/2: s*_± = x_±², x_± = 2p*_± / (1 +
      √(1 + 4εp*_±)); other a: solved by bisection to the last bit);
    - "paper", `m` given (a weak mode under a top mode held at m): s_± = (p*_± − ε m)^{1/a}, NaN where p*_± < εm.

    The scale-free forms ("code", "directcopy") have no isolated non-zero fixed point (`directpred_top_rate`,
    `directpred_ratio_star`). BYOL (Eq. 13) has the same fixed points with τ = 1. NaN where η > τ²/4κ.

    **Returns:** `(s_minus, s_plus)`; s_minus is unstable, s_plus stable (D2).
    """
    _, form, eps, a = _parts(predictor, eps)
    if form == "code":
        raise ValueError(f"the {form} form is scale-free: no isolated non-zero fixed point (see directpred_top_rate)")
    pm, pp = p_star(tau, kappa, eta)

    def inv(p):
        if form == "paper" and m is None:
            return _top_paper_s(p, eps, a)
        base = p - (eps if form == "raw" else eps * _num("m", m, "0+"))
        ok = base >= 0
        return jnp.where(ok, _root(jnp.where(ok, base, 0.0), a), jnp.nan)

    return inv(pm), inv(pp)


def directpred_fixed_points(predictor, tau, kappa, eta, m=None, beta=None, eps=None) -> tuple[jax.Array, jax.Array]:
    """Fixed points of a mode, the origin, s*_−, s*_+, with their stability (docs/directpred_modes.md D2,
    docs/directset.md S2), for the non-scale-free forms ("raw", "paper") of any power a.

    - `beta=None`: τ fixed at `tau` (τ = 1: SimSiam), the 1-D Eq. 12; codes from the sign of
      ∂ṡ/∂s: `STABLE_NODE` (< 0), `UNSTABLE_NODE` (> 0), `NON_HYPERBOLIC` (0).
    - `beta` > 0: BYOL (Eq. 13) in (w, w_a); the fixed points have τ = 1 (`tau` must be 1) and the codes
      come from `classify` of the 2x2 Jacobian (origin: a saddle iff p_0 (1 − κp_0) > η; s*_−: saddle; s*_+: stable).

    "paper" with `m=None` is the top mode (and its origin is that of all modes, p_0 = 0); with `m` a weak mode.
    Not for the scale-free forms ("code", "directcopy").

    **Returns:** `(s, code)`, each of shape (..., 3) in the order origin, s*_−, s*_+ (`NO_POINT` where absent).
    """
    pred, form, eps, a = _parts(predictor, eps)
    sm, sp = directpred_s_star(pred, tau, kappa, eta, m=m)
    tau, kappa, eta = _num("tau", tau), kappa_of(kappa), _num("eta", eta, "0+")
    p0 = directpred_p0(pred, 0.0 if (form == "paper" and m is None) else (1.0 if m is None else m))
    pm, pp = p_star(tau, kappa, eta)
    # dg/dw at w = √s > 0 (p as a function of w, g = w^{2a} + ...): 2a w^{2a−1} (raw, paper weak) + 2εw (paper top)
    top = form == "paper" and m is None
    half = isinstance(a, float) and a == 0.5

    def dgdw(s):
        w = jnp.sqrt(s)
        return (1.0 if half else 2.0 * a * jnp.power(w, 2.0 * a - 1.0)) + (2.0 * eps * w if top else 0.0)

    s = jnp.stack(jnp.broadcast_arrays(jnp.zeros_like(sm), sm, sp), -1)
    if beta is None:
        lam0 = 2.0 * (_h(p0, tau, kappa) - eta)
        # ∂ṡ/∂s = 2 s (τ − 2κp*) ∂g/∂s, ∂g/∂s = (dg/dw) / (2√s)
        lam = lambda s, p: jnp.sqrt(s) * (tau - 2.0 * kappa * p) * dgdw(s)  # noqa: E731
        rates = jnp.stack(jnp.broadcast_arrays(lam0, lam(sm, pm), lam(sp, pp)), -1)
        code = jnp.where(rates < 0, STABLE_NODE, jnp.where(rates > 0, UNSTABLE_NODE, NON_HYPERBOLIC))
        return s, jnp.where(jnp.isnan(rates), NO_POINT, code).astype(jnp.int32)
    beta = _num("beta", beta, "+")
    if is_concrete(tau) and not np.all(np.asarray(tau) == 1.0):
        raise ValueError(f"tau must be 1 with beta (BYOL fixed points have w_a = w), got {tau!r}")

    def jac(a_, b):  # [[a, b], [β, −β]] of (ẇ, ẇ_a)
        row0 = jnp.stack(jnp.broadcast_arrays(a_, b), -1)
        row1 = jnp.stack(jnp.broadcast_arrays(beta + 0.0 * a_, -beta + 0.0 * a_), -1)
        return jnp.stack(jnp.broadcast_arrays(row0, row1), -2)

    # at s*: ∂ẇ/∂w = w (dg/dw)(1 − 2κp*) − κp*² − η, ∂ẇ/∂w_a = p* (docs, D2)
    a_fp = lambda s, p: jnp.sqrt(s) * dgdw(s) * (1.0 - 2.0 * kappa * p) - kappa * p * p - eta  # noqa: E731
    J = jnp.stack(jnp.broadcast_arrays(jac(-kappa * p0 * p0 - eta, p0), jac(a_fp(sm, pm), pm), jac(a_fp(sp, pp), pp)), -3)
    return s, classify(J)
