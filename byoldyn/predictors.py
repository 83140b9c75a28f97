"""The predictors of every level, one definition each (THEORY.md sections 2, 4, 10).

- `Learned`: Wp follows its gradient flow, Eq. 2 (SGD at the discrete levels; the ResNet's linear Wp).
- `Symmetric`: the Wp flow symmetrized (Assumption 3; `predictor_reg=symmetric` in the official code).
- `Identity`: Wp = I, fixed.
- `DirectPred(eps, rho, form, freq, beta_F)`: Wp = U diag(p) Uᵀ from F̂ = U diag(s) Uᵀ (10.1-10.2, Eq. 18).
- `DirectCopy(eps, rho, freq, beta_F)`: Wp = F̂ / ‖F̂‖_2 + eps I (Wang et al. 2021, arXiv 2110.04947).

`rho` is F̂'s retention per step (Eq. 19) and `freq` the steps between two settings of Wp, both used at
the discrete levels (sampled, ResNet); `beta_F` is F̂'s rate at the ODE levels: None for F̂ ≡ F, else
dF̂/dt = beta_F (W (X + X') Wᵀ - F̂) (THEORY.md 15.13; the dictionary maps rho = 1 - lr beta_F).
`PREDICTORS` is the registry (name -> class) that feeds every level's choices and the CLI;
`as_predictor` turns a name into its default object. `Variant` bundles (ema, stop_grad, predictor).
"""

from __future__ import annotations

import numbers
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .validate import is_concrete

__all__ = ["Predictor", "Learned", "Symmetric", "Identity", "DirectPred", "DirectCopy", "Variant",
           "PREDICTORS", "ALIASES", "FORMS", "FORM_ALIASES", "P_MIN", "as_predictor", "canonical_name",
           "correlation", "fhat_update", "update_correlation"]

#: DirectPred's eigenvalue maps: the official code's (THEORY.md 10.2) and Eq. 18's
FORMS = ("code", "paper")
#: old names of the forms (the official flag `balance_type=boost_scale` is the "code" form)
FORM_ALIASES = {"boost_scale": "code"}
#: the official code's floor p_j >= 1e-4 of the "code" form (THEORY.md 10.2, step 7)
P_MIN = 1e-4


def _real(name: str, x, *, lo: float, lo_strict: bool = False, hi: float | None = None):
    """A finite real (scalar or array) with lo <(=) x (< hi); python numbers become floats."""
    if isinstance(x, bool) or not (isinstance(x, numbers.Real) or hasattr(x, "dtype")):
        raise ValueError(f"{name} must be a real number, got {x!r}")
    if isinstance(x, numbers.Real) and not hasattr(x, "dtype"):
        x = float(x)
    if is_concrete(x):
        a = np.asarray(x)
        if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise ValueError(f"{name} must be a real number, got {x!r}")
        ok = np.all(np.isfinite(a)) and np.all(a > lo if lo_strict else a >= lo) and (hi is None or np.all(a < hi))
        if not ok:
            rng = f"{'>' if lo_strict else '>='} {lo:g}" + ("" if hi is None else f" and < {hi:g}")
            raise ValueError(f"{name} must be finite and {rng}, got {x!r}")
    return x


def _freq(x) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < 1:
        raise ValueError(f"freq must be an integer >= 1, got {x!r}")
    return int(x)


def _form(x) -> str:
    x = FORM_ALIASES.get(x, x) if isinstance(x, str) else x
    if x not in FORMS:
        raise ValueError(f"form must be one of {FORMS} (or 'boost_scale' for 'code'), got {x!r}")
    return x


def _beta_F(x):
    return None if x is None else _real("beta_F", x, lo=0.0, lo_strict=True)


def _sym(A: jax.Array) -> jax.Array:
    return 0.5 * (A + jnp.swapaxes(A, -1, -2))


def _normalized(s: jax.Array) -> jax.Array:
    """s / max_k s_k over the last axis, 0 where every s_k is 0 (s >= 0)."""
    m = jnp.max(s, axis=-1, keepdims=True)
    ok = m > 0
    return jnp.where(ok, s / jnp.where(ok, m, 1.0), 0.0)


