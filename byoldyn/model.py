"""Model objects: hyperparameters, data moments and the state (W, Wp, Wa).

All three are frozen pytrees (`equinox.Module`), so they pass through `jit`, `vmap`
and diffrax unchanged, and every field may carry leading batch axes. Construction
with concrete values is validated; under a transformation (tracers) nothing is
checked, since the values are not known yet.
"""

from __future__ import annotations

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .validate import as_array, brief, check_finite, check_key, check_psd, check_sign, is_concrete

__all__ = ["Hyper", "Data", "State", "memory_bytes", "check_fits"]


def memory_bytes() -> int | None:
    """The memory of JAX's default device: its `bytes_limit` where it says (accelerators), else the host's
    physical memory (CPU); None if neither is known."""
    try:
        limit = (jax.devices()[0].memory_stats() or {}).get("bytes_limit")
    except Exception:  # noqa: BLE001 - CPU devices and some plugins have no memory statistics
        limit = None
    if limit:
        return int(limit)
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(what: str, nbytes: float) -> None:
    """`ValueError` naming `what` and its size when `nbytes` exceed the whole memory of the default device
    (`memory_bytes`): arrays that cannot exist, refused before JAX tries to allocate them."""
    total = memory_bytes()
    if total is not None and nbytes > total:
        raise ValueError(f"{what} needs {nbytes / 1e9:.3g} GB, more than the {total / 1e9:.3g} GB of memory of the "
                         f"{jax.devices()[0].platform} device")


class Hyper(eqx.Module):
    """Hyperparameters of the flow, as ratios to the online learning rate (THEORY.md section 1).

    **Arguments:**

    - `alpha_p`: relative predictor learning rate, > 0.
    - `eta`: weight decay of the online encoder W, >= 0.
    - `beta`: EMA rate of the target Wa (Eq. 4), >= 0.
    - `eta_p`: weight decay of the predictor Wp, >= 0; defaults to `eta` (Lemma 1).

    Fields may be arrays with leading batch axes, e.g. for `vmap` over a sweep.
    """

    alpha_p: jax.Array
    eta: jax.Array
    beta: jax.Array
    eta_p: jax.Array

    def __init__(self, alpha_p=1.0, eta=0.0, beta=1.0, eta_p=None):
        self.alpha_p = as_array("alpha_p", alpha_p)
        self.eta = as_array("eta", eta)
        self.beta = as_array("beta", beta)
        self.eta_p = self.eta if eta_p is None else as_array("eta_p", eta_p)
        for name in ("alpha_p", "eta", "beta", "eta_p"):
            check_finite(name, getattr(self, name))
        check_sign("alpha_p", self.alpha_p, strict=True)
        check_sign("eta", self.eta, strict=False)
        check_sign("beta", self.beta, strict=False)
        check_sign("eta_p", self.eta_p, strict=False)


