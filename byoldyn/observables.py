"""Observables shared by every level of the model ladder (THEORY.md section 14), and their one registry.

Every function acts on the last two axes and broadcasts over leading batch axes
(time, members, ...), so it applies equally to one state, a trajectory or a sweep.
Eigen-quantities are sorted by decreasing eigenvalue of F.

`REGISTRY` defines each observable once: its name, long name, shape kind (`"scalar"`, `"mode"`: one value
per eigen-mode of F, `"matrix"`), units and the function computing it from an `Inputs` (the W, Wp, Wa, F,
data of whichever level records it). Every level's outputs (`standard` for `simulate` and the sampled
level, `byoldyn.sweep_levels`, `byoldyn.sampled.compare`, `byoldyn.nets.instrument`), their netCDF
attributes (`attrs`) and the figures take names, long names and functions from it. `SURVIVAL` is the one
mode-survival threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from .model import Data, Hyper, State

__all__ = [
    "F", "eigen_alignment", "commutator", "commutator_normalized", "asymmetry",
    "spectrum_F", "spectrum_Wp", "tau_hat", "wa_correlation", "theorem1_C",
    "theorem1_residual", "norm_W", "n_modes", "effective_rank", "standard",
    "SURVIVAL", "KINDS", "Observable", "Inputs", "REGISTRY", "STANDARD", "LEGACY_NAMES",
    "measure", "attrs", "upgrade_names", "weighted_mean", "safe_div",
]

#: The mode-survival threshold, one for every level: mode j survives iff s_j > SURVIVAL x unit, where
#: unit = 1 at the ODE, sampled and sweep levels (data normalized to X = I, so s_j is in the units of
#: the theory) and unit = max_k s_k at the network level (F-hat of a network has no natural scale; pass
#: `relative=True`). Why 1e-4: a surviving mode settles on the invariant parabola at s*_+ = p*_+^2/alpha_p
#: with p*_+ > tau/2kappa (THEORY.md 7.4), i.e. s*_+ > tau^2/(4 kappa^2 alpha_p) = O(1e-2..1) over the
#: hyperparameter ranges of the sweeps and figures, two or more decades above the threshold; a collapsing
#: mode decays exponentially (the origin is a stable node with rates eta, 2 eta, THEORY.md 7.4) from
#: s = O(1), four decades down after ln(1e4)/(2 eta) = 4.6/eta, inside the sweeps' horizons; and 1e-4 stays
#: 1e12 x above the float64 rounding of an eigendecomposition (1e-16 ||F||). A larger threshold (1e-2)
#: counts slow survivors near the bifurcation (p*_+ near tau/2kappa, small tau) as dead; a smaller one
#: counts modes still decaying at t1 as alive. Levels and figures may still pass an explicit threshold.
SURVIVAL = 1e-4

#: shape kinds: one value per state, one per eigen-mode of F (axis `mode`), a matrix (axes `i`, `j`)
KINDS = ("scalar", "mode", "matrix")


def _T(A):
    return jnp.swapaxes(A, -1, -2)


def _fro(A):
    return jnp.sqrt(jnp.sum(A * A, axis=(-2, -1)))


def safe_div(a, b):
    """a / b where b > 0, else 0 (a collapsed state gives 0, never NaN)."""
    ok = b > 0
    return jnp.where(ok, a / jnp.where(ok, b, 1.0), 0.0)


_safe_div = safe_div


def weighted_mean(s: jax.Array, c: jax.Array) -> jax.Array:
    """sum_j s_j+ c_j / sum_j s_j+ over the last axis (modes weighted by their eigenvalue s_j of F, THEORY.md
    section 14: tiny modes are noisy); NaN where every s_j <= 0 (complete collapse: undefined)."""
    s = jnp.clip(s, 0.0, None)
    tot = jnp.sum(s, axis=-1)
    return jnp.where(tot > 0, jnp.sum(s * c, axis=-1) / jnp.where(tot > 0, tot, 1.0), jnp.nan)


def F(W: jax.Array, data: Data | None = None) -> jax.Array:
    """F = W X Wᵀ, the correlation of the online features (Assumption 2: F = W Wᵀ).

    With `data=None`, X = I.
    """
    WX = W if data is None else data.right(W, "X")
    return WX @ _T(W)


def _eigh_desc(A):
    s, U = jnp.linalg.eigh(A)
    return s[..., ::-1], U[..., ::-1]


def eigen_alignment(F_: jax.Array, Wp: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per eigenvector u_j of F: cos_j = u_jᵀ Wp u_j / ‖Wp u_j‖ (Fig. 2, Theorem 3).

    **Returns:** `(s, cos)`: eigenvalues s_j of F in decreasing order and the cosines (0 where Wp u_j = 0).
    Modes with tiny s_j are noisy; weight or mask them by `s`.
    """
    s, U = _eigh_desc(F_)
    WpU = Wp @ U
    num = jnp.sum(U * WpU, axis=-2)
    return s, _safe_div(num, jnp.linalg.norm(WpU, axis=-2))


