"""The per-mode system (Eqs. 11-13), its reductions on the parabola (Eqs. 14-16) and `solve_modes`."""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.integrate  # noqa: E402

import byoldyn as bd  # noqa: E402
from byoldyn import theory as th  # noqa: E402
from byoldyn.flows.modes import (  # noqa: E402
    ModePST,
    ModeState,
    ParabolaState,
    cubic_field,
    mode_field,
    parabola_field,
    pst_field,
    solve_modes,
)

KAPPA = 1.5  # sigma2 = 0.5
TOL = dict(rtol=1e-10, atol=1e-12)


def _eqs_11_13_numpy(t, y, alpha_p, eta, beta, kappa):
    """Eqs. 11-13 for a vector of modes, in plain numpy with Eq. 13 as printed (ṡ/(2s))."""
    p, s, tau = np.split(y, 3)
    dp = alpha_p * s * (tau - kappa * p) - eta * p
    ds = 2 * p * s * (tau - kappa * p) - 2 * eta * s
    dtau = beta * (1 - tau) - tau * ds / (2 * s)
    return np.concatenate([dp, ds, dtau])


@pytest.mark.slow
def test_scalar_equivalence_with_lemma1_and_scipy():
    """(p, s, τ) of Eqs. 11-13 = (w_p, w², w_a/w) of Lemma 1 with diagonal (decoupled) 4x4 matrices = scipy DOP853."""
    hp = bd.Hyper(alpha_p=1.3, eta=0.05, beta=0.7)
    data = bd.Data.isotropic(4, sigma2=KAPPA - 1.0)
    p0, s0 = np.array([0.1, 0.4, 0.9, 0.02]), np.array([0.05, 0.2, 0.6, 0.3])
    ts = np.linspace(0.0, 20.0, 101)
    w0 = np.sqrt(s0)
    # three decoupled 1x1 Lemma 1 systems at once: diagonal W, Wp, Wa stay diagonal with isotropic data
    sol = bd.simulate(bd.State(np.diag(w0), np.diag(p0), np.zeros((4, 4))), hp, data, 20.0, ts=ts, **TOL)
    assert int(sol.status) == bd.SUCCEEDED
    W, Wp, Wa = (np.diagonal(np.asarray(a), axis1=1, axis2=2) for a in (sol.states.W, sol.states.Wp, sol.states.Wa))
    ref_lemma1 = np.stack([Wp, W**2, Wa / W])
    assert np.max(np.abs(np.asarray(sol.states.W) - np.apply_along_axis(np.diag, 1, W))) == 0  # stayed diagonal

    ref = scipy.integrate.solve_ivp(_eqs_11_13_numpy, (0, 20), np.concatenate([p0, s0, 0 * p0]), method="DOP853",
                                    t_eval=ts, rtol=1e-12, atol=1e-14, args=(1.3, 0.05, 0.7, KAPPA))
    ref_scipy = ref.y.reshape(3, 4, -1).transpose(0, 2, 1)

    pst = solve_modes(pst_field, ModePST(jnp.asarray(p0), jnp.asarray(s0), jnp.zeros(4)), 20.0, ts=ts,
                      args=(hp, KAPPA, True), **TOL)
    ours_pst = np.stack([np.asarray(a) for a in pst.states])
    w = solve_modes(mode_field, ModeState.from_pst(p0, s0, 0.0), 20.0, ts=ts, args=(hp, KAPPA), **TOL)
    ours_w = np.stack([np.asarray(a) for a in (w.states.p, w.states.s, w.states.tau)])

    for ours in (ours_pst, ours_w, ref_lemma1):
        assert np.max(np.abs(ours - ref_scipy)) <= 1e-8
    assert np.max(np.abs(ref_scipy[2, -1] - 0.0)) > 0.5  # τ really evolved
    assert np.max(np.abs(ref_scipy[0, -1] - p0)) > 0.1  # p really moved


def _end(sol):
    assert int(sol.status) == bd.SUCCEEDED
    return jax.tree.map(lambda a: np.asarray(a)[-1], sol.states)


