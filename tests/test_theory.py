"""Closed forms of `byoldyn.theory` against polynomial roots, autodiff, runs and the Lemma 1 field."""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import byoldyn as bd  # noqa: E402
from byoldyn import theory as th  # noqa: E402
from byoldyn.flows.modes import ModePST, ModeState, cubic_field, mode_field, pst_field, solve_modes  # noqa: E402
from byoldyn.flows.symmetric import SymState  # noqa: E402

KAPPA = 1.5
TOL = dict(rtol=1e-10, atol=1e-12)


def test_p_star_and_eta_c():
    """p*_± are the roots of Eq. 16's cubic; they merge at η_c = τ²/(4κ); Obs#4 and App. B.2 monotonicity."""
    tau, kappa = np.array([0.3, 0.7, 1.0]), np.array([1.0, 1.5, 2.5])
    eta = 0.8 * np.asarray(th.eta_c(tau, kappa))
    pm, pp = (np.asarray(a) for a in th.p_star(tau, kappa, eta))
    for i in range(3):
        roots = np.sort(np.roots([kappa[i], -tau[i], eta[i]]).real)  # p(τ − κp) − η = 0
        assert np.max(np.abs(roots - [pm[i], pp[i]])) <= 1e-12
        hp = bd.Hyper(eta=eta[i])
        p = np.linspace(-1, 2, 7)
        cubic = -kappa[i] * p * (p - pm[i]) * (p - pp[i])
        assert np.max(np.abs(np.asarray(cubic_field(p, hp, kappa[i], tau[i])) - cubic)) <= 1e-12
    # the paper's numbers (section 7.4): σ² = 0.5, τ = 1, η = 0.01
    pm1, pp1 = (float(a) for a in th.p_star(1.0, 1.5, 0.01))
    assert abs(pp1 - 0.6565) < 5e-5 and abs(pm1 - 0.0102) < 5e-5
    assert abs(float(th.eta_c(1.0, 1.5)) - 1 / 6) <= 1e-15
    m, p = th.p_star(1.0, 1.5, th.eta_c(1.0, 1.5))
    assert abs(float(m) - 1 / 3) <= 1e-7 and abs(float(p) - 1 / 3) <= 1e-7  # saddle-node: both at τ/(2κ)
    assert np.all(np.isnan(np.asarray(th.p_star(1.0, 1.5, 0.17))))
    assert np.asarray(th.p_star(1.0, 1.5, 0.0)).tolist() == [0.0, 2 / 3]
    etas = np.linspace(0.0, 0.16, 9)
    assert np.all(np.diff(np.asarray(th.p_star(1.0, 1.5, etas)[0])) > 0)  # Obs#4: collapse basin grows with η
    taus = np.linspace(0.5, 1.0, 6)
    assert np.all(np.diff(np.asarray(th.p_star(taus, 1.5, 0.04)[0])) < 0)  # App. B.2 / Obs#10: shrinks with τ


def test_jacobian_and_stability_classes():
    """Closed-form Jacobian = jacfwd of Eqs. 11-12; classes and eigenvalues of section 7.4."""
    hp = bd.Hyper(alpha_p=1.3, eta=0.07, beta=0.0, eta_p=0.04)
    ps = np.random.default_rng(1).uniform(-1, 2, (8, 2))
    f = lambda x: jnp.stack(pst_field(ModePST(x[0], x[1], jnp.asarray(0.8)), hp, KAPPA, False)[:2])
    J_ad = jax.jit(jax.vmap(jax.jacfwd(f)))(jnp.asarray(ps))
    J = th.jacobian_ps(ps[:, 0], ps[:, 1], 0.8, KAPPA, 1.3, 0.07, eta_p=0.04)
    assert np.max(np.abs(np.asarray(J) - np.asarray(J_ad))) <= 1e-12

    p, s, code = (np.asarray(a) for a in th.fixed_points_ps(1.0, 1.5, 1.0, 0.01))
    assert code.tolist() == [th.STABLE_NODE, th.SADDLE, th.STABLE_NODE]
    ev = [np.sort(np.linalg.eigvals(np.asarray(th.jacobian_ps(p[i], s[i], 1.0, 1.5, 1.0, 0.01))).real) for i in range(3)]
    assert np.max(np.abs(ev[0] - [-0.02, -0.01])) <= 1e-15  # {−2η, −η}
    assert np.max(np.abs(ev[1] - [-0.02, 0.0098])) <= 1e-4  # spec: {−0.02, +0.0098}
    assert np.max(np.abs(ev[2] - [-0.6365, -0.02])) <= 1e-4  # spec: {−0.64, −0.02}
    for i in (1, 2):  # trace = −κp*² − η, det = −2ηp*(τ − 2κp*)
        assert abs(ev[i].sum() - (-1.5 * p[i] ** 2 - 0.01)) <= 1e-14
        assert abs(ev[i].prod() - (-0.02 * p[i] * (1 - 3 * p[i]))) <= 1e-14
    assert np.asarray(th.fixed_points_ps(1.0, 1.5, 1.0, 0.2)[2]).tolist() == [th.STABLE_NODE, th.NO_POINT, th.NO_POINT]
    assert np.asarray(th.fixed_points_ps(1.0, 1.5, 1.0, 1 / 6)[2]).tolist()[1:] == [th.NON_HYPERBOLIC] * 2
    # η = 0: the collapsed branch (p, 0) has transverse eigenvalue 2p(τ − κp) (section 7.3)
    Jc = np.asarray(th.jacobian_ps(np.array([-0.3, 0.3, 0.9]), 0.0, 1.0, 1.5, 1.0, 0.0))
    assert np.allclose(Jc[:, 1, 1], 2 * np.array([-0.3, 0.3, 0.9]) * (1 - 1.5 * np.array([-0.3, 0.3, 0.9])))
    assert np.all(np.asarray(th.classify(Jc)) == th.NON_HYPERBOLIC)  # lines of fixed points
    synthetic = np.array([[[-1, 0], [0, -2]], [[-1, 3], [-3, -1]], [[1, 0], [0, 2]], [[1, 3], [-3, 1]],
                          [[1, 0], [0, -1]], [[0, 1], [-1, 0]]], float)
    assert np.asarray(th.classify(synthetic)).tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.slow
