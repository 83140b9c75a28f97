"""The three levels of the model ladder as `byoldyn.sweep` integrates them (THEORY.md sections 5, 7).

For each level ("modes", "symmetric", "matrix"): the batched field (`RHS`; every array carries a
leading member axis), the observables recorded (`OBSERVABLES`, computed by `OBS`), and the start of a
member from its seed (`initial`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import observables as ob
from .flows.matrix import vector_field
from .flows.modes import ModeState, mode_field
from .flows.symmetric import SymState, reduced_field, symmetric_field
from .integrate import _prepare
from .model import Data, Hyper, State

__all__ = ["OBSERVABLES", "RHS", "OBS", "Observe", "initial", "per_mode"]

#: observables recorded at each level: (name, per_mode, long name)
OBSERVABLES = {
    "modes": (
        ("norm_W", False, "sqrt(sum_j s_j) = ||W||_F of the aligned modes"),
        ("n_modes", False, "number of modes with s_j > threshold"),
        ("collapsed", False, "1 if no mode has s_j > threshold (complete collapse), else 0"),
        ("tau_hat", False, "sum_j w_a w / sum_j w^2 (Assumption 1 tau)"),
        ("s", True, "s_j = w_j^2, eigenvalues of F (modes in the order of F(0)'s eigenvalues, decreasing)"),
        ("p", True, "p_j = w_p, eigenvalues of Wp"),
    ),
    "symmetric": (
        ("norm_W", False, "sqrt(tr F) = ||W||_F"),
        ("n_modes", False, "number of eigenvalues of F above threshold"),
        ("collapsed", False, "1 if no eigenvalue of F is above threshold (complete collapse), else 0"),
        ("tau_hat", False, "tau of Assumption 1"),
        ("alignment", False, "sum_j s_j cos_j / sum_j s_j, cos_j = u_j^T Wp u_j / ||Wp u_j|| (Theorem 3)"),
        ("commutator_normalized", False, "||[F, Wp]||_F / (||F||_F ||Wp||_F)"),
        ("s", True, "eigenvalues s_j of F, decreasing"),
        ("p", True, "eigenvalues of (Wp + Wp^T)/2, decreasing"),
    ),
    "matrix": (
        ("norm_W", False, "Frobenius norm of W"),
        ("n_modes", False, "number of eigenvalues of F = W W^T above threshold"),
        ("collapsed", False, "1 if no eigenvalue of F is above threshold (complete collapse), else 0"),
        ("tau_hat", False, "<Wa, W> / ||W||^2 (Assumption 1)"),
        ("wa_correlation", False, "<Wa, W> / (||Wa|| ||W||) (Fig. 7)"),
        ("alignment", False, "sum_j s_j cos_j / sum_j s_j, cos_j = u_j^T Wp u_j / ||Wp u_j|| (Fig. 2, Theorem 3)"),
        ("commutator_normalized", False, "||[F, Wp]||_F / (||F||_F ||Wp||_F)"),
        ("asymmetry", False, "||Wp - Wp^T||_F / ||Wp||_F"),
        ("s", True, "eigenvalues s_j of F = W W^T, decreasing"),
        ("p", True, "eigenvalues of (Wp + Wp^T)/2, decreasing"),
    ),
}



def _modes_rhs(y: ModeState, hyper: Hyper, sigma2, flags) -> ModeState:
    """Per-mode flow, elementwise (THEORY.md section 7.1): `mode_field` with tau = w_a / w (BYOL) or
    tau = 1 (SimSiam, `ema=False`); Wp = I fixes w_p = 1; no stop-gradient is the scalar Eq. 6."""
    ema, stop_grad, predictor = flags
    dw, dwp, dwa = mode_field(y, hyper, 1.0 + sigma2, tau=None if ema else 1.0)
    if not stop_grad:  # Theorem 2 (Eq. 6) with X = 1, X' = sigma2, one mode
        w, wp = y.w, y.w_p
        dw = -(wp * wp + 1.0) * w * sigma2 - (wp - 1.0) * (wp - 1.0) * w - hyper.eta * w
        dwa = dw
    if predictor == "identity":
        dwp = jnp.zeros_like(dwp)
    return ModeState(dw, dwp, dwa)


def _sym_rhs(y: SymState, hyper: Hyper, sigma2, flags) -> SymState:
    """Eq. 7 (`predictor="symmetric"`) or Eq. 62 (`"learned"`) with tau by Assumption 1 (BYOL) or
    tau = 1 (SimSiam); Wp = I fixed for `"identity"` (THEORY.md section 5)."""
    ema, _, predictor = flags
    f = symmetric_field if predictor == "symmetric" else reduced_field
    d = f(y, hyper, 1.0 + sigma2, evolve_tau=ema)
    if predictor == "identity":
        d = SymState(jnp.zeros_like(d.Wp), d.F, d.tau)
    return d


def _matrix_rhs(y: State, hyper: Hyper, sigma2, flags) -> State:
    """Lemma 1 (Eqs. 2-4) or a variant (`vector_field`), per member."""
    ema, stop_grad, predictor = flags
    n1 = y.W.shape[-1]

    def one(y, h, s2):
        return vector_field(y, h, Data(jnp.ones_like(s2), s2, n1=n1, _isotropic=True),
                            ema=ema, stop_grad=stop_grad, predictor=predictor)

    return jax.vmap(one)(y, hyper, sigma2)


def _wmean(s, c):
    s = jnp.clip(s, 0.0, None)
    tot = jnp.sum(s, axis=-1)
    return jnp.where(tot > 0, jnp.sum(s * c, axis=-1) / jnp.where(tot > 0, tot, 1.0), jnp.nan)


def _obs_modes(y: ModeState, threshold: float) -> dict:
    s = y.w * y.w
    n = jnp.sum(s > threshold, axis=-1).astype(s.dtype)
    ww = jnp.sum(s, axis=-1)
    return {"norm_W": jnp.sqrt(ww), "n_modes": n, "collapsed": (n == 0).astype(s.dtype),
            "tau_hat": ob._safe_div(jnp.sum(y.w_a * y.w, axis=-1), ww), "s": s, "p": y.w_p}


def _obs_sym(y: SymState, threshold: float) -> dict:
    s, cos = ob.eigen_alignment(y.F, y.Wp)
    n = jnp.sum(s > threshold, axis=-1).astype(s.dtype)
    trF = jnp.trace(y.F, axis1=-2, axis2=-1)
    return {"norm_W": jnp.sqrt(jnp.clip(trF, 0.0, None)), "n_modes": n, "collapsed": (n == 0).astype(s.dtype),
            "tau_hat": y.tau, "alignment": _wmean(s, cos),
            "commutator_normalized": ob.commutator_normalized(y.F, y.Wp), "s": s, "p": ob.spectrum_Wp(y.Wp)}


def _obs_matrix(y: State, threshold: float) -> dict:
    F_ = ob.F(y.W)
    s, cos = ob.eigen_alignment(F_, y.Wp)
    n = jnp.sum(s > threshold, axis=-1).astype(s.dtype)
    return {"norm_W": ob.norm_W(y.W), "n_modes": n, "collapsed": (n == 0).astype(s.dtype),
            "tau_hat": ob.tau_hat(y.W, y.Wa), "wa_correlation": ob.wa_correlation(y.W, y.Wa),
            "alignment": _wmean(s, cos), "commutator_normalized": ob.commutator_normalized(F_, y.Wp),
            "asymmetry": ob.asymmetry(y.Wp), "s": s, "p": ob.spectrum_Wp(y.Wp)}


RHS = {"modes": _modes_rhs, "symmetric": _sym_rhs, "matrix": _matrix_rhs}
OBS = {"modes": _obs_modes, "symmetric": _obs_sym, "matrix": _obs_matrix}


class Observe:
    """`observe(t, state)` for `simulate_batch` (hashable by value, so chunks share one compile)."""

    def __init__(self, threshold):
        self.threshold = float(threshold)

    def __call__(self, t, y):
        return jax.tree.map(lambda a: a[0], _obs_matrix(jax.tree.map(lambda a: a[None], y), self.threshold))

    def __hash__(self):
        return hash(("sweep-observe", self.threshold))

    def __eq__(self, other):
        return isinstance(other, Observe) and other.threshold == self.threshold


def initial(level: str, flags, seeds, scale, n1: int, n2: int, dtype):
    """The start of every member from its seed: `State.random` with Wa(0) = 0, prepared for the variant,
    then reduced to the level (THEORY.md sections 5 and 7.1)."""
    ema, _, predictor = flags
    keys = jax.vmap(jax.random.PRNGKey)(seeds)
    s0 = jax.vmap(lambda k, c: State.random(k, n1, n2, scale=c, dtype=dtype))(keys, scale)
    s0 = _prepare(s0, ema, predictor)
    if level == "matrix":
        return s0
    if level == "symmetric":
        Wp = 0.5 * (s0.Wp + jnp.swapaxes(s0.Wp, -1, -2)) if predictor == "symmetric" else s0.Wp
        tau = jnp.ones(seeds.shape, dtype) if not ema else jnp.zeros(seeds.shape, dtype)
        return SymState(Wp, ob.F(s0.W), tau)
    F_ = ob.F(s0.W)
    s, U = jnp.linalg.eigh(F_)
    s, U = s[..., ::-1], U[..., ::-1]
    A = 0.5 * (s0.Wp + jnp.swapaxes(s0.Wp, -1, -2))
    p = jnp.sum(U * (A @ U), axis=-2)  # u_j^T sym(Wp) u_j
    w = jnp.sqrt(jnp.clip(s, 0.0, None))
    if predictor == "identity":
        p = jnp.ones_like(p)
    w_a = w if not ema else jnp.zeros_like(w)
    return ModeState(w, p, w_a)


def per_mode(level: str, name: str) -> bool:
    return any(n == name and pm for n, pm, _ in OBSERVABLES[level])