@pytest.mark.slow
def test_fixed_points_equal_long_run_endpoints():
    """Closed-form fixed points (Eq. 16, section 7.3) = end points of long runs, to <= 1e-6, all forms."""
    hp = bd.Hyper(alpha_p=2.0, eta=0.1, beta=1.0)
    pm1, pp1 = (float(x) for x in th.p_star(1.0, KAPPA, 0.1))  # tau -> 1 with EMA: p*_- = 0.1225
    p0, s0 = np.array([0.5, 1.0, 0.3, 0.01]), np.array([0.4, 0.2, 1.0, 1e-5])
    expect_p = np.array([pp1, pp1, pp1, 0.0])

    # BYOL: 3-D (w, w_p, w_a), tau by Eq. 4 / 13 from tau(0) = 0 -> (p*_+, p*_+²/α_p, tau = 1), or collapse
    y = _end(solve_modes(mode_field, ModeState.from_pst(p0, s0, 0.0), 300.0, args=(hp, KAPPA), **TOL))
    assert np.max(np.abs(y.p - expect_p)) <= 1e-6
    assert np.max(np.abs(y.s - th.parabola(expect_p, 2.0))) <= 1e-6
    assert np.max(np.abs(y.tau[:3] - 1.0)) <= 1e-6
    assert abs(y.tau[3] - 1.0 / 0.9) <= 1e-6  # collapsed tau -> β/(β - η) (section 7.5)

    # fixed tau = 0.8 (w_a = τ w), and the 2-D (p, s) form of Eqs. 11-12
    tau = 0.8
    pm, pp = (float(x) for x in th.p_star(tau, KAPPA, 0.1))
    assert pm < 0.25 < pp  # p*_- = 0.2, p*_+ = 1/3
    p0f, s0f = np.array([0.3, 0.6, 0.4, 0.05]), np.array([0.1, 0.1, 0.02, 1e-3])
    ef = np.array([pp, pp, pp, 0.0])
    y = _end(solve_modes(mode_field, ModeState.from_pst(p0f, s0f, tau), 300.0, args=(hp, KAPPA, tau), **TOL))
    z = _end(solve_modes(pst_field, ModePST(jnp.asarray(p0f), jnp.asarray(s0f), jnp.full(4, tau)), 300.0,
                         args=(hp, KAPPA, False), **TOL))
    for p, s in ((y.p, y.s), (z.p, z.s)):
        assert np.max(np.abs(p - ef)) <= 1e-6 and np.max(np.abs(s - ef**2 / 2.0)) <= 1e-6

    # eta = 0, fixed tau: p -> τ/κ and s -> the section 7.3 final value (starts above the parabola)
    hp0 = bd.Hyper(alpha_p=2.0, eta=0.0, beta=1.0)
    p00, s00 = np.array([0.05, 0.3, 1.2, 0.6]), np.array([0.1, 0.2, 0.9, 0.3])
    y = _end(solve_modes(mode_field, ModeState.from_pst(p00, s00, tau), 300.0, args=(hp0, KAPPA, tau), **TOL))
    assert np.max(np.abs(y.p - tau / KAPPA)) <= 1e-6
    assert np.max(np.abs(y.s - th.final_s_eta0(p00, s00, tau, KAPPA, 2.0))) <= 1e-6

    # 1-D cubic (Eq. 16, fixed tau) and 2-D parabola with tau from Eq. 15 (q = τ p, q(0) = 0)
    c = _end(solve_modes(cubic_field, jnp.array([0.3, 0.5, 0.9, 0.05]), 300.0, args=(hp, KAPPA, tau), **TOL))
    assert np.max(np.abs(c - ef)) <= 1e-6
    q = _end(solve_modes(parabola_field, ParabolaState(jnp.array([0.4, 0.8, 0.2, 0.05]), jnp.zeros(4)), 300.0,
                         args=(hp, KAPPA), **TOL))
    eq = np.array([pp1, pp1, pp1, 0.0])
    assert np.max(np.abs(q.p - eq)) <= 1e-6 and np.max(np.abs(q.q - eq)) <= 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("side", ["above", "below"])
def test_bifurcation_at_eta_c(side):
    """η = 1.02 η_c: every start collapses. η = 0.98 η_c: p*_- ± 0.01 on the parabola survive / collapse."""
    tau, alpha_p = 1.0, 1.0
    ec = float(th.eta_c(tau, KAPPA))
    eta = ec * (1.02 if side == "above" else 0.98)
    hp = bd.Hyper(alpha_p=alpha_p, eta=eta, beta=1.0)
    if side == "above":  # a grid of starts on and far above the parabola
        pg, off = np.meshgrid(np.linspace(0.01, 2.0, 12), [0.0, 0.1, 1.0, 5.0])
        p0, s0 = pg.ravel(), (pg**2 / alpha_p + off).ravel()
        expect = np.zeros_like(p0)
    else:
        pm, pp = (float(x) for x in th.p_star(tau, KAPPA, eta))
        assert 0.05 < pp - pm < 0.2  # close to the bifurcation
        p0 = np.array([pm + 0.01, pm - 0.01, 1.5, 0.05])
        s0 = p0**2 / alpha_p
        expect = np.array([pp, 0.0, pp, 0.0])
        c = _end(solve_modes(cubic_field, jnp.asarray(p0), 700.0, args=(hp, KAPPA, tau), **TOL))
        assert np.max(np.abs(c - expect)) <= 1e-6
    for p0_, s0_, e in zip(*(np.reshape(a, (-1, 4)) for a in (p0, s0, expect))):  # shape (4,): compiled once
        y = _end(solve_modes(mode_field, ModeState.from_pst(p0_, s0_, tau), 700.0, args=(hp, KAPPA, tau), **TOL))
        assert np.max(np.abs(y.p - e)) <= 1e-6
        assert np.max(np.abs(y.s - e**2 / alpha_p)) <= 1e-6