class Data(eqx.Module):
    """Second moments of the data: X = E[x̄ x̄ᵀ] and X' = E[Var(x'|x)] (THEORY.md section 1).

    `Data(X, Xp)` takes two symmetric PSD (n1, n1) matrices. `Data.isotropic(n1, sigma2)`
    is X = I, X' = sigma2 I (Assumption 2); it stores the two scalars only, so the flows
    use scalar products instead of products with identity matrices.
    """

    X: jax.Array
    Xp: jax.Array
    n1: int = eqx.field(static=True)
    isotropic_: bool = eqx.field(static=True)

    def __init__(self, X, Xp, *, n1: int | None = None, _isotropic: bool = False):
        self.isotropic_ = bool(_isotropic)
        nx, nxp = ("x", "sigma2") if self.isotropic_ else ("X", "Xp")  # the names the caller used
        self.X = as_array(nx, X)
        self.Xp = as_array(nxp, Xp)
        check_finite(nx, self.X)
        check_finite(nxp, self.Xp)
        if self.isotropic_:
            if isinstance(n1, bool) or not isinstance(n1, (int, np.integer)) or n1 < 1:
                raise ValueError(f"n1 must be a positive integer, got {n1!r}")
            self.n1 = int(n1)
            check_sign(nx, self.X, strict=False)
            check_sign(nxp, self.Xp, strict=False)
            return
        if self.X.ndim < 2 or self.X.shape[-1] != self.X.shape[-2] or self.X.shape[-1] < 1:
            raise ValueError(f"X must have shape (..., n1, n1) with n1 >= 1, got {self.X.shape}")
        if self.Xp.shape[-2:] != self.X.shape[-2:]:
            raise ValueError(f"Xp must have the shape of X {self.X.shape[-2:]}, got {self.Xp.shape}")
        self.n1 = int(self.X.shape[-1])
        check_psd("X", self.X)
        check_psd("Xp", self.Xp)

    @classmethod
    def isotropic(cls, n1: int, sigma2=0.0, x=1.0) -> Data:
        """X = x I and X' = sigma2 I in n1 dimensions (Assumption 2 has x = 1)."""
        if isinstance(n1, bool) or not isinstance(n1, (int, np.integer)) or n1 < 1:
            raise ValueError(f"n1 must be a positive integer, got {n1!r}")
        return cls(x, sigma2, n1=int(n1), _isotropic=True)

    @classmethod
    def diagonal(cls, x, xp) -> Data:
        """X = diag(x) and X' = diag(xp): data and augmentation that share the standard eigenbasis, data variance
        x_j > 0 and augmentation variance x'_j >= 0 along mode j (the anisotropic modes,
        docs/anisotropic_modes.md). Stored as full matrices, so every level takes it; the mode level reads the
        diagonals (`mode_moments`)."""
        x, xp = as_array("x", x), as_array("xp", xp)
        if x.ndim != 1 or x.shape != xp.shape or x.shape[0] < 1:
            raise ValueError(f"x and xp must be two vectors of one length >= 1, got shapes {x.shape} and {xp.shape}")
        check_finite("x", x)
        check_finite("xp", xp)
        check_sign("x", x, strict=True)
        check_sign("xp", xp, strict=False)
        return cls(jnp.diag(x), jnp.diag(xp))

    @property
    def is_isotropic(self) -> bool:
        return self.isotropic_

    def mode_moments(self) -> tuple[jax.Array, jax.Array]:
        """(λ_s, λ_d) per mode: the eigenvalues of Σ^s = X + X' and Σ^d = X along the shared eigenbasis (THEORY.md
        App. D.4; docs/anisotropic_modes.md). Scalars for isotropic data; the diagonals, one value per mode, for
        `Data.diagonal`. `ValueError` when X or X' is not diagonal (rotate to their common eigenbasis first)."""
        if self.isotropic_:
            return self.X + self.Xp, self.X
        if self.X.ndim != 2:
            raise ValueError(f"mode_moments needs one Data, not a batch of shape {self.X.shape[:-2]}")
        if is_concrete(self.X) and is_concrete(self.Xp):
            for name, m in (("X", self.X), ("Xp", self.Xp)):
                off = np.asarray(m) - np.diag(np.diag(np.asarray(m)))
                if np.abs(off).max(initial=0.0) > 1e-12 * max(np.abs(np.asarray(m)).max(), 1e-300):
                    raise ValueError(f"the mode level needs diagonal X and X' (Data.diagonal, or rotate to their "
                                     f"common eigenbasis); {name} has off-diagonal entries")
        x, xp = jnp.diagonal(self.X), jnp.diagonal(self.Xp)
        return x + xp, x

    @property
    def kappa(self) -> jax.Array:
        """κ = 1 + σ² for isotropic data (THEORY.md section 5); only defined there."""
        if not self.isotropic_:
            raise ValueError("kappa is defined for isotropic data only")
        return self.X + self.Xp

    def matrices(self) -> tuple[jax.Array, jax.Array]:
        """(X, X') as full matrices, whatever the storage."""
        if not self.isotropic_:
            return self.X, self.Xp
        eye = jnp.eye(self.n1, dtype=self.X.dtype)
        return self.X[..., None, None] * eye, self.Xp[..., None, None] * eye

    def centered(self, batch: int | None = None, mean=None) -> Data:
        """The moments of batch-centered views (BatchNorm's zero-mean step; docs/centering.md):

            X_c = (1 − 1/B) (X − m mᵀ),    X'_c = (1 − 1/B) X',

        with `mean` m = E[x1] the views' mean (None: zero) and `batch` B (None: B = ∞, population centering).
        The centered SGD update's expectation at batch B (Euclidean loss, either `CENTERS` mode) is Lemma 1 with
        these moments, so its flow is `simulate(state, hyper, data.centered(B, m), ...)`. Centering lives here, on
        the moments, rather than on `Variant`: the centered update is Lemma 1 with other moments (docs/centering.md),
        so the Euclidean paths that read `Data` (vector_field, autodiff_field, simulate, simulate_batch, the mode
        level, `theory.eta_c`) take it unchanged, and the mean is a property of the data, not of the method. The
        mode level needs diagonal moments: `Data.centered` keeps X's eigenbasis only when m lies along one of its
        eigenvectors (m mᵀ then shares it); otherwise rotate first, or use the matrix level. The cosine mean-field
        loss: with `"center"` the sampled gradient is the loss's on the centered views, whose moments these are
        (so it takes them as for any data); `"center-detach"` adds Wpᵀ mean_b(g_b) x̄1ᵀ to the W gradient, zero in
        expectation only for Gaussian views (x̄ independent of the centered samples; docs/centering.md, C2).
        `ValueError` when X − m mᵀ is not PSD (a mean larger than the second moment allows)."""
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 2):
            raise ValueError(f"batch must be an integer >= 2 (a batch of one centers to zero) or None, got {batch!r}")
        f = 1.0 if batch is None else 1.0 - 1.0 / batch
        if mean is None:
            if self.isotropic_:
                return Data.isotropic(self.n1, f * self.Xp, f * self.X)
            return Data(f * self.X, f * self.Xp)
        m = as_array("mean", mean)
        check_finite("mean", m)
        if m.shape[-1:] != (self.n1,):
            raise ValueError(f"mean must be a vector of length n1 = {self.n1}, got shape {m.shape}")
        X, Xp = self.matrices()
        Xc = X - m[..., :, None] * m[..., None, :]
        if is_concrete(Xc) and np.linalg.eigvalsh(np.asarray(Xc, np.float64)).min(initial=0.0) < \
                -1e-6 * float(np.abs(np.asarray(X)).max(initial=1e-300)):  # check_psd's rounding tolerance
            raise ValueError("mean is inconsistent with X: X − m mᵀ (the views' covariance) must be PSD")
        return Data(f * 0.5 * (Xc + jnp.swapaxes(Xc, -1, -2)), f * Xp)

    def right(self, W: jax.Array, which: str) -> jax.Array:
        """W X, W X' or W (X + X') for `which` in {"X", "Xp", "S"}, exploiting isotropy."""
        m = {"X": self.X, "Xp": self.Xp, "S": self.X + self.Xp}[which]
        return m * W if self.isotropic_ else W @ m