class Predictor(eqx.Module):
    """Base of the predictors. `name`: the registry key; `learned`: Wp has a gradient flow (Eq. 2);
    `direct`: Wp = g(F̂) is set from the correlation F̂ (DirectPred, DirectCopy; THEORY.md 10.1)."""

    name: ClassVar[str] = ""
    learned: ClassVar[bool] = False
    direct: ClassVar[bool] = False


class Learned(Predictor):
    """Wp follows its gradient flow, Eq. 2 (`predictor="learned"`; the ResNet's linear Wp)."""

    name: ClassVar[str] = "learned"
    learned: ClassVar[bool] = True


class Symmetric(Predictor):
    """The Wp flow (Eq. 2) replaced by its symmetric part (Assumption 3); discrete levels: Wp <- (Wp + Wpᵀ)/2."""

    name: ClassVar[str] = "symmetric"
    learned: ClassVar[bool] = True


class Identity(Predictor):
    """Wp = I, fixed (no predictor)."""

    name: ClassVar[str] = "identity"


class DirectPred(Predictor):
    """DirectPred (THEORY.md 10.1-10.2): Wp = U diag(p) Uᵀ from F̂ = U diag(s) Uᵀ, s clamped to >= 0.

    - `form="code"` (official `balance_type=boost_scale`, 10.2): p_j = max(sqrt(s_j / max s) + eps, 1e-4),
      i.e. ∝ sqrt(s_j) + eps sqrt(max s);
    - `form="paper"` (Eq. 18): p_j = sqrt(s_j) + eps max s.

    `eps` >= 0 the boost; `rho` in [0, 1) F̂'s retention (Eq. 19); `freq` >= 1 the steps between
    two settings of Wp (discrete levels); `beta_F` None (F̂ ≡ F) or the rate of F̂ at the ODE levels (15.13).

    >>> import numpy as np, byoldyn as bd
    >>> np.round(np.asarray(bd.DirectPred(eps=0.1).modes(np.array([4.0, 1.0, 0.0]))), 4).tolist()
    [1.1, 0.6, 0.1]
    """

    name: ClassVar[str] = "directpred"
    direct: ClassVar[bool] = True
    eps: float = 0.1
    rho: float = 0.3
    form: str = eqx.field(static=True, default="code")
    freq: int = eqx.field(static=True, default=1)
    beta_F: float | None = None

    def __init__(self, eps=0.1, rho=0.3, form="code", freq=1, beta_F=None):
        self.eps = _real("eps", eps, lo=0.0)
        self.rho = _real("rho", rho, lo=0.0, hi=1.0)
        self.form = _form(form)
        self.freq = _freq(freq)
        self.beta_F = _beta_F(beta_F)

    def modes(self, s: jax.Array) -> jax.Array:
        """p_j = g(s_j, max_k s_k) over the last axis of `s` (negative s clamped to 0)."""
        s = jnp.clip(jnp.asarray(s), 0.0, None)
        eps = jnp.asarray(self.eps, s.dtype)
        if self.form == "paper":
            return jnp.sqrt(s) + eps * jnp.max(s, axis=-1, keepdims=True)
        return jnp.maximum(jnp.sqrt(_normalized(s)) + eps, P_MIN)

    def matrix(self, F: jax.Array) -> jax.Array:
        """Wp = U diag(p) Uᵀ with F̂ = U diag(s) Uᵀ (`eigh` of the symmetric part; batched over leading axes)."""
        s, U = jnp.linalg.eigh(_sym(jnp.asarray(F)))
        p = self.modes(s)
        return (U * p[..., None, :]) @ jnp.swapaxes(U, -1, -2)