def commutator(F_: jax.Array, Wp: jax.Array) -> jax.Array:
    """‖[F, Wp]‖_F = ‖F Wp − Wp F‖_F (Theorem 3, Fig. 9)."""
    return _fro(F_ @ Wp - Wp @ F_)


def commutator_normalized(F_: jax.Array, Wp: jax.Array) -> jax.Array:
    """‖[F, Wp]‖_F / (‖F‖_F ‖Wp‖_F), scale free, in [0, √2]."""
    return _safe_div(commutator(F_, Wp), _fro(F_) * _fro(Wp))


def asymmetry(Wp: jax.Array) -> jax.Array:
    """‖Wp − Wpᵀ‖_F / ‖Wp‖_F (0 for symmetric Wp; Fig. 8 tracks the skew part B)."""
    return _safe_div(_fro(Wp - _T(Wp)), _fro(Wp))


def spectrum_F(F_: jax.Array) -> jax.Array:
    """Eigenvalues s_j of F, decreasing."""
    return jnp.linalg.eigvalsh(F_)[..., ::-1]


def spectrum_Wp(Wp: jax.Array) -> jax.Array:
    """Eigenvalues of the symmetric part A = (Wp + Wpᵀ)/2, decreasing (THEORY.md section 14)."""
    return jnp.linalg.eigvalsh(0.5 * (Wp + _T(Wp)))[..., ::-1]


def tau_hat(W: jax.Array, Wa: jax.Array) -> jax.Array:
    """τ̂ = ⟨Wa, W⟩_F / ‖W‖_F², the least-squares τ in Wa ≈ τ W (Assumption 1); 0 if W = 0."""
    return _safe_div(jnp.sum(Wa * W, axis=(-2, -1)), jnp.sum(W * W, axis=(-2, -1)))


def wa_correlation(W: jax.Array, Wa: jax.Array) -> jax.Array:
    """⟨Wa, W⟩_F / (‖Wa‖_F ‖W‖_F), the normalized correlation of Fig. 7; 0 if either is 0."""
    return _safe_div(jnp.sum(Wa * W, axis=(-2, -1)), _fro(Wa) * _fro(W))


def theorem1_C(state: State, hyper: Hyper) -> jax.Array:
    """C = W Wᵀ − Wpᵀ Wp / alpha_p, fixed by the initial state (Theorem 1, Eq. 5)."""
    W, Wp = state.W, state.Wp
    a = jnp.asarray(hyper.alpha_p)[..., None, None]
    return W @ _T(W) - (_T(Wp) @ Wp) / a


def theorem1_residual(state: State, hyper: Hyper, t, C: jax.Array, *, relative: bool = False) -> jax.Array:
    """‖W Wᵀ − Wpᵀ Wp / alpha_p − e^{−2 eta t} C‖_F (Theorem 1, Eq. 5).

    Zero along any run of Eqs. 2-3 with eta_p = eta, for any Wa dynamics. With
    `relative=True`, divided by ‖W Wᵀ‖_F.
    """
    W = state.W
    WWt = W @ _T(W)
    decay = jnp.exp(-2.0 * jnp.asarray(hyper.eta) * jnp.asarray(t))[..., None, None]
    r = _fro(theorem1_C(state, hyper) - decay * C)
    return _safe_div(r, _fro(WWt)) if relative else r


