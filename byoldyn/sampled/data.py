"""Sampled data and augmentations whose second moments are the ODE's X and X' (THEORY.md sections 1, 8).

- inputs x ~ N(0, Σx);
- additive augmentation: each view x' = x + n, n ~ N(0, Σn) independent per view, so
  X = Σx and X' = Σn (Σ^s = Σx + Σn, Σ^d = Σx; Appendix D);
- multiplicative subspace scrambling (Appendix D): x' = A x with A = P^c + U B Uᵀ, U an
  orthonormal basis (n1, k) of the scrambled subspace, P^c = I - U Uᵀ and B a fresh k x k matrix
  of i.i.d. N(0, 1) entries per view. Then x̄ = P^c x, X = P^c Σx P^c and
  X' = E‖Uᵀx‖² U Uᵀ = tr(Uᵀ Σx U) U Uᵀ.

A non-zero data mean μ (`mean=` of every class method; docs/centering.md): x ~ N(μ, Σx). X and X' keep their
definitions, X = E[x̄x̄ᵀ] is the *uncentered* second moment that Lemma 1's expected loss reads (E[x1x2ᵀ] = X,
E[x1x1ᵀ] = X + X'): additive X = Σx + μμᵀ, X' = Σn; scrambling X = P^c (Σx + μμᵀ) P^c,
X' = tr(Uᵀ(Σx + μμᵀ)U) U Uᵀ. The views' mean m = E[x1] (`view_mean`: μ, or P^c μ when scrambled) is what batch
centering removes: `centered_moments(B)` = `moments().centered(B, m)`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..model import Data
from ..validate import as_array, check_finite, check_psd, check_sign

__all__ = ["Source"]

KINDS = ("additive", "scramble")


def _mean(mean, n1, dtype):
    """The data mean as an (n1,) array, or None for zero mean (the former sources, unchanged)."""
    if mean is None:
        return None
    m = as_array("mean", mean)
    check_finite("mean", m)
    if m.shape != (n1,):
        raise ValueError(f"mean must be a vector of length n1 = {n1}, got shape {m.shape}")
    return m.astype(dtype)


def _sqrtm(name, S):
    S = as_array(name, S)
    check_finite(name, S)
    check_psd(name, S)
    s, U = jnp.linalg.eigh(S)
    return S, (U * jnp.sqrt(jnp.clip(s, 0.0, None))[None, :]) @ U.T


class Source(eqx.Module):
    """A distribution of (x1, x2) view pairs with known moments; build with the class methods.

    - `Source.isotropic(n1, sigma2, x=1.0)`: Σx = x I, Σn = sigma2 I (Assumption 2).
    - `Source.additive(Sigma_x, Sigma_n)`: additive Gaussian augmentation.
    - `Source.scramble(Sigma_x, U)`: Appendix D scrambling of span(U) (U: (n1, k), orthonormalized here).

    Each takes `mean=μ` (an (n1,) vector; default None, zero mean): inputs x ~ N(μ, Σx) (module docstring).

    `sample(key, batch)` gives two (batch, n1) arrays; `moments()` the ODE's `Data(X, X')` (uncentered second
    moments); `view_mean()` the views' mean m = E[x1]; `centered_moments(batch)` the moments of batch-centered
    views (docs/centering.md).
    """

    Sx: jax.Array     # Σx (scalar if isotropic)
    Lx: jax.Array     # its symmetric square root
    Sn: jax.Array     # Σn (scalar if isotropic); unused for "scramble"
    Ln: jax.Array
    U: jax.Array      # scrambled subspace basis (n1, k); empty for "additive"
    mu: jax.Array | None  # the data mean μ (n1,); None: zero mean
    n1: int = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    iso: bool = eqx.field(static=True)

    def __init__(self, Sx, Lx, Sn, Ln, U, n1, kind, iso, mu=None):
        self.Sx, self.Lx, self.Sn, self.Ln, self.U, self.mu = Sx, Lx, Sn, Ln, U, mu
        self.n1, self.kind, self.iso = int(n1), kind, bool(iso)

    @classmethod
    def isotropic(cls, n1: int, sigma2=0.0, x=1.0, *, mean=None) -> Source:
        """x ~ N(μ, x I), views x + n with n ~ N(0, sigma2 I): the main text's X = x I, X' = sigma2 I (μ = 0;
        with a mean, X = x I + μμᵀ)."""
        if isinstance(n1, bool) or not isinstance(n1, (int, np.integer)) or n1 < 1:
            raise ValueError(f"n1 must be a positive integer, got {n1!r}")
        sx, sn = as_array("x", x), as_array("sigma2", sigma2)
        for name, v in (("x", sx), ("sigma2", sn)):
            check_finite(name, v)
            check_sign(name, v, strict=False)
            if v.ndim:
                raise ValueError(f"{name} must be a scalar, got shape {v.shape}")
        return cls(sx, jnp.sqrt(sx), sn, jnp.sqrt(sn), jnp.zeros((n1, 0), sx.dtype), n1, "additive", True,
                   _mean(mean, n1, sx.dtype))

    @classmethod
    def additive(cls, Sigma_x, Sigma_n, *, mean=None) -> Source:
        """x ~ N(μ, Sigma_x), views x + n with n ~ N(0, Sigma_n) (X = Sigma_x + μμᵀ, X' = Sigma_n; Appendix D)."""
        Sx, Lx = _sqrtm("Sigma_x", Sigma_x)
        Sn, Ln = _sqrtm("Sigma_n", Sigma_n)
        if Sx.ndim != 2 or Sn.shape != Sx.shape:
            raise ValueError(f"Sigma_n must have the shape of Sigma_x {Sx.shape}, got {Sn.shape}")
        n1 = Sx.shape[0]
        return cls(Sx, Lx, Sn, Ln, jnp.zeros((n1, 0), Sx.dtype), n1, "additive", False, _mean(mean, n1, Sx.dtype))

    @classmethod
    def scramble(cls, Sigma_x, U, *, mean=None) -> Source:
        """Appendix D scrambling: views (P^c + U B Uᵀ) x, B_ij ~ N(0, 1) fresh per view; U (n1, k), k >= 1;
        x ~ N(μ, Sigma_x)."""
        Sx, Lx = _sqrtm("Sigma_x", Sigma_x)
        U = as_array("U", U)
        check_finite("U", U)
        if Sx.ndim != 2 or U.ndim != 2 or U.shape[0] != Sx.shape[0] or not 1 <= U.shape[1] <= U.shape[0]:
            raise ValueError(f"U must have shape (n1, k) with n1 = {Sx.shape[-1]} and 1 <= k <= n1, got {U.shape}")
        Q, R = jnp.linalg.qr(U)
        if np.min(np.abs(np.diag(np.asarray(R)))) < 1e-10 * max(1.0, float(np.max(np.abs(np.asarray(U))))):
            raise ValueError("U must have linearly independent columns")
        z = jnp.zeros((), Sx.dtype)
        return cls(Sx, Lx, z, z, Q, Sx.shape[0], "scramble", False, _mean(mean, Sx.shape[0], Sx.dtype))

    def moments(self) -> Data:
        """The ODE's data moments X = E[x̄x̄ᵀ], X' = E[Var(x'|x)] of this source (exact; uncentered: with a mean
        μ, X includes the views' mean outer product m mᵀ, module docstring)."""
        if self.iso and self.mu is None:
            return Data.isotropic(self.n1, self.Sn, self.Sx)
        eye = jnp.eye(self.n1, dtype=self.Lx.dtype)
        Sx = self.Sx * eye if self.iso else self.Sx
        M = Sx if self.mu is None else Sx + jnp.outer(self.mu, self.mu)  # E[x xᵀ]
        if self.kind == "additive":
            return Data(M, self.Sn * eye if self.iso else self.Sn)
        P = self.U @ self.U.T
        Pc = eye - P
        X = Pc @ M @ Pc
        return Data(0.5 * (X + X.T), jnp.trace(self.U.T @ M @ self.U) * P)

    def view_mean(self) -> jax.Array:
        """The views' mean m = E[x1] = E[x̄]: μ (additive), P^c μ (scrambled; E[B] = 0); zeros for zero mean."""
        if self.mu is None:
            return jnp.zeros((self.n1,), self.Lx.dtype)
        if self.kind == "additive":
            return self.mu
        return self.mu - self.U @ (self.U.T @ self.mu)

    def centered_moments(self, batch: int | None) -> Data:
        """The moments of batch-centered views, `moments().centered(batch, view_mean())`: X_c = (1 − 1/B)(X − m mᵀ),
        X'_c = (1 − 1/B) X' (docs/centering.md); `batch=None` is B = ∞ (population centering)."""
        return self.moments().centered(batch, self.view_mean())

    def sample(self, key, batch: int) -> tuple[jax.Array, jax.Array]:
        """Two augmented views (x1, x2) of the same `batch` inputs, each (batch, n1)."""
        kx, k1, k2 = jax.random.split(key, 3)
        dtype = self.Lx.dtype
        z = jax.random.normal(kx, (batch, self.n1), dtype)
        x = z * self.Lx if self.iso else z @ self.Lx   # Lx symmetric: rows x_b = Lx z_b
        if self.mu is not None:
            x = x + self.mu[None, :]
        if self.kind == "additive":
            def view(k):
                e = jax.random.normal(k, (batch, self.n1), dtype)
                return x + (e * self.Ln if self.iso else e @ self.Ln)
        else:
            y = x @ self.U                               # (batch, k) = (Uᵀ x_b)ᵀ
            xc = x - y @ self.U.T                        # P^c x_b

            def view(k):
                B = jax.random.normal(k, (batch, self.U.shape[1], self.U.shape[1]), dtype)
                return xc + jnp.einsum("bij,bj->bi", B, y) @ self.U.T
        return view(k1), view(k2)
