"""The predictors of every level, one definition each (THEORY.md sections 2, 4, 10).

- `Learned`: Wp follows its gradient flow, Eq. 2 (SGD at the discrete levels; the ResNet's linear Wp).
- `Symmetric`: the Wp flow symmetrized (Assumption 3; `predictor_reg=symmetric` in the official code).
- `Identity`: Wp = I, fixed.
- `DirectPred(eps, rho, form, freq, beta_F)`: Wp = U diag(p) Uᵀ from F̂ = U diag(s) Uᵀ, p a square root of
  s (10.1-10.2, Eq. 18).
- `DirectCopy(eps, rho, freq, beta_F)`: Wp = F̂ / ‖F̂‖_2 + eps I (Wang et al. 2021, arXiv 2110.04947).
- `DirectSet(alpha, eps, rho, form, freq, beta_F)`: Wp = U diag(p) Uᵀ with p ∝ s^alpha (Wang, Chen, Du & Tian
  2021, arXiv 2110.04947; alpha = 1/2 is DirectPred, alpha = 1 DirectCopy's spectrum; docs/directset.md).

The carrier principle (DESIGN.md): a predictor object carries its parameters from the entry point to the
innermost function of every level. `rho` is F̂'s retention per step (Eq. 19) and `freq` the steps between
two settings of Wp, read at the discrete levels (sampled, ResNet); `beta_F` is F̂'s rate at the ODE levels:
None for F̂ ≡ F, else dF̂/dt = beta_F (W (X + X') Wᵀ - F̂) (THEORY.md 15.13; the dictionary maps
rho = 1 - lr beta_F). Each class lists its parameters in `PARAMS` (field -> `Param`): the CLI's flags
(`byoldyn.cli.common.add_predictor_params`), the figures' labels (`Predictor.label`) and the records
(`Predictor.params`) are generated from it, so a new predictor is one class here.
`PREDICTORS` is the registry (name -> class) that feeds every level's choices and the CLI;
`as_predictor` turns a name into its default object. `Variant` bundles (ema, stop_grad, predictor, loss);
`as_variant` builds it from the keyword shorthands.
"""

from __future__ import annotations

import abc
import numbers
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .validate import is_concrete

__all__ = ["Predictor", "Direct", "Spectral", "Learned", "Symmetric", "Identity", "DirectPred", "DirectCopy",
           "DirectSet", "Variant",
           "Param", "PREDICTORS", "ALIASES", "FORMS", "FORM_ALIASES", "LOSSES", "P_MIN", "as_predictor",
           "as_variant", "canonical_name", "correlation", "fhat_update", "iso_output", "update_correlation"]

#: the eigenvalue maps of the spectral predictors (`Spectral`): the official code's (THEORY.md 10.2), Eq. 18's,
#: and "raw", p = s^a + eps without normalisation (the simplified form p = √s + ε for DirectPred)
FORMS = ("code", "paper", "raw")
#: old names of the forms (the official flag `balance_type=boost_scale` is the "code" form)
FORM_ALIASES = {"boost_scale": "code"}
#: the one list of the loss names, read by every level (`Variant`, `byoldyn.sampled.Setup`, the ResNet level's
#: `Config.loss`, the CLI's `--loss`): Eq. 1; the normalised loss; IsoLoss, Eq. 1 with the output error sent to the
#: predictor's input without the factor Wpᵀ (Halvagal, Laborieux & Zenke 2023; docs/isoloss.md). A level without
#: one refuses it with a `ValueError` (the sweeps have Eq. 1 only)
LOSSES = ("euclidean", "cosine", "isoloss")


def iso_output(y: jax.Array, f: jax.Array) -> jax.Array:
    """IsoLoss's prediction (Halvagal, Laborieux & Zenke, NeurIPS 2023; docs/isoloss.md): `y + f − sg(f)`, where
    `y` is the predictor applied to the *detached* input `stop_gradient(f)`. Its value is y; its derivative in the
    predictor's parameters is y's; its Jacobian in `f` is the identity. So a loss ℓ(iso_output(y, f), z) sends the
    output error ∂ℓ/∂y to f unchanged (no factor Wpᵀ) and trains the predictor as ℓ(y, z) does. With ℓ = ½‖· − z‖²
    and y = Wp sg(f) it is the paper's ½‖f − sg(f + z − Wp f)‖² (gradient Wp f − z in f) plus the predictor's
    Euclidean term. `y` and `f` must have one shape (a square predictor)."""
    return y + (f - jax.lax.stop_gradient(f))
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


