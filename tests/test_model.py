"""Validation of the model objects: every bad input is a ValueError that names the parameter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_psd

import byoldyn as bd


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha_p=0.0), r"alpha_p must be > 0, got 0\.0"),
        (dict(alpha_p=-1.0), r"alpha_p must be > 0, got -1\.0"),
        (dict(eta=-0.1), r"eta must be >= 0, got -0\.1"),
        (dict(beta=-2.0), r"beta must be >= 0, got -2\.0"),
        (dict(eta_p=-1e-3), r"eta_p must be >= 0, got -0\.001"),
        (dict(eta=float("nan")), r"eta must be finite"),
        (dict(alpha_p=float("inf")), r"alpha_p must be finite"),
        (dict(beta="fast"), r"beta must be numeric"),
        (dict(alpha_p=1j), r"alpha_p must be real"),
        (dict(eta=np.array([0.1, -0.2])), r"eta must be >= 0, got -0\.2"),
        (dict(eta=True), r"^eta must be numeric, got True$"),
        (dict(beta=None), r"^beta must be numeric, got None$"),
        (dict(alpha_p="1"), r"^alpha_p must be numeric, got '1'$"),
        (dict(eta=[0.1, "a"]), r"^eta must be numeric, got \[0\.1, 'a'\]$"),
        (dict(eta=[[0.1], [0.1, 0.2]]), r"^eta must be numeric, got \[\[0\.1\], \[0\.1, 0\.2\]\]$"),
        (dict(eta_p={"a": 1}), r"^eta_p must be numeric, got \{'a': 1\}$"),
    ],
)
def test_hyper_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bd.Hyper(**kwargs)


def test_hyper_defaults_and_batches():
    h = bd.Hyper(alpha_p=2.0, eta=0.1)
    assert float(h.eta_p) == 0.1 and float(h.beta) == 1.0
    hb = bd.Hyper(alpha_p=np.linspace(0.5, 2, 5), eta=np.zeros(5), beta=np.ones(5))
    assert hb.alpha_p.shape == (5,)


def test_data_rejects(rng):
    X = random_psd(rng, 3)
    with pytest.raises(ValueError, match=r"X must have shape \(\.\.\., n1, n1\) with n1 >= 1, got \(3, 2\)"):
        bd.Data(np.ones((3, 2)), X)
    with pytest.raises(ValueError, match=r"Xp must have the shape of X \(3, 3\), got \(4, 4\)"):
        bd.Data(X, np.eye(4))
    A = np.triu(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"X must be symmetric, got max \|X - X\^T\| = 1"):
        bd.Data(A, X)
    with pytest.raises(ValueError, match=r"Xp must be positive semi-definite, got smallest eigenvalue -1"):
        bd.Data(X, np.diag([1.0, -1.0, 2.0]))
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"X must be finite"):
        bd.Data(Xn, X)
    with pytest.raises(ValueError, match=r"sigma2 must be >= 0, got -0\.5"):
        bd.Data.isotropic(4, -0.5)
    with pytest.raises(ValueError, match=r"n1 must be a positive integer, got 0"):
        bd.Data.isotropic(0, 0.1)
    with pytest.raises(ValueError, match=r"kappa is defined for isotropic data only"):
        _ = bd.Data(X, X).kappa


def test_data_isotropic_is_scalar():
    d = bd.Data.isotropic(5, 0.25)
    assert d.X.shape == () and d.Xp.shape == () and d.n1 == 5
    assert float(d.kappa) == 1.25
    X, Xp = d.matrices()
    np.testing.assert_array_equal(X, np.eye(5))
    np.testing.assert_array_equal(Xp, 0.25 * np.eye(5))


def test_state_rejects():
    with pytest.raises(ValueError, match=r"W must have shape \(\.\.\., n2, n1\) with n1, n2 >= 1, got \(3,\)"):
        bd.State(np.ones(3), np.eye(3))
    with pytest.raises(ValueError, match=r"Wp must have shape \(\.\.\., 2, 2\) to match W \(2, 3\), got \(3, 3\)"):
        bd.State(np.ones((2, 3)), np.eye(3))
    with pytest.raises(ValueError, match=r"Wa must have the shape of W \(2, 3\), got \(3, 2\)"):
        bd.State(np.ones((2, 3)), np.eye(2), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"Wp must be finite"):
        bd.State(np.ones((2, 3)), np.full((2, 2), np.inf))
    with pytest.raises(ValueError, match=r"n2 must be a positive integer, got -1"):
        bd.State.random(jax.random.PRNGKey(0), 3, -1)
    with pytest.raises(ValueError, match=r"target must be 'zero' or 'copy', got 'ones'"):
        bd.State.random(jax.random.PRNGKey(0), 3, 3, target="ones")
    with pytest.raises(ValueError, match=r"scale must be >= 0, got -1\.0"):
        bd.State.random(jax.random.PRNGKey(0), 3, 3, scale=-1.0)


@pytest.mark.slow
def test_state_random_statistics():
    s = bd.State.random(jax.random.PRNGKey(1), 400, 300, scale=0.5)
    # entries ~ N(0, scale^2 / fan_in): the sample variance matches to a few percent
    assert abs(float(jnp.var(s.W)) * 400 / 0.25 - 1) < 0.02
    assert abs(float(jnp.var(s.Wp)) * 300 / 0.25 - 1) < 0.02
    assert float(jnp.max(jnp.abs(s.Wa))) == 0.0
    c = bd.State.random(jax.random.PRNGKey(1), 4, 3, target="copy")
    np.testing.assert_array_equal(c.Wa, c.W)


def test_float32_overflow_is_named():
    """alpha_p = 1e300 in float32 said "got inf"; now the value and the remedy."""
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match=r"^alpha_p is too large for float32, got 1e\+300 \(float32 holds "
                                             r"magnitudes up to 3\.4e\+38\); use float64: jax\.config\.update"
                                             r"\('jax_enable_x64', True\)"):
            bd.Hyper(alpha_p=1e300)
        with pytest.raises(ValueError, match=r"^eta is too large for float32, got 1e\+39"):
            bd.Hyper(eta=np.array([0.1, 1e39]))
        with pytest.raises(ValueError, match=r"^alpha_p is too small for float32, got 1e-50, which rounds to 0"):
            bd.Hyper(alpha_p=1e-50)
        with pytest.raises(ValueError, match=r"^W is too large for float32, got 1e\+40"):
            bd.State(np.full((2, 2), 1e40), np.eye(2))
        with pytest.raises(ValueError, match=r"^t1 is too large for float32, got 1e\+300"):
            bd.simulate(bd.State(np.ones((2, 2)), np.eye(2)), bd.Hyper(), bd.Data.isotropic(2), 1e300)
        with pytest.raises(ValueError, match=r"^dt is too large for float32, got 1e\+300"):
            bd.simulate(bd.State(np.ones((2, 2)), np.eye(2)), bd.Hyper(), bd.Data.isotropic(2), 1.0, dt=1e300)
        assert bd.Hyper(alpha_p=1e30).alpha_p.dtype == jnp.float32  # fits: accepted
    assert float(bd.Hyper(alpha_p=1e300).alpha_p) == 1e300  # float64 holds it


def test_state_random_rejects_non_keys():
    """State.random(0, ...) was a TypeError from inside jax.random."""
    for key in (0, None, "seed", np.zeros(2), jnp.zeros(2)):
        with pytest.raises(ValueError, match=r"^key must be a JAX PRNG key \(jax\.random\.PRNGKey\(seed\) or "
                                             r"jax\.random\.key\(seed\)\), got "):
            bd.State.random(key, 3, 3)
    with pytest.raises(ValueError, match=r"^dtype must be a floating dtype, got int32$"):
        bd.State.random(jax.random.PRNGKey(0), 3, 3, dtype=jnp.int32)
    with pytest.raises(ValueError, match=r"^dtype must be a floating dtype, got 'big'$"):
        bd.State.random(jax.random.PRNGKey(0), 3, 3, dtype="big")
    a = bd.State.random(jax.random.key(0), 3, 2)  # typed keys too
    b = bd.State.random(np.asarray(jax.random.PRNGKey(0)), 3, 2)  # raw uint32 as numpy
    assert a.W.shape == (2, 3) and b.W.shape == (2, 3)