class DirectCopy(Predictor):
    """DirectCopy (Wang, Chen, Du & Tian 2022, arXiv 2110.04947): Wp = F̂ / ‖F̂‖_2 + eps I, no eigenvectors.

    On the spectrum p_j = s_j / max s + eps (DirectPred's code form with s_j for sqrt(s_j)); F̂ = 0 gives
    eps I. `eps`, `rho`, `freq`, `beta_F` as `DirectPred`.
    """

    name: ClassVar[str] = "directcopy"
    direct: ClassVar[bool] = True
    eps: float = 0.1
    rho: float = 0.3
    freq: int = eqx.field(static=True, default=1)
    beta_F: float | None = None

    def __init__(self, eps=0.1, rho=0.3, freq=1, beta_F=None):
        self.eps = _real("eps", eps, lo=0.0)
        self.rho = _real("rho", rho, lo=0.0, hi=1.0)
        self.freq = _freq(freq)
        self.beta_F = _beta_F(beta_F)

    def modes(self, s: jax.Array) -> jax.Array:
        """p_j = s_j / max_k s_k + eps over the last axis of `s` (negative s clamped to 0)."""
        s = jnp.clip(jnp.asarray(s), 0.0, None)
        return _normalized(s) + jnp.asarray(self.eps, s.dtype)

    def matrix(self, F: jax.Array) -> jax.Array:
        """Wp = F̂ / ‖F̂‖_2 + eps I (F̂ symmetrized; batched over leading axes)."""
        F = _sym(jnp.asarray(F))
        norm = jnp.max(jnp.abs(jnp.linalg.eigvalsh(F)), axis=-1)[..., None, None]
        ok = norm > 0
        eye = jnp.broadcast_to(jnp.eye(F.shape[-1], dtype=F.dtype), F.shape)  # batched F under rank_promotion="raise"
        return jnp.where(ok, F / jnp.where(ok, norm, 1.0), 0.0) + jnp.asarray(self.eps, F.dtype) * eye


#: the registry: name -> class (every level's and the CLI's predictor choices come from it)
PREDICTORS: dict[str, type[Predictor]] = {c.name: c for c in (Learned, Symmetric, Identity, DirectPred, DirectCopy)}
#: old names accepted by `as_predictor` (the ResNet level's "linear" and "none")
ALIASES = {"linear": "learned", "none": "identity"}


def canonical_name(name: str) -> str:
    """The registry name of `name` (aliases mapped); ValueError listing the names for an unknown one."""
    name = ALIASES.get(name, name) if isinstance(name, str) else name
    if name not in PREDICTORS:
        raise ValueError(f"predictor must be one of {tuple(PREDICTORS)}, got {name!r}")
    return name


def as_predictor(x: str | Predictor) -> Predictor:
    """The predictor object of a name (its defaults, e.g. "directpred" -> DirectPred()) or the object itself."""
    if isinstance(x, Predictor):
        return x
    return PREDICTORS[canonical_name(x)]()


class Variant(eqx.Module):
    """A method variant (DESIGN.md): EMA target or not, stop-gradient or not, and the predictor.

    `stop_grad=False` needs `ema=False` (with an EMA target no gradient reaches Wa, Theorem 2);
    `predictor` a `Predictor` or its name.
    """

    ema: bool = eqx.field(static=True)
    stop_grad: bool = eqx.field(static=True)
    predictor: Predictor

    def __init__(self, ema=True, stop_grad=True, predictor: str | Predictor = "learned"):
        for n, v in (("ema", ema), ("stop_grad", stop_grad)):
            if not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"{n} must be True or False, got {v!r}")
        if not stop_grad and ema:
            raise ValueError("stop_grad=False needs ema=False: with an EMA target no gradient reaches Wa (Theorem 2)")
        if not isinstance(predictor, (str, Predictor)):
            raise ValueError(f"predictor must be a name or a Predictor, got {predictor!r}")
        self.ema, self.stop_grad, self.predictor = bool(ema), bool(stop_grad), as_predictor(predictor)


def correlation(f: jax.Array) -> jax.Array:
    """E_B[f fᵀ] over the sample axis (second to last) of `f` (..., n, d): uncentered, as in Eq. 19."""
    return jnp.swapaxes(f, -1, -2) @ f / f.shape[-2]


def update_correlation(F: jax.Array, f: jax.Array, rho, first) -> jax.Array:
    """Eq. 19, F̂ <- rho F̂ + (1 - rho) E_B[f fᵀ]; F̂ <- E_B[f fᵀ] when `first` (official code, 10.2 step 3).

    `rho` is the retention (0.3: the current batch weighs 0.7); `f` (n, d) the detached predictor inputs,
    both views pooled at the ResNet level.
    """
    return fhat_update(F, correlation(f), rho, first)


def fhat_update(Fhat: jax.Array, d: jax.Array, rho, first) -> jax.Array:
    """Eq. 19 from a correlation d = E_B[f fᵀ]: F̂ <- rho F̂ + (1 - rho) d; the first call sets F̂ = d (code)."""
    return jnp.where(first, d, rho * Fhat + (1.0 - rho) * d)