def _lead(v, x: jax.Array, k: int = 1) -> jax.Array:
    """A parameter `v` (scalar, or one value per leading batch axis of `x`) as an array of x's dtype that broadcasts
    against x's last `k` axes (a batch of predictors applied to a batch of F̂)."""
    v = jnp.asarray(v, x.dtype)
    return v if v.ndim == 0 else v.reshape(v.shape + (1,) * k)


def _power(x: jax.Array, a) -> jax.Array:
    """x^a for x >= 0; `jnp.sqrt` at a = 1/2 (DirectPred's bits, whatever the class)."""
    if isinstance(a, float) and a == 0.5:
        return jnp.sqrt(x)
    if isinstance(a, float) and a == 1.0:
        return x
    return jnp.power(x, _lead(a, x))


def _beta_F(x):
    return None if x is None else _real("beta_F", x, lo=0.0, lo_strict=True)


def _sym(A: jax.Array) -> jax.Array:
    return 0.5 * (A + jnp.swapaxes(A, -1, -2))


def _normalized(s: jax.Array) -> jax.Array:
    """s / max_k s_k over the last axis, 0 where every s_k is 0 (s >= 0)."""
    m = jnp.max(s, axis=-1, keepdims=True)
    ok = m > 0
    return jnp.where(ok, s / jnp.where(ok, m, 1.0), 0.0)


class Param(NamedTuple):
    """A user-set parameter of a predictor class: what the CLI flag, the label and the docs say of it.

    `help`: one line (the flag's help); `symbol`: the label's symbol (ε, ρ, ...); `kind`: "real", "int",
    "form" or "rate" (a real or None); `level`: "all", "ode" (read by the ODE levels only) or "discrete"
    (read by the sampled and ResNet levels only); `flag`: the CLI flag (default `--` + the field name with
    `-` for `_`); `aliases`: older spellings of the flag.
    """

    help: str
    symbol: str
    kind: str = "real"
    level: str = "all"
    flag: str | None = None
    aliases: tuple[str, ...] = ()

    def flag_of(self, field: str) -> str:
        return self.flag or "--" + field.replace("_", "-")


#: the parameters shared by the F̂-derived predictors (DirectPred, DirectCopy, DirectSet)
_DIRECT_PARAMS = {
    "eps": Param("boost eps >= 0 added to every eigenvalue of Wp (Eq. 18; default 0.1)", "ε"),
    "rho": Param("F̂ retention rho in [0, 1) per step, F̂ <- rho F̂ + (1 - rho) E[ffᵀ] (Eq. 19; default 0.3)", "ρ",
                 level="discrete"),
    "freq": Param("set Wp from F̂ every FREQ steps (default 1)", "freq", kind="int", level="discrete"),
    "beta_F": Param("rate of F̂ at the ODE level, dF̂/dt = beta_F (W (X + X') Wᵀ - F̂) (THEORY.md 15.13; "
                    "default: F̂ = F exactly)", "β_F", kind="rate", level="ode", flag="--beta-F"),
}
_FORM_PARAM = Param("the eigenvalue map: code (official boost_scale: (s_j/max s)^a + eps, floored at 1e-4), paper "
                    "(Eq. 18: s_j^a + eps max s) or raw (s_j^a + eps); a = 1/2 for DirectPred (default code)", "form",
                    kind="form", aliases=("--directpred-form", "--dp-form"))