class State(eqx.Module):
    """The linear BYOL state: online encoder W (n2, n1), predictor Wp (n2, n2), target Wa (n2, n1).

    `Fhat` (n2, n2), optional: the running estimate F̂ of the predictor-input correlation that
    DirectPred / DirectCopy with a finite `beta_F` carry as an extra state (THEORY.md 10.1, 15.13);
    None (no leaves) for every other variant, so `State(W, Wp, Wa)` is unchanged.

    Fields may carry the same leading batch axes (time, members, ...).
    """

    W: jax.Array
    Wp: jax.Array
    Wa: jax.Array
    Fhat: jax.Array | None = None

    def __init__(self, W, Wp, Wa=None, Fhat=None):
        self.W = as_array("W", W)
        self.Wp = as_array("Wp", Wp)
        self.Wa = jnp.zeros_like(self.W) if Wa is None else as_array("Wa", Wa)
        self.Fhat = None if Fhat is None else as_array("Fhat", Fhat)
        if self.W.ndim < 2 or min(self.W.shape[-2:]) < 1:
            raise ValueError(f"W must have shape (..., n2, n1) with n1, n2 >= 1, got {self.W.shape}")
        n2 = self.W.shape[-2]
        if self.Wp.ndim < 2 or self.Wp.shape[-2:] != (n2, n2):
            raise ValueError(f"Wp must have shape (..., {n2}, {n2}) to match W {self.W.shape}, got {self.Wp.shape}")
        if self.Wa.shape[-2:] != self.W.shape[-2:]:
            raise ValueError(f"Wa must have the shape of W {self.W.shape[-2:]}, got {self.Wa.shape}")
        if self.Fhat is not None and (self.Fhat.ndim < 2 or self.Fhat.shape[-2:] != (n2, n2)):
            raise ValueError(f"Fhat must have shape (..., {n2}, {n2}) to match W {self.W.shape}, "
                             f"got {self.Fhat.shape}")
        for name in ("W", "Wp", "Wa", "Fhat"):
            if getattr(self, name) is not None:
                check_finite(name, getattr(self, name))
        if self.Fhat is not None:
            check_psd("Fhat", self.Fhat)

    @classmethod
    def unchecked(cls, W, Wp, Wa, Fhat=None) -> State:
        """A `State` from arrays as they are, without validation (for traced code)."""
        s = object.__new__(cls)
        for name, v in (("W", W), ("Wp", Wp), ("Wa", Wa), ("Fhat", Fhat)):
            object.__setattr__(s, name, v)
        return s

    @property
    def n1(self) -> int:
        return self.W.shape[-1]

    @property
    def n2(self) -> int:
        return self.W.shape[-2]

    @classmethod
    def random(cls, key, n1: int, n2: int, *, scale=0.1, wp_scale=None, target: str = "zero", dtype=None) -> State:
        """Gaussian initial state: W, Wp with i.i.d. N(0, scale²/n) entries (n = fan-in).

        `target="zero"` starts Wa = 0 (the paper's choice, Fig. 7); `"copy"` starts Wa = W.
        `wp_scale` defaults to `scale`.
        """
        for name, v in (("n1", n1), ("n2", n2)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if target not in ("zero", "copy"):
            raise ValueError(f"target must be 'zero' or 'copy', got {target!r}")
        wp_scale = scale if wp_scale is None else wp_scale
        for name, v in (("scale", scale), ("wp_scale", wp_scale)):
            check_finite(name, as_array(name, v))
            check_sign(name, as_array(name, v), strict=False)
        check_key(key)
        try:
            dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
        except TypeError:
            raise ValueError(f"dtype must be a floating dtype, got {brief(dtype)}") from None
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"dtype must be a floating dtype, got {dtype}")
        check_fits(f"State.random(n1 = {n1}, n2 = {n2})", (3 * n2 * n1 + 2 * n2 * n2) * dtype.itemsize)
        k1, k2 = jax.random.split(key)
        W = scale / np.sqrt(n1) * jax.random.normal(k1, (n2, n1), dtype)
        Wp = wp_scale / np.sqrt(n2) * jax.random.normal(k2, (n2, n2), dtype)
        return cls(W, Wp, jnp.zeros_like(W) if target == "zero" else W)