def norm_W(W: jax.Array) -> jax.Array:
    """‖W‖_F, the simplest collapse indicator."""
    return _fro(W)


def n_modes(F_: jax.Array, threshold: float = SURVIVAL) -> jax.Array:
    """Number of eigenvalues of F above `threshold` (absolute): the surviving modes (see `SURVIVAL`)."""
    return jnp.sum(spectrum_F(F_) > threshold, axis=-1)


def effective_rank(F_: jax.Array) -> jax.Array:
    """exp of the entropy of the normalized spectrum of F (Roy & Vetterli 2007); 0 for F = 0."""
    return _effective_rank_of(spectrum_F(F_))


def _effective_rank_of(s):
    s = jnp.clip(s, 0.0, None)
    tot = jnp.sum(s, axis=-1, keepdims=True)
    p = _safe_div(s, tot)
    ent = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)
    return jnp.where(tot[..., 0] > 0, jnp.exp(ent), 0.0)


class Inputs:
    """What observables are computed from at one level: given arrays, and the rest derived lazily (cached).

    Give what the level has: the matrices `W`, `Wp`, `Wa` (with `data` for F = W X Wᵀ; X = I without),
    or `F` itself; reduced levels give the per-mode spectra `s`, `p` and the sums `ww` = ‖W‖_F²,
    `waw` = ⟨Wa, W⟩_F, `waa` = ‖Wa‖_F², or `tau` (the Assumption 1 state, THEORY.md section 5).
    `t`, `C`, `hyper` serve the Theorem 1 residual. The two-view quantities: `F_views` = E[z zᵀ] over augmented
    views (W (X + X') Wᵀ; a network's F̂), `F_cross` = E[z_target z_onlineᵀ] across the two views of one image
    (T X Wᵀ, symmetrised), `G` = W Wᵀ, the Gram of the layer that feeds the predictor. Survival: s_j > `threshold` x unit, unit = 1, or
    max_k s_k with `relative=True` (see `SURVIVAL`). Asking for an input that can be neither given nor
    derived raises `ValueError` naming it.
    """

    def __init__(self, *, W=None, Wp=None, Wa=None, F=None, data: Data | None = None, s=None, p=None, ww=None,
                 waw=None, waa=None, tau=None, t=None, C=None, hyper: Hyper | None = None, F_views=None,
                 F_cross=None, G=None, threshold: float = SURVIVAL, relative: bool = False):
        self._given = dict(W=W, Wp=Wp, Wa=Wa, F=F, s=s, p=p, ww=ww, waw=waw, waa=waa, tau=tau, t=t, C=C,
                           hyper=hyper, F_views=F_views, F_cross=F_cross, G=G)
        self.data, self.threshold, self.relative = data, threshold, bool(relative)
        self._cache: dict = {}

    def given(self, name: str) -> bool:
        return self._given.get(name) is not None

    def _need(self, name):
        v = self._given[name]
        if v is None:
            raise ValueError(f"this observable needs {name}, which this level does not provide")
        return v

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    W = property(lambda self: self._need("W"))
    Wp = property(lambda self: self._need("Wp"))
    Wa = property(lambda self: self._need("Wa"))
    tau = property(lambda self: self._need("tau"))

    @property
    def F(self):
        if self.given("F"):
            return self._given["F"]
        return self._cached("F", lambda: F(self.W, self.data))

    @property
    def U(self):
        """Eigenvectors of F (columns), decreasing eigenvalue."""
        return self._cached("eigh", lambda: _eigh_desc(self.F))[1]

    @property
    def s(self):
        if self.given("s"):
            return self._given["s"]
        return self._cached("eigh", lambda: _eigh_desc(self.F))[0]

    @property
    def WpU(self):
        return self._cached("WpU", lambda: self.Wp @ self.U)

    @property
    def cos(self):
        """cos_j = u_jᵀ Wp u_j / ‖Wp u_j‖ (as `eigen_alignment`)."""
        return self._cached("cos", lambda: safe_div(self.rayleigh, jnp.linalg.norm(self.WpU, axis=-2)))

    @property
    def rayleigh(self):
        """u_jᵀ Wp u_j."""
        return self._cached("rayleigh", lambda: jnp.sum(self.U * self.WpU, axis=-2))

    def _along_U(self, M):
        """u_jᵀ M u_j for each eigenvector u_j of F."""
        return jnp.sum(self.U * (M @ self.U), axis=-2)

    @property
    def F_views(self):
        if self.given("F_views"):
            return self._given["F_views"]
        if self.data is None:
            raise ValueError("this observable needs F_views, or data (X, X') with W")
        return self._cached("F_views", lambda: self.data.right(self.W, "S") @ _T(self.W))

    @property
    def F_cross(self):
        if self.given("F_cross"):
            return self._given["F_cross"]

        def make():  # T X Wᵀ with T = Wa (X = I without data)
            M = (self.Wa if self.data is None else self.data.right(self.Wa, "X")) @ _T(self.W)
            return 0.5 * (M + _T(M))
        return self._cached("F_cross", make)

    @property
    def G(self):
        if self.given("G"):
            return self._given["G"]
        return self._cached("G", lambda: self.W @ _T(self.W))

    @property
    def p(self):
        if self.given("p"):
            return self._given["p"]
        return self._cached("p", lambda: spectrum_Wp(self.Wp))

    @property
    def ww(self):
        if self.given("ww"):
            return self._given["ww"]
        return self._cached("ww", lambda: jnp.sum(self.W * self.W, axis=(-2, -1)))

    @property
    def waw(self):
        if self.given("waw"):
            return self._given["waw"]
        return self._cached("waw", lambda: jnp.sum(self.Wa * self.W, axis=(-2, -1)))

    @property
    def waa(self):
        if self.given("waa"):
            return self._given["waa"]
        return self._cached("waa", lambda: jnp.sum(self.Wa * self.Wa, axis=(-2, -1)))

    @property
    def cut(self):
        """The survival cut threshold x unit, broadcastable against `s`."""
        if not self.relative:
            return self.threshold
        smax = jnp.max(self.s, axis=-1, keepdims=True)
        return self.threshold * jnp.where(smax > 0, smax, 1.0)