class Predictor(eqx.Module):
    """Base of the predictors. `name`: the registry key; `learned`: Wp has a gradient flow (Eq. 2);
    `direct`: Wp = g(F̂) is set from the correlation F̂ (the subclasses of `Direct`; THEORY.md 10.1);
    `PARAMS`: the user-set parameters (field -> `Param`), which feed the CLI, the labels and the records."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    learned: ClassVar[bool] = False
    direct: ClassVar[bool] = False
    PARAMS: ClassVar[dict[str, Param]] = {}

    def params(self) -> dict:
        """The parameters as plain values (field -> value), in `PARAMS` order: what a record stores."""
        out = {}
        for k in self.PARAMS:
            v = getattr(self, k)
            out[k] = v.item() if hasattr(v, "item") and np.ndim(v) == 0 and is_concrete(v) else v
        return out

    def replace(self, **kw) -> Predictor:
        """The same predictor with some parameters changed (validated again); ValueError for an unknown one."""
        bad = sorted(set(kw) - set(self.PARAMS))
        if bad:
            raise ValueError(f"{bad[0]} is not a parameter of {self.name} (its parameters: "
                             f"{', '.join(self.PARAMS) or 'none'})")
        return type(self)(**{**self.params(), **kw})

    def label(self, level: str = "all") -> str:
        """A figure label from the class's fields: its title and the parameters that differ from the defaults
        (`level`: "ode" or "discrete" shows only the parameters that level reads), e.g. "DirectPred (ε = 0.2)"."""
        default = type(self)().params() if self.PARAMS else {}
        shown = [f"{p.symbol} = {_fmt(v)}" if p.kind != "form" else f"{v} form"
                 for (k, p), v in zip(self.PARAMS.items(), self.params().values())
                 if (level == "all" or p.level in ("all", level)) and not _same(v, default.get(k))]
        return self.title + (f" ({', '.join(shown)})" if shown else "")


def _fmt(v) -> str:
    return "None" if v is None else f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _same(a, b) -> bool:
    try:
        return bool(np.all(np.asarray(a == b)))
    except Exception:  # noqa: BLE001 - traced values: never equal to a default
        return False


class Learned(Predictor):
    """Wp follows its gradient flow, Eq. 2 (`predictor="learned"`; the ResNet's linear Wp)."""

    name: ClassVar[str] = "learned"
    title: ClassVar[str] = "learned Wp"
    learned: ClassVar[bool] = True


class Symmetric(Predictor):
    """The Wp flow (Eq. 2) replaced by its symmetric part (Assumption 3); discrete levels: Wp <- (Wp + Wpᵀ)/2."""

    name: ClassVar[str] = "symmetric"
    title: ClassVar[str] = "symmetric Wp"
    learned: ClassVar[bool] = True


class Identity(Predictor):
    """Wp = I, fixed (no predictor)."""

    name: ClassVar[str] = "identity"
    title: ClassVar[str] = "no predictor"


class Direct(Predictor):
    """Base of the predictors whose Wp = g(F̂) is set from the correlation F̂ (THEORY.md 10.1; `direct` is True):
    each gives p_j = g(s_j, max_k s_k) on F̂'s spectrum (`modes`), Wp = g(F̂) (`matrix`), and has the parameters
    `eps`, `rho`, `freq` and `beta_F` (as `DirectPred`)."""

    direct: ClassVar[bool] = True
    if TYPE_CHECKING:  # each subclass declares them as its fields: annotated here they would be Direct's fields
        # (equinox's AbstractVar needs unstringified annotations) and reorder the subclasses' fields
        eps: float
        rho: float
        freq: int
        beta_F: float | None

    @abc.abstractmethod
    def modes(self, s: jax.Array) -> jax.Array:
        """p_j = g(s_j, max_k s_k) over the last axis of `s` (negative s clamped to 0)."""

    @abc.abstractmethod
    def matrix(self, F: jax.Array) -> jax.Array:
        """Wp = g(F̂) (batched over leading axes)."""


class Spectral(Direct):
    """Base of the predictors Wp = U diag(p) Uᵀ from F̂ = U diag(s) Uᵀ (s clamped to >= 0) with p a power a of
    the spectrum (THEORY.md 10.1-10.2, Eq. 18), in one of three forms over the last axis, m = max_k s_k:

    - `form="code"` (official `balance_type=boost_scale`, 10.2): p_j = max((s_j / m)^a + eps, 1e-4);
    - `form="paper"` (Eq. 18): p_j = s_j^a + eps m;
    - `form="raw"`: p_j = s_j^a + eps (the simplified form; Eq. 18 with m fixed to 1).

    A subclass gives the power a as `exponent` (DirectPred: 1/2). `eps` >= 0 the boost; `rho` in [0, 1) F̂'s
    retention (Eq. 19); `freq` >= 1 the steps between two settings of Wp (discrete levels); `beta_F` None
    (F̂ ≡ F) or the rate of F̂ at the ODE levels (15.13). The mode-level closed forms of every such predictor
    are `byoldyn.theory.directpred_*` (docs/directpred_modes.md, docs/directset.md).
    """

    eps: float = 0.1
    rho: float = 0.3
    form: str = eqx.field(static=True, default="code")
    freq: int = eqx.field(static=True, default=1)
    beta_F: float | None = None

    def _set(self, eps, rho, form, freq, beta_F):
        self.eps = _real("eps", eps, lo=0.0)
        self.rho = _real("rho", rho, lo=0.0, hi=1.0)
        self.form = _form(form)
        self.freq = _freq(freq)
        self.beta_F = _beta_F(beta_F)

    @property
    @abc.abstractmethod
    def exponent(self):
        """The power a of p ∝ s^a (each subclass gives it)."""

    @property
    def scale_free(self) -> bool:
        """g(λs, λm) = g(s, m): the "code" form (the mode level's top mode has p ≡ 1 + eps)."""
        return self.form == "code"

    def modes(self, s: jax.Array) -> jax.Array:
        """p_j = g(s_j, max_k s_k) over the last axis of `s` (negative s clamped to 0)."""
        s = jnp.clip(jnp.asarray(s), 0.0, None)
        eps = _lead(self.eps, s)
        if self.form == "paper":
            return _power(s, self.exponent) + eps * jnp.max(s, axis=-1, keepdims=True)
        if self.form == "raw":
            return _power(s, self.exponent) + eps
        return jnp.maximum(_power(_normalized(s), self.exponent) + eps, P_MIN)

    def matrix(self, F: jax.Array) -> jax.Array:
        """Wp = U diag(p) Uᵀ with F̂ = U diag(s) Uᵀ (`eigh` of the symmetric part; batched over leading axes)."""
        s, U = jnp.linalg.eigh(_sym(jnp.asarray(F)))
        p = self.modes(s)
        return (U * p[..., None, :]) @ jnp.swapaxes(U, -1, -2)


class DirectPred(Spectral):
    """DirectPred (THEORY.md 10.1-10.2): `Spectral` with a = 1/2, p_j ∝ √s_j:

    - `form="code"` (official `balance_type=boost_scale`, 10.2): p_j = max(sqrt(s_j / max s) + eps, 1e-4),
      i.e. ∝ sqrt(s_j) + eps sqrt(max s);
    - `form="paper"` (Eq. 18): p_j = sqrt(s_j) + eps max s;
    - `form="raw"`: p_j = sqrt(s_j) + eps (the simplified form, docs/directpred_modes.md "sqrt").

    `eps` >= 0 the boost; `rho` in [0, 1) F̂'s retention (Eq. 19); `freq` >= 1 the steps between
    two settings of Wp (discrete levels); `beta_F` None (F̂ ≡ F) or the rate of F̂ at the ODE levels (15.13).

    >>> import numpy as np, byoldyn as bd
    >>> np.round(np.asarray(bd.DirectPred(eps=0.1).modes(np.array([4.0, 1.0, 0.0]))), 4).tolist()
    [1.1, 0.6, 0.1]
    """

    name: ClassVar[str] = "directpred"
    title: ClassVar[str] = "DirectPred"
    PARAMS: ClassVar[dict[str, Param]] = {"eps": _DIRECT_PARAMS["eps"], "rho": _DIRECT_PARAMS["rho"],
                                          "form": _FORM_PARAM, "freq": _DIRECT_PARAMS["freq"],
                                          "beta_F": _DIRECT_PARAMS["beta_F"]}
    exponent: ClassVar[float] = 0.5

    def __init__(self, eps=0.1, rho=0.3, form="code", freq=1, beta_F=None):
        self._set(eps, rho, form, freq, beta_F)


class DirectCopy(Direct):
    """DirectCopy (Wang, Chen, Du & Tian 2022, arXiv 2110.04947): Wp = F̂ / ‖F̂‖_2 + eps I, no eigenvectors.

    On the spectrum p_j = s_j / max s + eps (DirectPred's code form with s_j for sqrt(s_j)); F̂ = 0 gives
    eps I. `eps`, `rho`, `freq`, `beta_F` as `DirectPred`.
    """

    name: ClassVar[str] = "directcopy"
    title: ClassVar[str] = "DirectCopy"
    PARAMS: ClassVar[dict[str, Param]] = {k: _DIRECT_PARAMS[k] for k in ("eps", "rho", "freq", "beta_F")}
    exponent: ClassVar[float] = 1.0
    scale_free: ClassVar[bool] = True
    form: ClassVar[str] = "code"
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
        return _normalized(s) + _lead(self.eps, s)

    def matrix(self, F: jax.Array) -> jax.Array:
        """Wp = F̂ / ‖F̂‖_2 + eps I (F̂ symmetrized; batched over leading axes)."""
        F = _sym(jnp.asarray(F))
        norm = jnp.max(jnp.abs(jnp.linalg.eigvalsh(F)), axis=-1)[..., None, None]
        ok = norm > 0
        eye = jnp.broadcast_to(jnp.eye(F.shape[-1], dtype=F.dtype), F.shape)  # batched F under rank_promotion="raise"
        return jnp.where(ok, F / jnp.where(ok, norm, 1.0), 0.0) + _lead(self.eps, F, 2) * eye


class DirectSet(Spectral):
    """DirectSet(α) (Wang, Chen, Du & Tian 2021, arXiv 2110.04947): `Spectral` with the power a = `alpha` > 0,
    p_j ∝ s_j^α on F̂'s eigenvectors, with DirectPred's forms and ε conventions (docs/directset.md):

    - `form="code"`: p_j = max((s_j / max s)^α + eps, 1e-4) (α = 1/2: DirectPred's official form; α = 1:
      DirectCopy's spectrum s_j / max s + eps, floored at 1e-4);
    - `form="paper"`: p_j = s_j^α + eps max s;  `form="raw"`: p_j = s_j^α + eps.

    `eps`, `rho`, `freq`, `beta_F` as `DirectPred`. The mode-level closed forms (fixed points, collapse threshold,
    the ratio threshold r* = (τ/κ − 1 − 2ε)^{1/α} of the code form) are `byoldyn.theory.directpred_*`.

    >>> import numpy as np, byoldyn as bd
    >>> np.round(np.asarray(bd.predictors.DirectSet(alpha=1.0, eps=0.1).modes(np.array([4.0, 1.0, 0.0]))), 4).tolist()
    [1.1, 0.35, 0.1]
    """

    name: ClassVar[str] = "directset"
    title: ClassVar[str] = "DirectSet"
    PARAMS: ClassVar[dict[str, Param]] = {"alpha": Param("DirectSet's power alpha > 0, p_j ∝ s_j^alpha (1/2: "
                                                         "DirectPred, 1: DirectCopy's spectrum; default 0.5)", "α"),
                                          **DirectPred.PARAMS}
    alpha: float = 0.5

    def __init__(self, alpha=0.5, eps=0.1, rho=0.3, form="code", freq=1, beta_F=None):
        self.alpha = _real("alpha", alpha, lo=0.0, lo_strict=True)
        self._set(eps, rho, form, freq, beta_F)

    @property
    def exponent(self):
        return self.alpha


#: the registry: name -> class (every level's and the CLI's predictor choices come from it)
PREDICTORS: dict[str, type[Predictor]] = {c.name: c for c in (Learned, Symmetric, Identity, DirectPred, DirectCopy,
                                                              DirectSet)}
#: old names accepted by `as_predictor` (the ResNet level's "linear" and "none")
ALIASES = {"linear": "learned", "none": "identity"}


def canonical_name(name: str) -> str:
    """The registry name of `name` (aliases mapped); ValueError listing the names for an unknown one."""
    name = ALIASES.get(name, name) if isinstance(name, str) else name
    if name not in PREDICTORS:
        raise ValueError(f"predictor must be one of {tuple(PREDICTORS)}, got {name!r}")
    return name


def as_predictor(x: str | Predictor, **shorthands) -> Predictor:
    """The predictor object of a name (its defaults, e.g. "directpred" -> DirectPred()) or the object itself.

    `shorthands` (e.g. `eps=0.2`, `freq=2`; None means not given) set parameters where the entry point takes
    them as loose keywords: with a name they build the object (`ValueError` for a parameter the class lacks);
    with an object they must equal its values (`ValueError` naming both otherwise): one value per parameter.
    """
    given = {k: v for k, v in shorthands.items() if v is not None}
    if isinstance(x, Predictor):
        for k, v in given.items():
            if k not in x.PARAMS:
                raise ValueError(f"{k} is not a parameter of {x.name}; set the predictor's parameters on its object")
            mine = getattr(x, k)
            if k == "form":
                v = _form(v)
            if not _same(mine, v):
                raise ValueError(f"{k} = {v!r} conflicts with the predictor's {k} = {mine!r} ({x!r}): give it once, "
                                 f"on the predictor object")
        return x
    if not isinstance(x, str):
        raise ValueError(f"predictor must be a name or a byoldyn.predictors.Predictor, got {x!r}")
    cls = PREDICTORS[canonical_name(x)]
    bad = sorted(set(given) - set(cls.PARAMS))
    if bad:
        raise ValueError(f"{bad[0]} is not a parameter of {cls.name} (its parameters: {', '.join(cls.PARAMS) or 'none'})")
    return cls(**given)


class Variant(eqx.Module):
    """A method variant (DESIGN.md): EMA target or not, stop-gradient or not, the predictor and the loss.

    `stop_grad=False` needs `ema=False` (with an EMA target no gradient reaches Wa, Theorem 2);
    `predictor` a `Predictor` or its name; `loss` one of `LOSSES`: "euclidean" (Eq. 1, every level), "cosine" (the
    exact normalised loss at the sampled and ResNet levels; its high-dimensional mean-field form at the matrix and
    mode levels, `flows.modes.cosine_mode_field`, docs/cosine_loss.md; not in sweeps) or "isoloss" (Eq. 1's value, its gradient reaching W
    without the factor Wpᵀ: docs/isoloss.md; matrix, sampled and ResNet levels; it is built from stop-gradients, so
    it needs `stop_grad=True`). The predictor is a pytree field: its parameters may be traced or
    carry batch axes (a sweep's members); `ema`, `stop_grad`, `loss` are static.
    """

    ema: bool = eqx.field(static=True)
    stop_grad: bool = eqx.field(static=True)
    predictor: Predictor
    loss: str = eqx.field(static=True)

    def __init__(self, ema=True, stop_grad=True, predictor: str | Predictor = "learned", loss="euclidean"):
        for n, v in (("ema", ema), ("stop_grad", stop_grad)):
            if not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"{n} must be True or False, got {v!r}")
        if not stop_grad and ema:
            raise ValueError("stop_grad=False needs ema=False: with an EMA target no gradient reaches Wa (Theorem 2)")
        if not isinstance(predictor, (str, Predictor)):
            raise ValueError(f"predictor must be a name or a byoldyn.predictors.Predictor, got {predictor!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if loss == "isoloss" and not stop_grad:
            raise ValueError("loss='isoloss' needs stop_grad=True: IsoLoss is defined by its stop-gradients")
        self.ema, self.stop_grad, self.predictor = bool(ema), bool(stop_grad), as_predictor(predictor)
        self.loss = loss

    def label(self) -> str:
        """A figure label: the predictor's, then "no EMA", "no stop-grad", "cosine" where they apply."""
        parts = [self.predictor.label()] + [t for t, on in (("no EMA", not self.ema), ("no stop-grad",
                                            not self.stop_grad), ("cosine loss", self.loss == "cosine"),
                                            ("IsoLoss", self.loss == "isoloss")) if on]
        return ", ".join(parts)


def as_variant(variant: Variant | None = None, *, ema=None, stop_grad=None, predictor=None) -> Variant:
    """The `Variant` of an entry point's arguments: `variant` itself, or one built from the shorthands `ema=`,
    `stop_grad=`, `predictor=` (None: not given, the defaults True, True, "learned"). Given both, a shorthand
    must agree with the variant (`ValueError` naming both otherwise)."""
    if variant is None:
        return Variant(ema=True if ema is None else ema, stop_grad=True if stop_grad is None else stop_grad,
                       predictor="learned" if predictor is None else predictor)
    if not isinstance(variant, Variant):
        raise ValueError(f"variant must be a byoldyn.Variant, got {variant!r}")
    for k, v in (("ema", ema), ("stop_grad", stop_grad)):
        if v is not None and bool(v) != getattr(variant, k):
            raise ValueError(f"{k}={v!r} conflicts with variant.{k}={getattr(variant, k)!r}: give it once")
    if predictor is not None:
        mine = variant.predictor
        other = as_predictor(predictor) if not isinstance(predictor, str) or \
            canonical_name(predictor) != mine.name else mine
        if not _same_predictor(mine, other):
            raise ValueError(f"predictor={predictor!r} conflicts with variant.predictor={mine!r}: give it once")
    return variant


def _same_predictor(a: Predictor, b: Predictor) -> bool:
    return type(a) is type(b) and all(_same(x, y) for x, y in zip(a.params().values(), b.params().values()))


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