def test_parabola_and_c_sign_along_runs():
    """Eq. 14 with the corrected sign: c(t) = s − p²/α_p = c(0) e^{−2ηt} along Eqs. 11-13; η = 0: c > 0 survives."""
    hp = bd.Hyper(alpha_p=1.3, eta=0.05, beta=0.7)
    p0, s0 = np.array([0.1, 0.4, 0.9, 0.02]), np.array([0.05, 0.2, 0.6, 0.3])
    c0 = np.asarray(th.parabola_c(p0, s0, 1.3))
    assert np.array_equal(c0 > 0, s0 > p0**2 / 1.3)  # above the dashed parabola <=> c > 0
    sol = solve_modes(pst_field, ModePST(jnp.asarray(p0), jnp.asarray(s0), jnp.zeros(4)), 20.0, args=(hp, KAPPA, True), **TOL)
    ts = np.asarray(sol.ts)[:, None]
    c = np.asarray(th.parabola_c(sol.states.p, sol.states.s, 1.3))
    assert np.max(np.abs(c - c0[None, :] * np.exp(-0.1 * ts))) <= 1e-9
    s_eq14 = np.asarray(th.parabola(sol.states.p, 1.3, c0[None, :], 0.05, ts))
    assert np.max(np.abs(s_eq14 - np.asarray(sol.states.s))) <= 1e-9

    # η = 0, τ = 1: every start above the parabola (c > 0), even with p(0) <= 0, reaches p = τ/κ with s(∞) from section 7.3
    hp0, tau = bd.Hyper(alpha_p=0.8, eta=0.0, beta=1.0), 1.0
    p0, s0 = np.array([-0.5, 0.0, 0.2, 1.5]), np.array([0.4, 0.05, 0.1, 3.0])
    assert np.all(np.asarray(th.parabola_c(p0, s0, 0.8)) > 0)
    y = solve_modes(mode_field, ModeState.from_pst(p0, s0, tau), 300.0, args=(hp0, KAPPA, tau), **TOL)
    end = jax.tree.map(lambda a: np.asarray(a)[-1], y.states)
    assert np.max(np.abs(end.p - tau / KAPPA)) <= 1e-6
    assert np.max(np.abs(end.s - np.asarray(th.final_s_eta0(p0, s0, tau, KAPPA, 0.8)))) <= 1e-6
    c_all = np.asarray(th.parabola_c(y.states.p, y.states.s, 0.8))
    assert np.max(np.abs(c_all - c_all[0])) <= 1e-8  # conserved at η = 0
    # a start below the parabola with p < 0 lands on the attracting part of the collapsed branch (s -> 0)
    y = solve_modes(mode_field, ModeState.from_pst(np.full(4, -0.5), np.array([0.01, 0.05, 0.1, 0.2]), tau), 300.0,
                    args=(hp0, KAPPA, tau), **TOL)
    assert np.max(np.asarray(y.states.s)[-1]) <= 1e-6


def test_K_and_eq17_margin():
    """Aligned states: K has the per-mode eigenvalues K_j = Eq. 17 margin; λ_min(K) = min_j margin."""
    rng = np.random.default_rng(2)
    U, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    p, s = np.array([0.23, 0.25, 1.0, -0.3, 0.5]), np.array([0.0, 0.01, 0.5, 0.2, 1.0])
    tau, hp = 0.7, bd.Hyper(alpha_p=1.4, eta=0.03, beta=0.5)
    state = SymState(jnp.asarray(U @ np.diag(p) @ U.T), jnp.asarray(U @ np.diag(s) @ U.T), jnp.asarray(tau))
    K = np.asarray(th.K(state, hp, KAPPA))
    margin = np.asarray(th.margin_17(p, s, tau, KAPPA, 1.4, 0.03))
    assert np.max(np.abs(U.T @ K @ U - np.diag(margin))) <= 1e-12
    assert abs(float(th.lambda_min_K(state, hp, KAPPA)) - margin.min()) <= 1e-12
    per_mode = KAPPA * 1.4 * s / 2 + KAPPA * p**2 - tau * p + 1.5 * 0.03  # K_j of section 7.5
    assert np.max(np.abs(margin - per_mode)) <= 1e-12
    delta = np.asarray(th.delta(p, tau, KAPPA, 0.03))
    assert np.array_equal(margin > 0, delta < 0.5 * (1.4 * KAPPA * s + 0.03))  # Eq. 17
    assert (margin > 0).any() and (margin < 0).any()  # both sides occur in this sample


