"""Validation of the model objects: every bad input is a ValueError that names the parameter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import byoldyn as bd
from conftest import random_psd


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
    with pytest.raises(ValueError, match=r"X must have shape \(\.\.\., n1, n1\), got \(3, 2\)"):
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
        bd.Data(X, X).kappa


def test_data_isotropic_is_scalar():
    d = bd.Data.isotropic(5, 0.25)
    assert d.X.shape == () and d.Xp.shape == () and d.n1 == 5
    assert float(d.kappa) == 1.25
    X, Xp = d.matrices()
    np.testing.assert_array_equal(X, np.eye(5))
    np.testing.assert_array_equal(Xp, 0.25 * np.eye(5))


def test_state_rejects():
    with pytest.raises(ValueError, match=r"W must have shape \(\.\.\., n2, n1\), got \(3,\)"):
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


def test_state_random_statistics():
    s = bd.State.random(jax.random.PRNGKey(1), 400, 300, scale=0.5)
    # entries ~ N(0, scale^2 / fan_in): the sample variance matches to a few percent
    assert abs(float(jnp.var(s.W)) * 400 / 0.25 - 1) < 0.02
    assert abs(float(jnp.var(s.Wp)) * 300 / 0.25 - 1) < 0.02
    assert float(jnp.max(jnp.abs(s.Wa))) == 0.0
    c = bd.State.random(jax.random.PRNGKey(1), 4, 3, target="copy")
    np.testing.assert_array_equal(c.Wa, c.W)
