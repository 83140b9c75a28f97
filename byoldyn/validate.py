"""Validation of public inputs: concrete-value checks that name the argument (skipped under tracing, where the
values are not known yet), and the conversion of user values to arrays of a dtype."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["is_concrete", "brief", "precision_hint", "to_dtype", "as_array", "check_key", "check_finite", "check_sign",
           "check_psd"]


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def brief(x, limit: int = 60) -> str:
    """`repr(x)`, shortened to `limit` characters (for messages)."""
    r = repr(x)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def precision_hint(dtype) -> str:
    return "" if np.dtype(dtype) == np.float64 else \
        "; use float64: jax.config.update('jax_enable_x64', True) before creating arrays (CLI: --x64)"


def check_representable(name: str, v: np.ndarray, dtype) -> None:
    """`ValueError` if finite values `v` overflow to inf (or a non-zero scalar underflows to 0) in `dtype`.

    The rounding is done in NumPy, on the concrete `v`, so that the check also holds while a caller is being
    traced (`jax.jit`), where the converted jnp array is a tracer."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(v.dtype, np.number) or v.dtype == dtype:
        return
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # reported below, by name
        got = v.astype(dtype)
    over = np.isfinite(v) & ~np.isfinite(got)
    if np.any(over):
        bad = v[over].ravel()[0] if v.ndim else v
        raise ValueError(f"{name} is too large for {dtype}, got {np.asarray(bad).item()!r} "
                         f"({dtype} holds magnitudes up to {np.finfo(dtype).max:.3g}){precision_hint(dtype)}")
    if v.size == 1 and v.item() != 0 and got.item() == 0:
        raise ValueError(f"{name} is too small for {dtype}, got {v.item()!r}, which rounds to 0 "
                         f"({dtype} resolves magnitudes down to {np.finfo(dtype).smallest_subnormal:.3g})"
                         f"{precision_hint(dtype)}")


def to_dtype(name: str, x, dtype) -> jax.Array:
    """A concrete real value as a jnp array of `dtype`, refusing values that do not fit (`check_representable`)."""
    v = np.asarray(x)
    check_representable(name, v, dtype)
    with np.errstate(over="ignore", under="ignore"):
        return jnp.asarray(v, dtype)


def as_array(name: str, x):
    """`x` as a floating jnp array; `ValueError` naming `name` if it is not a real number or an array of them
    (strings, None, bools, ragged lists, complex), or if a finite value overflows the floating dtype
    (float32 unless x64 is enabled) or a non-zero scalar underflows to 0 there."""
    if isinstance(x, (jax.Array, jax.core.Tracer)):
        a = x
        if not jnp.issubdtype(a.dtype, jnp.number) or a.dtype == jnp.bool_:
            raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
        if jnp.issubdtype(a.dtype, jnp.complexfloating):
            raise ValueError(f"{name} must be real, got dtype {a.dtype}")
        return a if jnp.issubdtype(a.dtype, jnp.floating) else a.astype(jnp.result_type(float))
    if x is None or isinstance(x, (str, bytes, dict, set)):
        raise ValueError(f"{name} must be numeric, got {brief(x)}")
    try:
        v = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric, got {brief(x)}") from e
    if np.issubdtype(v.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real, got dtype {v.dtype}")
    if not np.issubdtype(v.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got {brief(x)}")
    # integers go through float64, so that large ones are not wrapped in int32
    with np.errstate(over="ignore", under="ignore"):  # reported below, by name
        a = jnp.asarray(x) if np.issubdtype(v.dtype, np.floating) else jnp.asarray(v.astype(np.float64))
    check_representable(name, v, a.dtype)
    return a


def check_key(key) -> None:
    """`ValueError` unless `key` is a JAX PRNG key: typed (`jax.random.key`) or raw uint32 (`PRNGKey`)."""
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if isinstance(key, (jax.Array, jax.core.Tracer, np.ndarray)) and dtype is not None:
        if jnp.issubdtype(dtype, jax.dtypes.prng_key) and shape == ():
            return
        if dtype == jnp.uint32 and shape is not None and len(shape) == 1 and shape[0] in (2, 4):
            return
    raise ValueError(f"key must be a JAX PRNG key (jax.random.PRNGKey(seed) or jax.random.key(seed)), "
                     f"got {brief(key)}")


def show(x) -> str:
    a = np.asarray(x)
    return repr(a.item()) if a.size == 1 else f"array of shape {a.shape}"


def check_finite(name: str, a) -> None:
    if is_concrete(a) and not np.all(np.isfinite(v := np.asarray(a))):
        got = show(v) if v.size == 1 else f"{show(a)} with non-finite entries"
        raise ValueError(f"{name} must be finite, got {got}")


def check_sign(name: str, a, *, strict: bool) -> None:
    if not is_concrete(a):
        return
    v = np.asarray(a)
    bad = v <= 0 if strict else v < 0
    if np.any(bad):
        rel = "> 0" if strict else ">= 0"
        shown = v if v.size == 1 else v[bad].ravel()[0]
        raise ValueError(f"{name} must be {rel}, got {show(shown)}")


def check_psd(name: str, a, rtol: float = 1e-6) -> None:
    """Symmetric positive semi-definite, up to a relative rounding tolerance."""
    if not is_concrete(a):
        return
    m = np.asarray(a, dtype=np.float64)
    if m.ndim < 2 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"{name} must be a square matrix (..., n1, n1), got shape {m.shape}")
    scale = max(np.max(np.abs(m)), np.finfo(np.float64).tiny)
    tol = rtol * scale if np.asarray(a).dtype == np.float64 else max(rtol, 1e-5) * scale
    asym = np.max(np.abs(m - np.swapaxes(m, -1, -2)))
    if asym > tol:
        raise ValueError(f"{name} must be symmetric, got max |{name} - {name}^T| = {asym:.3g}")
    lmin = np.min(np.linalg.eigvalsh(m))
    if lmin < -tol:
        raise ValueError(f"{name} must be positive semi-definite, got smallest eigenvalue {lmin:.6g}")