def _commuting(rng, n1):
    Q, _ = np.linalg.qr(rng.standard_normal((n1, n1)))
    lam_s = rng.uniform(1.0, 3.0, n1)
    lam_d = lam_s * rng.uniform(0.1, 0.95, n1)  # Σ^s − Σ^d = X' is PSD
    return Q @ np.diag(lam_s) @ Q.T, Q @ np.diag(lam_d) @ Q.T, lam_d / lam_s


@pytest.mark.slow
@pytest.mark.parametrize("ema", [True, False], ids=["byol", "simsiam"])
def test_appendix_d_fixed_points_zero_lemma1_field(ema):
    """Random commuting non-isotropic Σ^s, Σ^d: the Eq. 103 fixed points zero the Lemma 1 field at η = 0."""
    rng = np.random.default_rng(4)
    n1, n2 = 6, 3
    Ss, Sd, ratio = _commuting(rng, n1)
    data = bd.Data(Sd, Ss - Sd)  # X = Σ^d, X + X' = Σ^s
    hp = bd.Hyper(alpha_p=1.7, eta=0.0, beta=0.8)
    for mix in (None, rng.standard_normal((n2, n2))):
        fp = th.appendix_d_fixed_point(Ss, Sd, n2, mix=mix)
        d = bd.vector_field(fp, hp, data, ema=ema)
        scale = max(float(np.max(np.abs(np.asarray(a)))) for a in (fp.W, fp.Wp))
        assert max(float(np.max(np.abs(np.asarray(a)))) for a in (d.W, d.Wp, d.Wa)) <= 1e-12 * max(scale, 1) ** 3
        assert float(th.appendix_d_residual(fp, Ss, Sd)) <= 1e-12 * max(scale, 1) ** 2
        assert float(np.linalg.norm(np.asarray(fp.W))) > 0.1
        ev = np.sort(np.linalg.eigvals(np.asarray(fp.Wp)).real)[::-1]
        assert np.max(np.abs(ev - np.sort(ratio)[::-1][:n2])) <= 1e-10  # leading eigenvalues of Σ^d (Σ^s)⁻¹
    bumped = bd.State(fp.W + 0.05, fp.Wp, fp.Wa)
    assert float(np.max(np.abs(np.asarray(bd.vector_field(bumped, hp, data, ema=ema).W)))) > 1e-3


def test_appendix_d_general_and_scalar_forms():
    """Eq. 103 also holds for non-commuting Σ^s, Σ^d; the scalar App. D.4 fixed point w_p = λ_d/λ_s zeros `mode_field`."""
    rng = np.random.default_rng(5)
    n1 = 5
    A, B = rng.standard_normal((n1, n1)), rng.standard_normal((n1, n1))
    Sd = A @ A.T / n1 + 0.1 * np.eye(n1)
    Ss = Sd + B @ B.T / n1 + 0.1 * np.eye(n1)
    fp = th.appendix_d_fixed_point(Ss, Sd, 4)
    d = bd.vector_field(fp, bd.Hyper(alpha_p=1.0, eta=0.0, beta=1.0), bd.Data(Sd, Ss - Sd))
    assert max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree.leaves(d)) <= 1e-11
    lam_s, lam_d = np.array([1.0, 2.0, 1.5]), np.array([0.5, 0.4, 1.5])
    w = np.array([0.7, -1.2, 0.3])
    y = ModeState(jnp.asarray(w), jnp.asarray(lam_d / lam_s), jnp.asarray(w))
    dy = mode_field(y, bd.Hyper(alpha_p=1.0, eta=0.0, beta=1.0), lam_s, None, lam_d)
    assert max(float(np.max(np.abs(np.asarray(a)))) for a in dy) <= 1e-15


def test_validation():
    with pytest.raises(ValueError, match="kappa must be > 0"):
        th.p_star(1.0, 0.0, 0.1)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        th.p_star(1.0, 1.5, -0.1)
    with pytest.raises(ValueError, match="alpha_p must be > 0"):
        th.parabola(0.5, -1.0)
    with pytest.raises(ValueError, match="n2 must be an integer"):
        th.appendix_d_fixed_point(np.eye(3), 0.5 * np.eye(3), 4)
    with pytest.raises(ValueError, match="positive definite"):
        th.appendix_d_fixed_point(np.diag([1.0, 0.0, 1.0]), 0.5 * np.eye(3), 2)
    with pytest.raises(ValueError, match="J must have shape"):
        th.classify(np.eye(3))
