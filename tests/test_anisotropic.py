"""Anisotropic modes (docs/anisotropic_modes.md): X = diag(x), X' = diag(x') give each data direction its own κ_j
and rate; the mode theory's fixed points and surviving modes against Lemma 1 (Eqs. 2-4) at the matrix level."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import byoldyn as bd
from byoldyn import theory
from byoldyn.figures.anisotropic import spectra
from byoldyn.flows.modes import ModeState, mode_field, solve_modes


def test_diagonal_data_and_its_mode_moments():
    d = bd.Data.diagonal([1.0, 0.5], [0.3, 0.1])
    np.testing.assert_array_equal(d.X, np.diag([1.0, 0.5]))
    ls, ld = d.mode_moments()
    np.testing.assert_allclose(ls, [1.3, 0.6], rtol=1e-15)
    np.testing.assert_array_equal(ld, [1.0, 0.5])
    with pytest.raises(ValueError, match="x must be > 0"):
        bd.Data.diagonal([1.0, 0.0], [0.1, 0.1])
    with pytest.raises(ValueError, match="two vectors of one length"):
        bd.Data.diagonal([1.0, 0.5], [0.1])
    with pytest.raises(ValueError, match="diagonal X and X'"):
        bd.Data(np.array([[1.0, 0.1], [0.1, 1.0]]), np.eye(2)).mode_moments()
    with pytest.raises(ValueError, match="lambda_d is read from the Data"):
        mode_field(ModeState.from_pst(0.5, 0.2, 1.0), bd.Hyper(), d, lambda_d=2.0)


def test_mode_field_is_lemma1_on_decoupled_states(rng):
    """Eqs. 2-4 with diagonal X, X' and diagonal (W, Wp, Wa) stay diagonal, and their diagonal is `mode_field`."""
    x, xp = rng.uniform(0.1, 2.0, 5), rng.uniform(0.0, 1.0, 5)
    w, wp, wa = rng.standard_normal((3, 5))
    hyper, data = bd.Hyper(alpha_p=1.7, eta=0.03, beta=0.4), bd.Data.diagonal(x, xp)
    d = bd.vector_field(bd.State(jnp.diag(w), jnp.diag(wp), jnp.diag(wa)), hyper, data)
    m = mode_field(ModeState(jnp.asarray(w), jnp.asarray(wp), jnp.asarray(wa)), hyper, data)
    for full, mode in ((d.W, m.w), (d.Wp, m.w_p), (d.Wa, m.w_a)):
        np.testing.assert_allclose(np.diag(full), mode, rtol=1e-14, atol=1e-15)
        np.testing.assert_array_equal(full - np.diag(np.diag(full)), 0.0)


def test_closed_forms_reduce_to_the_isotropic_ones_and_solve_the_quadratic():
    iso, diag = bd.Data.isotropic(4, 0.5), bd.Data.diagonal(np.ones(4), np.full(4, 0.5))
    np.testing.assert_allclose(theory.eta_c(0.8, diag), theory.eta_c(0.8, iso), rtol=1e-15)
    for a, b in zip(theory.p_star(0.8, diag, 0.05), theory.p_star(0.8, iso, 0.05)):
        np.testing.assert_allclose(a, b, rtol=1e-14)
    x, xp, tau, eta = np.array([2.0, 0.7, 0.3]), np.array([0.4, 0.9, 0.2]), 0.9, 0.01
    pm, pp = (np.asarray(v) for v in theory.p_star(tau, bd.Data.diagonal(x, xp), eta))
    for p in (pm, pp):  # the fixed points of ṗ = p² (τ x − λ_s p) − η p on the parabola (A3)
        np.testing.assert_allclose((x + xp) * p**2 - tau * x * p + eta, 0.0, atol=1e-15)
    np.testing.assert_allclose(theory.eta_c(tau, bd.Data.diagonal(x, xp)), tau**2 * x**2 / (4 * (x + xp)), rtol=1e-15)


def test_spectrum_slope_is_the_derivative_of_the_fixed_points():
    """A5 against central differences of log p*_+ and log s*_+ (s = (x + x') p²/α_p) along x at fixed x'."""
    xp, tau = 0.5, 1.0
    x = np.exp(np.linspace(np.log(0.8), np.log(5.0), 7))
    for eta in (0.0, 0.02):
        def logs(xx):
            p = np.asarray(theory.p_star(tau, bd.Data.diagonal(xx, np.full_like(xx, xp)), eta)[1])
            return np.log(p), np.log((xx + xp) * p * p)
        h = 1e-5
        (lp1, ls1), (lp0, ls0) = logs(x * np.exp(h)), logs(x * np.exp(-h))
        slope = np.asarray(theory.spectrum_slope(tau, bd.Data.diagonal(x, np.full_like(x, xp)), eta))
        np.testing.assert_allclose(slope, (lp1 - lp0) / (ls1 - ls0), rtol=1e-7)
    np.testing.assert_allclose(theory.spectrum_slope(tau, bd.Data.diagonal(x, np.full_like(x, xp)), 0.0),
                               xp / (x + 2 * xp), rtol=1e-14)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 100.0), st.floats(0.01, 100.0), st.floats(0.0, 1.0), st.floats(0.2, 1.0))
def test_spectrum_slope_lies_in_zero_one_half_for_every_surviving_mode(x, xp, eta_frac, tau):
    data = bd.Data.diagonal([x], [xp])
    eta = 0.999 * eta_frac * float(theory.eta_c(tau, data)[0])
    a = float(theory.spectrum_slope(tau, data, eta)[0])
    assert 0.0 < a < 0.5