@pytest.mark.slow
def test_collapsing_mode_run_stays_finite():
    """Collapse with η >= β: τ = w_a/w runs off (section 7.5) but (w, w_p, w_a) stays finite; the (p, s, τ) form diverges."""
    hp = bd.Hyper(alpha_p=1.0, eta=0.3, beta=0.1)  # η > η_c = 1/6 and η > β
    p0, s0 = np.array([0.2, 0.6, 1.0, 2.0]), np.array([0.04, 0.36, 1.0, 4.0])
    sol = solve_modes(mode_field, ModeState.from_pst(p0, s0, 0.0), 300.0, args=(hp, KAPPA), **TOL)
    assert int(sol.status) == bd.SUCCEEDED
    w = np.stack([np.asarray(a) for a in sol.states])
    assert np.all(np.isfinite(w))
    assert np.max(np.abs(w[:, -1])) <= 1e-12  # collapsed: w, w_p, w_a -> 0
    # while w is resolved (t in [30, 150], w >= 1e-20), τ = w_a / w grows as e^{(η - β) t} (section 7.5)
    tau = np.asarray(sol.states.tau)
    rate = np.log(tau[50] / tau[10]) / (float(sol.ts[50]) - float(sol.ts[10]))
    assert np.max(np.abs(rate - 0.2)) <= 2e-3 and np.min(tau[50]) > 1e11
    pst = solve_modes(pst_field, ModePST(jnp.asarray(p0), jnp.asarray(s0), jnp.zeros(4)), 300.0,
                      args=(hp, KAPPA, True), **TOL)
    assert int(pst.status) == bd.DIVERGED  # the literal Eq. 13 variable exceeds max_norm = 1e8
    assert float(pst.t_final) < 300.0


@pytest.mark.slow
def test_solve_modes_vmap_and_float32():
    """`vmap` over hyperparameters equals separate solves; float32 inputs give float32 derivatives."""
    etas = jnp.array([0.0, 0.05, 0.12])
    y0 = ModeState.from_pst(np.array([0.3, 0.7, 0.2, 0.9]), np.array([0.2, 0.3, 0.1, 0.5]), 0.0)
    run = lambda eta: solve_modes(mode_field, y0, 300.0, args=(bd.Hyper(2.0, eta, 1.0), KAPPA), **TOL)
    batched = jax.vmap(run)(etas)
    assert np.all(np.asarray(batched.status) == bd.SUCCEEDED)
    single = run(0.1)  # compiled already by the fixed-point test (same shapes)
    for i, eta in enumerate([0.0, 0.05, 0.12]):
        one = solve_modes(mode_field, y0, 300.0, args=(bd.Hyper(2.0, eta, 1.0), KAPPA), **TOL)
        assert np.max(np.abs(np.asarray(batched.states.w[i]) - np.asarray(one.states.w))) <= 1e-9
    assert int(single.status) == bd.SUCCEEDED
    y32 = ModeState(*(jnp.asarray(a, jnp.float32) for a in y0))
    d32 = mode_field(y32, bd.Hyper(jnp.float32(1.0), jnp.float32(0.05), jnp.float32(0.5)), jnp.float32(KAPPA))
    assert all(a.dtype == jnp.float32 for a in d32)


def test_validation():
    hp = bd.Hyper()
    y0 = ModeState.from_pst(0.5, 0.2, 0.0)
    with pytest.raises(ValueError, match="kappa"):
        mode_field(y0, hp, -1.0)
    with pytest.raises(ValueError, match="s must be >= 0"):
        ModeState.from_pst(0.5, -0.2, 0.0)
    with pytest.raises(ValueError, match="ModeState"):
        mode_field(ModePST(1.0, 1.0, 1.0), hp, KAPPA)
    with pytest.raises(ValueError, match="t1 must be > t0"):
        solve_modes(mode_field, y0, -1.0, args=(hp, KAPPA))
    with pytest.raises(ValueError, match="diagonal X and X'"):  # the anisotropic modes need a shared eigenbasis
        mode_field(y0, hp, bd.Data(np.eye(2) + 0.1, np.eye(2)))
    with pytest.raises(ValueError, match="isotropic"):  # Eqs. 11-13 in (p, s, τ) are the isotropic ones
        pst_field(ModePST(0.5, 0.2, 0.0), hp, bd.Data(np.eye(2), np.eye(2)))
    with pytest.raises(ValueError, match="p must be finite"):
        cubic_field(np.nan, hp, KAPPA, 1.0)