@dataclass(frozen=True)
class Observable:
    """One observable: `name` (the key in every output), `long_name` and `units` (netCDF attributes),
    `kind` (one of `KINDS`) and `fn(inputs: Inputs) -> array` (None: recorded by a training loop, not a
    function of the state)."""

    name: str
    long_name: str
    kind: str
    units: str
    fn: Callable[[Inputs], jax.Array] | None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def __call__(self, q: Inputs) -> jax.Array:
        if self.fn is None:
            raise ValueError(f"{self.name} is recorded by the training loop, not computed from a state")
        return self.fn(q)

    @property
    def per_mode(self) -> bool:
        return self.kind == "mode"

    @property
    def attrs(self) -> dict:
        return {"long_name": self.long_name, "units": self.units}


def _n_modes(q: Inputs):
    return jnp.sum(q.s > q.cut, axis=-1).astype(q.s.dtype)  # float: NaN-able in saves


def _theorem1(q: Inputs):
    return theorem1_residual(State.unchecked(q.W, q.Wp, q.Wa), q._need("hyper"), q._need("t"), q._need("C"),
                             relative=True)


_FEAT2 = "feature^2 (s_j of F = W X W^T, in the data units of X)"

REGISTRY: dict[str, Observable] = {o.name: o for o in (
    # collapse (THEORY.md section 14: collapse indicators)
    Observable("norm_W", "Frobenius norm ||W||_F of the online weights (sqrt(tr F) = sqrt(sum_j s_j) for X = I)",
               "scalar", "feature / input", lambda q: jnp.sqrt(q.ww)),
    Observable("n_modes", "number of surviving modes: eigenvalues s_j of F above the survival threshold "
               "(observables.SURVIVAL unless the run sets its own)",
               "scalar", "modes", _n_modes),
    Observable("collapsed", "1 if no mode survives (complete collapse: no s_j above the threshold), else 0",
               "scalar", "1", lambda q: (_n_modes(q) == 0).astype(q.s.dtype)),
    Observable("effective_rank", "effective rank of F: exp of the entropy of its normalized spectrum",
               "scalar", "modes", lambda q: _effective_rank_of(q.s)),
    # spectra
    Observable("s", "eigenvalues s_j of F = W X W^T, decreasing (the mode level keeps the order of F(0))",
               "mode", _FEAT2, lambda q: q.s),
    Observable("p", "eigenvalues p_j of the symmetric part (Wp + Wp^T)/2, decreasing (mode level: w_p of mode j)",
               "mode", "1", lambda q: q.p),
    Observable("p_rayleigh", "u_j^T Wp u_j per eigenvector u_j of F (decreasing s_j): p_j if Wp is aligned",
               "mode", "1", lambda q: q.rayleigh),
    Observable("two_view_ratio", "u_j^T E[z_target z_online^T] u_j / u_j^T E[z z^T] u_j, across the two views of "
               "an image, per eigenvector u_j of F (the mode theory's tau/kappa_j: x_j/(x_j + x'_j) at tau = 1)",
               "mode", "1", lambda q: safe_div(q._along_U(q.F_cross), q._along_U(q.F_views))),
    Observable("gram", "u_j^T W W^T u_j per eigenvector u_j of F: the Gram of the layer that feeds the predictor "
               "(Theorem 1: p_j^2 / alpha_p on the invariant manifold)", "mode", "feature^2 / input^2",
               lambda q: q._along_U(q.G)),
    Observable("lambda_min_sym_Wp", "smallest eigenvalue of (Wp + Wp^T)/2 (PSD check, THEORY.md section 14)",
               "scalar", "1", lambda q: q.p[..., -1]),
    Observable("norm_Wp", "Frobenius norm ||Wp||_F of the predictor", "scalar", "1", lambda q: _fro(q.Wp)),
    # alignment (Theorem 3, Fig. 2)
    Observable("alignment", "cos_j = u_j^T Wp u_j / ||Wp u_j|| per eigenvector u_j of F (Fig. 2, Theorem 3)",
               "mode", "1", lambda q: q.cos),
    Observable("alignment_weighted", "sum_j s_j cos_j / sum_j s_j, the s-weighted alignment (Theorem 3; NaN "
               "if F = 0)", "scalar", "1", lambda q: weighted_mean(q.s, q.cos)),
    Observable("commutator", "||[F, Wp]||_F = ||F Wp - Wp F||_F (Theorem 3, Fig. 9)", "scalar", "feature^2",
               lambda q: commutator(q.F, q.Wp)),
    Observable("commutator_normalized", "||[F, Wp]||_F / (||F||_F ||Wp||_F), in [0, sqrt 2]", "scalar", "1",
               lambda q: commutator_normalized(q.F, q.Wp)),
    Observable("asymmetry", "||Wp - Wp^T||_F / ||Wp||_F (0 for a symmetric Wp; Fig. 8)", "scalar", "1",
               lambda q: asymmetry(q.Wp)),
    # EMA target (Assumption 1, Fig. 7)
    Observable("tau_hat", "tau of Assumption 1: <Wa, W>_F / ||W||_F^2 (the state tau at the symmetric level)",
               "scalar", "1", lambda q: q.tau if q.given("tau") else safe_div(q.waw, q.ww)),
    Observable("wa_correlation", "<Wa, W>_F / (||Wa||_F ||W||_F), the normalized correlation of Fig. 7",
               "scalar", "1", lambda q: safe_div(q.waw, jnp.sqrt(q.waa) * jnp.sqrt(q.ww))),
    # Theorem 1
    Observable("theorem1_residual", "||W W^T - Wp^T Wp / alpha_p - exp(-2 eta t) C||_F / ||W W^T||_F "
               "(Theorem 1, Eq. 5)", "scalar", "1", _theorem1),
    # matrices
    Observable("F", "F = W X W^T (network: F-hat, the EMA of E[f f^T] over the predictor inputs, Eq. 19)",
               "matrix", "feature^2", lambda q: q.F),
    Observable("W", "online weights W", "matrix", "feature / input", lambda q: q.W),
    Observable("Wp", "predictor matrix Wp (y = Wp f)", "matrix", "1", lambda q: q.Wp),
    Observable("Wa", "target weights Wa", "matrix", "feature / input", lambda q: q.Wa),
    # recorded by the network training loop (byoldyn.nets)
    Observable("loss", "mean BYOL loss since the previous record", "scalar", "1", None),
    Observable("z_std", "batch std of normalized projections (about 1/sqrt(d) healthy, 0 collapsed)",
               "scalar", "1", None),
    Observable("h_std", "batch std of normalized backbone features", "scalar", "1", None),
    Observable("lr", "learning rate at the record", "scalar", "1", None),
    Observable("epoch", "training epochs completed at the record", "scalar", "epochs", None),
)}

