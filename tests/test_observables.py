"""Observables (THEORY.md section 14) against closed forms, batched over leading axes."""

import jax
import numpy as np
import pytest
from conftest import random_psd

import byoldyn as bd
from byoldyn import observables as ob


def _orthogonal(rng, n):
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return Q


def test_F_general_and_isotropic(rng):
    W = rng.standard_normal((3, 4))
    X = random_psd(rng, 4)
    np.testing.assert_allclose(ob.F(W, bd.Data(X, X)), W @ X @ W.T, rtol=1e-13)
    np.testing.assert_allclose(ob.F(W, bd.Data.isotropic(4, 0.3)), W @ W.T, rtol=1e-13)
    np.testing.assert_allclose(ob.F(W), W @ W.T, rtol=1e-13)


def test_alignment_commuting_and_rotated(rng):
    U = _orthogonal(rng, 4)
    s = np.array([4.0, 3.0, 2.0, 1.0])
    F_ = U @ np.diag(s) @ U.T
    Wp = U @ np.diag([0.5, -0.2, 1.5, 0.7]) @ U.T  # commutes with F: cos = sign of the eigenvalue
    sF, cos = ob.eigen_alignment(F_, Wp)
    np.testing.assert_allclose(sF, s, rtol=1e-13)
    np.testing.assert_allclose(cos, [1, -1, 1, 1], atol=1e-12)
    assert float(ob.commutator(F_, Wp)) < 1e-12
    # Wp a rotation by angle theta in the plane of u1, u2: cos = cos(theta) for both
    th = 0.3
    R = np.eye(4)
    R[:2, :2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    Wp = U @ R @ U.T
    _, cos = ob.eigen_alignment(F_, Wp)
    np.testing.assert_allclose(cos, [np.cos(th), np.cos(th), 1, 1], atol=1e-12)
    C = F_ @ Wp - Wp @ F_
    assert float(ob.commutator(F_, Wp)) == pytest.approx(np.linalg.norm(C), rel=1e-12)
    assert float(ob.commutator_normalized(F_, Wp)) == pytest.approx(
        np.linalg.norm(C) / (np.linalg.norm(F_) * np.linalg.norm(Wp)), rel=1e-12)


def test_asymmetry_spectra_tau(rng):
    A = rng.standard_normal((4, 4))
    S, K = A + A.T, A - A.T
    assert float(ob.asymmetry(S)) == 0.0
    assert float(ob.asymmetry(K)) == pytest.approx(2.0, rel=1e-12)  # ‖K − Kᵀ‖ = 2‖K‖
    np.testing.assert_allclose(ob.spectrum_Wp(S + K), np.sort(np.linalg.eigvalsh(S))[::-1], rtol=1e-12)
    np.testing.assert_allclose(ob.spectrum_F(S), np.sort(np.linalg.eigvalsh(S))[::-1], rtol=1e-12)
    W = rng.standard_normal((3, 5))
    E = rng.standard_normal((3, 5))
    E -= np.sum(E * W) / np.sum(W * W) * W  # orthogonal to W
    assert float(ob.tau_hat(W, 0.7 * W + E)) == pytest.approx(0.7, rel=1e-12)
    assert float(ob.wa_correlation(W, -2 * W)) == pytest.approx(-1.0, rel=1e-12)
    assert float(ob.tau_hat(np.zeros((3, 5)), W)) == 0.0  # collapse: defined as 0, never NaN


@pytest.mark.slow
def test_collapse_indicators():
    F_ = np.diag([3.0, 2.0, 1e-5, 0.0])
    assert int(ob.n_modes(F_)) == 2 and int(ob.n_modes(F_, threshold=1e-6)) == 3
    assert float(ob.effective_rank(np.eye(5))) == pytest.approx(5.0, rel=1e-12)
    p = np.array([0.5, 0.25, 0.25])
    assert float(ob.effective_rank(np.diag(2 * p))) == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-12)
    assert float(ob.effective_rank(np.zeros((3, 3)))) == 0.0
    assert float(ob.norm_W(np.full((2, 2), 0.5))) == pytest.approx(1.0)


def test_theorem1_residual_definition(rng):
    s = bd.State(rng.standard_normal((3, 4)), rng.standard_normal((3, 3)))
    h = bd.Hyper(alpha_p=2.0, eta=0.1)
    C = ob.theorem1_C(s, h)
    W, Wp = np.asarray(s.W), np.asarray(s.Wp)
    np.testing.assert_allclose(C, W @ W.T - Wp.T @ Wp / 2.0, rtol=1e-13)
    assert float(ob.theorem1_residual(s, h, 0.0, C)) == 0.0
    r = float(ob.theorem1_residual(s, h, 1.0, C))
    assert r == pytest.approx((1 - np.exp(-0.2)) * np.linalg.norm(C), rel=1e-12)
    assert float(ob.theorem1_residual(s, h, 1.0, C, relative=True)) == pytest.approx(r / np.linalg.norm(W @ W.T))


@pytest.mark.slow
def test_observables_broadcast_over_batch_axes(rng):
    Ws = rng.standard_normal((7, 2, 3, 4))
    Wps = rng.standard_normal((7, 2, 3, 3))
    F_ = ob.F(Ws)
    assert ob.commutator(F_, Wps).shape == (7, 2)
    s, cos = ob.eigen_alignment(F_, Wps)
    assert s.shape == cos.shape == (7, 2, 3)
    _, c1 = ob.eigen_alignment(F_[4, 1], Wps[4, 1])
    np.testing.assert_allclose(cos[4, 1], c1, rtol=1e-12)
    assert ob.effective_rank(F_).shape == (7, 2)


@pytest.mark.slow
def test_standard_observer_along_simulation():
    data = bd.Data.isotropic(4, 0.2)
    s0 = bd.State.random(jax.random.PRNGKey(0), 4, 4, scale=0.5)
    h = bd.Hyper(alpha_p=1.0, eta=0.01, beta=0.5)
    sol = bd.simulate(s0, h, data, 20.0, ts=np.linspace(0, 20, 5), observe=ob.standard(h, data, s0), rtol=1e-9,
                      atol=1e-12)
    o = {k: np.asarray(v) for k, v in sol.observed.items()}
    assert o["s"].shape == o["alignment"].shape == o["p"].shape == (5, 4)
    assert np.max(o["theorem1_residual"]) < 1e-7
    assert o["norm_W"][0] == pytest.approx(float(ob.norm_W(s0.W)), rel=1e-12)
    assert o["tau_hat"][0] == 0.0  # Wa(0) = 0
