"""The three levels of the model ladder as `byoldyn.sweeps` integrates them (THEORY.md sections 5, 7).

For each level ("modes", "symmetric", "matrix"): the batched field (`RHS[level](y, hyper, sigma2, variant)`: the
state `y`, the `Hyper`, sigma2 and the `Variant`'s predictor parameters carry a leading member axis, or are shared
scalars), the observables recorded (`LEVEL_OUTPUTS`, names of `observables.REGISTRY`, computed by `OBS` through the
registry), the start of a member from its seed (`initial`), and the saved state of an F̂-derived predictor made
consistent (`synced`: Wp = g(F̂) at the matrix level, p_j = g(s_j, max s) at the mode level).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from . import observables as ob
from .flows.matrix import synced as matrix_synced
from .flows.matrix import vector_field
from .flows.modes import DirectModeState, ModeState, cosine_mode_field, directpred_field, mode_field
from .flows.symmetric import SymState, reduced_field, symmetric_field
from .integrate import prepare
from .model import Data, Hyper, State
from .predictors import Variant

__all__ = ["LEVEL_OUTPUTS", "OBSERVABLES", "RHS", "OBS", "Observe", "initial", "inputs", "per_mode", "synced"]

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


def _modes_rhs(y: ModeState, hyper: Hyper, sigma2, variant: Variant) -> ModeState:
    """Per-mode flow, elementwise (THEORY.md section 7.1): `mode_field` with tau = w_a / w (BYOL) or
    tau = 1 (SimSiam, `ema=False`); Wp = I fixes w_p = 1; no stop-gradient is the scalar Eq. 6. An F̂-derived
    predictor (DirectPred, DirectCopy, DirectSet) slaves p_j = `predictor.modes(s)` to the spectrum
    (`flows.modes.directpred_field`, docs/directpred_modes.md): w_p is not a state (dw_p = 0; `synced` writes p).
    `Variant(loss="cosine")`: `flows.modes.cosine_mode_field` (Eqs. C1-C3 of docs/cosine_loss.md; the modes on the
    last axis couple through the normalisers), with the same predictor rules."""
    p, kappa, tau = variant.predictor, 1.0 + sigma2, None if variant.ema else 1.0
    if variant.loss == "cosine":  # the mean-field cosine loss, Eqs. C1-C3 (docs/cosine_loss.md)
        wp = p.modes(y.w * y.w) if p.direct else y.w_p
        dw, dwp, dwa = cosine_mode_field(ModeState(y.w, wp, y.w_a), hyper, kappa, tau=tau, stop_grad=variant.stop_grad)
        return ModeState(dw, jnp.zeros_like(dwp) if not p.learned else dwp, dwa)
    if variant.loss != "euclidean":
        raise ValueError(f"loss {variant.loss!r} is not run at the sweeps' mode level")
    if p.direct:
        d = directpred_field(DirectModeState(y.w, y.w_a), hyper, kappa, p, tau=tau)
        dw, dwp, dwa, wp = d.w, jnp.zeros_like(y.w_p), d.w_a, p.modes(y.w * y.w)
    else:
        (dw, dwp, dwa), wp = mode_field(y, hyper, kappa, tau=tau), y.w_p
    if not variant.stop_grad:  # Theorem 2 (Eq. 6) with X = 1, X' = sigma2, one mode
        w = y.w
        dw = -(wp * wp + 1.0) * w * sigma2 - (wp - 1.0) * (wp - 1.0) * w - hyper.eta * w
        dwa = dw
    if p.name == "identity":
        dwp = jnp.zeros_like(dwp)
    return ModeState(dw, dwp, dwa)


def _sym_rhs(y: SymState, hyper: Hyper, sigma2, variant: Variant) -> SymState:
    """Eq. 7 (`predictor="symmetric"`) or Eq. 62 (`"learned"`) with tau by Assumption 1 (BYOL) or
    tau = 1 (SimSiam); Wp = I fixed for `"identity"` (THEORY.md section 5)."""
    name = variant.predictor.name
    if variant.loss != "euclidean":
        raise ValueError(f"loss {variant.loss!r} has no symmetric-level flow (Eqs. 7, 62 are Eq. 1's)")
    f = symmetric_field if name == "symmetric" else reduced_field
    d = f(y, hyper, 1.0 + sigma2, evolve_tau=variant.ema)
    if name == "identity":
        d = SymState(jnp.zeros_like(d.Wp), d.F, d.tau)
    return d


def _per_member(f, y, sigma2, variant: Variant, *args):
    """`f(y, data, variant, *args)` member by member (`jax.vmap`): `y`, `sigma2`, `args` and the variant's array
    leaves (a swept predictor parameter) carry the member axis; the variant's other fields are shared."""
    n1 = y.W.shape[-1]
    dyn, static = eqx.partition(variant, eqx.is_array)

    def one(y, s2, dyn, *args):
        return f(y, Data(jnp.ones_like(s2), s2, n1=n1, _isotropic=True), eqx.combine(dyn, static), *args)

    return jax.vmap(one)(y, sigma2, dyn, *args)


def _matrix_rhs(y: State, hyper: Hyper, sigma2, variant: Variant) -> State:
    """Lemma 1 (Eqs. 2-4) or a variant (`vector_field`), per member."""
    return _per_member(lambda y, data, v, h: vector_field(y, h, data, variant=v), y, sigma2, variant, hyper)


def synced(level: str, y, sigma2, variant: Variant):
    """The batched states `y` with the predictor of an F̂-derived `variant` written in (Wp = g(F̂) at the matrix
    level, `flows.matrix.synced`; w_p = p_j = g(s_j, max s) at the mode level), as `simulate` saves them; any other
    state unchanged. `sigma2` and the variant's array leaves carry the member axis of `y`."""
    p = variant.predictor
    if not p.direct or level == "symmetric":
        return y
    if level == "modes":
        return ModeState(y.w, p.modes(y.w * y.w), y.w_a)
    return _per_member(lambda y, data, v: matrix_synced(y, data, v.predictor), y, sigma2, variant)


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


def initial(level: str, variant: Variant, seeds, scale, n1: int, n2: int, dtype):
    """The start of every member from its seed: `State.random` with Wa(0) = 0, prepared for the `variant`,
    then reduced to the level (THEORY.md sections 5 and 7.1). An F̂-derived predictor's Wp (p) is written by
    `synced`."""
    ema, predictor = variant.ema, variant.predictor.name
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