#: what `standard` records (simulate and the sampled level)
STANDARD = ("norm_W", "commutator", "commutator_normalized", "asymmetry", "tau_hat", "wa_correlation",
            "theorem1_residual", "n_modes", "effective_rank", "s", "p", "alignment")

#: names of earlier network logs (`byoldyn.nets` before the registry) -> registry names; see `upgrade_names`
LEGACY_NAMES = {"cos": "alignment", "spec_Wp": "p"}


def upgrade_names(ds):
    """An xarray Dataset of an earlier network log under the registry's names: `cos` -> `alignment`,
    `spec_Wp` -> `p`, and the Rayleigh quotients u_jᵀ Wp u_j that such a log stored as `p` beside
    `spec_Wp` -> `p_rayleigh`. A log with the registry's names is returned as it is."""
    if "spec_Wp" in ds and "p" in ds:
        ds = ds.rename({"p": "p_rayleigh"})
    ren = {k: v for k, v in LEGACY_NAMES.items() if k in ds}
    return ds.rename(ren) if ren else ds


def measure(names, q: Inputs) -> dict[str, jax.Array]:
    """`{name: REGISTRY[name](q)}` for each of `names`; `ValueError` for a name not in the registry."""
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown observable{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"the registry has {', '.join(REGISTRY)}")
    return {n: REGISTRY[n](q) for n in names}


def attrs(name: str) -> dict:
    """The netCDF attributes `long_name`, `units` of a registered observable (`ValueError` otherwise)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown observable {name!r}; the registry has {', '.join(REGISTRY)}")
    return REGISTRY[name].attrs


def standard(hyper: Hyper, data: Data, state0: State, *, threshold: float = SURVIVAL):
    """An `observe(t, state)` for `simulate` (and `sampled.train`) that records the observables `STANDARD`.

    **Returns:** a function giving a dict with the scalars `norm_W`, `commutator`,
    `commutator_normalized`, `asymmetry`, `tau_hat`, `wa_correlation`, `theorem1_residual`
    (relative), `n_modes` (s_j > `threshold`), `effective_rank`, and the per-mode arrays `s`
    (spectrum of F), `p` (spectrum of the symmetric part of Wp) and `alignment` (cos_j); see `REGISTRY`.
    """
    C = theorem1_C(state0, hyper)

    def observe(t, state: State) -> dict[str, jax.Array]:
        q = Inputs(W=state.W, Wp=state.Wp, Wa=state.Wa, data=data, t=t, C=C, hyper=hyper, threshold=threshold)
        return measure(STANDARD, q)

    return observe