@pytest.mark.slow
def test_each_mode_is_an_isotropic_mode_in_its_own_time():
    """A2: mode j with (x_j, x'_j) is the isotropic mode with κ_j = (x_j + x'_j)/x_j, η/x_j and β/x_j at time x_j t."""
    x, xp = np.array([1.6, 0.5, 0.2]), np.array([0.3, 0.6, 0.1])
    hyper, t1 = bd.Hyper(alpha_p=2.0, eta=0.01, beta=0.3), 40.0
    y0 = ModeState.from_pst(jnp.array([0.4, 0.3, 0.5]), jnp.array([0.2, 0.1, 0.3]), jnp.array([0.2, 0.2, 0.2]))
    sol = solve_modes(mode_field, y0, t1, args=(hyper, bd.Data.diagonal(x, xp)), ts=[t1], rtol=1e-11, atol=1e-13)
    for j in range(3):
        hj = bd.Hyper(alpha_p=2.0, eta=0.01 / x[j], beta=0.3 / x[j])
        yj = ModeState(*(a[j] for a in y0))
        iso = solve_modes(mode_field, yj, x[j] * t1, args=(hj, (x[j] + xp[j]) / x[j]), ts=[x[j] * t1],
                          rtol=1e-11, atol=1e-13)
        for a, b in zip(sol.states, iso.states):
            np.testing.assert_allclose(a[-1, j], b[-1], rtol=1e-8, atol=1e-11)


@pytest.mark.slow
def test_theorem1_invariant_per_mode():
    """A4: g_j − p_j²/α_p = e^{−2ηt} c_j along the anisotropic mode flow (g = w², the Gram's eigenvalue)."""
    data, hyper = bd.Data.diagonal([1.5, 0.4], [0.5, 0.2]), bd.Hyper(alpha_p=1.5, eta=0.02, beta=0.5)
    y0 = ModeState.from_pst(jnp.array([0.3, 0.9]), jnp.array([0.5, 0.1]), jnp.array([0.0, 0.0]))
    ts = jnp.linspace(0.0, 50.0, 6)
    sol = solve_modes(mode_field, y0, 50.0, args=(hyper, data), ts=ts, rtol=1e-11, atol=1e-13)
    c0 = np.asarray(y0.s - y0.p**2 / 1.5)
    got = np.asarray(sol.states.s - sol.states.p**2 / 1.5)
    np.testing.assert_allclose(got, np.exp(-0.04 * np.asarray(ts))[:, None] * c0, rtol=1e-8, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("start", ["decoupled", "random"])
def test_lemma1_ends_at_the_mode_theory_fixed_points(seed, start):
    """Acceptance: BYOL (Eqs. 2-4, EMA) with diagonal X, X' on random spectra ends where the mode theory says:
    the data directions with η < η_c(j) survive at p*_+(j), the others die; WᵀW (the Gram in the data basis,
    invariant under rotations of the output space) is diag(p²/α_p) and Wp's spectrum is {p_j}, to ≤ 1e-6
    (the solve's tolerance is 1e-11; the slowest decay, rate η = 0.02 over t = 3000, leaves e^{-60}).
    Control: one κ for every mode (the spectrum's mean x and x', the isotropic theory) predicts a different set."""
    eta, alpha_p = 0.02, 1.0
    x, xp = spectra(seed, eta=eta)
    data, n = bd.Data.diagonal(x, xp), len(x)
    alive = eta < np.asarray(theory.eta_c(1.0, data))
    p_end = np.where(alive, np.asarray(theory.p_star(1.0, data, eta)[1]), 0.0)
    r = np.random.default_rng(100 + seed)
    if start == "decoupled":  # aligned with the data up to 1e-3, p(0) = 1 on the parabola
        W0, Wp0 = np.eye(n) + 1e-3 * r.standard_normal((n, n)), np.eye(n) + 1e-3 * r.standard_normal((n, n))
    else:  # a generic start: Gaussian W at unit scale, Gaussian Wp at scale 0.3
        W0, Wp0 = r.standard_normal((n, n)), 0.3 * r.standard_normal((n, n))
    s0 = bd.State(jnp.asarray(W0), jnp.asarray(Wp0), jnp.asarray(W0))
    sol = bd.simulate(s0, bd.Hyper(alpha_p=alpha_p, eta=eta, beta=0.5), data, 3000.0, ts=jnp.array([0.0, 3000.0]),
                      rtol=1e-11, atol=1e-13, max_steps=400_000)
    assert sol.status_names() == "succeeded"
    W, Wp = np.asarray(sol.states.W[-1]), np.asarray(sol.states.Wp[-1])
    G = W.T @ W
    np.testing.assert_allclose(np.diag(G), p_end**2 / alpha_p, atol=1e-6)
    assert np.abs(G - np.diag(np.diag(G))).max() < 1e-6
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(Wp).real), np.sort(p_end), atol=1e-6)
    assert np.array_equal(np.diag(G) > 1e-6, alive)
    iso = bd.Data.isotropic(n, float(np.mean(xp)), x=float(np.mean(x)))
    alive_iso = eta < float(theory.eta_c(1.0, bd.Data.diagonal([float(iso.X)], [float(iso.Xp)]))[0])
    assert not np.array_equal(np.full(n, alive_iso), alive)  # the control disagrees
