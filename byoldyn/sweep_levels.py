"""The three levels of the model ladder as `byoldyn.sweeps` integrates them (THEORY.md sections 5, 7).

For each level ("modes", "symmetric", "matrix"): the batched field (`RHS`; every array carries a
leading member axis), the observables recorded (`LEVEL_OUTPUTS`, names of `observables.REGISTRY`,
computed by `OBS` through the registry), and the start of a member from its seed (`initial`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import observables as ob
from .flows.matrix import vector_field
from .flows.modes import ModeState, mode_field
from .flows.symmetric import SymState, reduced_field, symmetric_field
from .integrate import prepare
from .model import Data, Hyper, State

__all__ = ["LEVEL_OUTPUTS", "OBSERVABLES", "RHS", "OBS", "Observe", "initial", "inputs", "per_mode"]

#: observables recorded at each level, names of `observables.REGISTRY` (which gives their long name,
#: shape kind and units): the scalar `alignment_weighted` here, since a sweep keeps no per-mode cosines
LEVEL_OUTPUTS = {
    "modes": ("norm_W", "n_modes", "collapsed", "tau_hat", "s", "p"),
    "symmetric": ("norm_W", "n_modes", "collapsed", "tau_hat", "alignment_weighted", "commutator_normalized",
                  "s", "p"),
    "matrix": ("norm_W", "n_modes", "collapsed", "tau_hat", "wa_correlation", "alignment_weighted",
               "commutator_normalized", "asymmetry", "s", "p"),
}

#: the same as (name, per_mode, long name) triples, from the registry
OBSERVABLES = {level: tuple((n, ob.REGISTRY[n].per_mode, ob.REGISTRY[n].long_name) for n in names)
               for level, names in LEVEL_OUTPUTS.items()}


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


def inputs(level: str, y, threshold: float) -> ob.Inputs:
    """The `observables.Inputs` of a batched state of `level`: the matrices at the matrix level (X = I);
    F, Wp and the Assumption 1 state tau at the symmetric level, with ||W||_F^2 = tr F (X = I); the
    per-mode s_j = w_j^2, p_j = w_p at the mode level, with ||W||_F^2 = sum_j s_j, <Wa, W> = sum_j w_a w
    (THEORY.md sections 5, 7.1)."""
    if level == "modes":
        s = y.w * y.w
        return ob.Inputs(s=s, p=y.w_p, ww=jnp.sum(s, axis=-1), waw=jnp.sum(y.w_a * y.w, axis=-1),
                         threshold=threshold)
    if level == "symmetric":
        trF = jnp.trace(y.F, axis1=-2, axis2=-1)
        return ob.Inputs(F=y.F, Wp=y.Wp, tau=y.tau, ww=jnp.clip(trF, 0.0, None), threshold=threshold)
    if level == "matrix":
        return ob.Inputs(W=y.W, Wp=y.Wp, Wa=y.Wa, threshold=threshold)
    raise ValueError(f"level must be one of {', '.join(LEVEL_OUTPUTS)}, got {level!r}")


def _obs_modes(y: ModeState, threshold: float) -> dict:
    return ob.measure(LEVEL_OUTPUTS["modes"], inputs("modes", y, threshold))


def _obs_sym(y: SymState, threshold: float) -> dict:
    return ob.measure(LEVEL_OUTPUTS["symmetric"], inputs("symmetric", y, threshold))


def _obs_matrix(y: State, threshold: float) -> dict:
    return ob.measure(LEVEL_OUTPUTS["matrix"], inputs("matrix", y, threshold))


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
    s0 = prepare(s0, ema, predictor)
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
    """Whether `name`, recorded at `level`, has a mode axis (its registry kind is "mode")."""
    return name in LEVEL_OUTPUTS[level] and ob.REGISTRY[name].per_mode
