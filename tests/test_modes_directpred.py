"""DirectPred / DirectCopy at the mode level (docs/directpred_modes.md; THEORY.md sections 7, 10): the closed
forms of `byoldyn.theory.directpred_*` against long integrations of `byoldyn.flows.solve_directpred`.

Tolerances: the integrations run at rtol 1e-10 / atol 1e-14 and long enough that the slowest linear rate at the
fixed point has decayed by e^-30 or more, so the distance to a stable fixed point is below 1e-9 relative; the
tests assert 1e-6. Each claim has a control that must disagree (the learned predictor, the first-order
origin condition ετ > η, the other side of a threshold).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from byoldyn import DirectCopy, DirectPred, Hyper, theory
from byoldyn.flows import (
    DirectModeState,
    ModePST,
    directpred_field,
    directpred_s_field,
    pst_field,
    solve_directpred,
    solve_modes,
)

TAU, KAPPA, EPS = 1.0, 1.5, 0.1  # σ² = 0.5, as Fig. 3
TOL = dict(rtol=1e-10, atol=1e-14)


def traced(pred):
    """`pred` with ε as an array, a traced leaf (a Python float is static to `eqx.filter_jit`): runs that differ only
    in ε, η, s(0), t1 share one compiled solve, here and with `byoldyn.figures.modes.directpred_thresholds`."""
    return pred.replace(eps=jnp.asarray(pred.eps, float))


def final_s(pred, s0, eta, t1, beta=None, tau0=0.0):
    """s at t1 (modes on the last axis); τ fixed at 1 (SimSiam) when beta is None, else BYOL from τ(0) = tau0.
    Saved at (0, t1), as the figure's runs; the longest run here takes < 500 steps (the default cap is 1e5)."""
    y0 = DirectModeState.from_s_tau(jnp.asarray(s0, float), 1.0 if beta is None else tau0)
    hyper = Hyper(eta=eta, beta=0.0 if beta is None else beta)
    sol = solve_directpred(y0, t1, hyper, KAPPA, traced(pred), tau=1.0 if beta is None else None, ts=[0.0, t1], **TOL)
    assert bool(np.all(sol.succeeded))
    return np.asarray(sol.states.s[-1]), np.asarray(sol.states.tau[-1])


@pytest.mark.slow
def test_sqrt_form_fixed_point_and_no_collapse_basin():
    """p = √s + ε with ε(τ − κε) > η: the origin is unstable and s*_− absent, so every start ends at
    s*_+ = (p*_+ − ε)² (D1, D3). Control: the learned predictor on its parabola from the same small start dies."""
    eta = 0.05
    sm, sp = (float(v) for v in theory.directpred_s_star("sqrt", TAU, KAPPA, eta, eps=EPS))
    pm, pp = (float(v) for v in theory.p_star(TAU, KAPPA, eta))
    assert np.isnan(sm) and sp == pytest.approx((pp - EPS) ** 2, rel=1e-14)
    # each start its own one-mode run (p = √s + ε is elementwise); rate at s*_+: √s*(τ − 2κp*_+) = −0.43, e^-170
    s = [final_s(DirectPred(eps=EPS, form="raw"), [s0], eta, 400.0)[0][0] for s0 in (1e-4, 0.01, 0.5, 2.0)]
    np.testing.assert_allclose(s, sp, rtol=1e-6)
    y0 = ModePST(jnp.sqrt(jnp.asarray([1e-4])), jnp.asarray([1e-4]), jnp.asarray([TAU]))  # α_p = 1: s = p²
    learned = solve_modes(pst_field, y0, 400.0, args=(Hyper(eta=eta), KAPPA, False), ts=[400.0], **TOL)
    assert 1e-4 < pm * pm and float(learned.states.s[-1, 0]) < 1e-12  # below p*_−² it collapses


@pytest.mark.slow
def test_paper_form_top_mode_fixed_point_and_byol():
    """Eq. 18 as printed, one mode (m = s): √s + εs = p*_+ gives s*_+ = x_+², x_+ = 2p*_+/(1 + √(1 + 4εp*_+)) (D1);
    BYOL (Eq. 13, β = 1, τ(0) = 0) reaches the same point with τ → 1. Control: s*_+ of the learned predictor
    (p*_+², α_p = 1) is not it."""
    eta = 0.05
    pred = DirectPred(eps=EPS, form="paper")
    sm, sp = (float(v) for v in theory.directpred_s_star(pred, TAU, KAPPA, eta))
    pp = float(theory.p_star(TAU, KAPPA, eta)[1])
    s = [final_s(pred, [s0], eta, 400.0)[0][0] for s0 in (0.5, 2.0)]  # one mode per run, as the figure's runs
    np.testing.assert_allclose(s, sp, rtol=1e-6)
    s, tau = final_s(pred, [0.5], eta, 600.0, beta=1.0, tau0=0.0)
    np.testing.assert_allclose(s[0], sp, rtol=1e-6)
    np.testing.assert_allclose(tau[0], 1.0, rtol=1e-6)
    assert abs(pp * pp - sp) / sp > 0.1
    # below s*_− the top mode collapses (its origin has p_0 = 0: rate −2η)
    assert 0 < sm and final_s(pred, [0.5 * sm], eta, 400.0)[0][0] < 1e-12


@pytest.mark.slow
def test_origin_rate_corrects_the_first_order_claim():
    """The origin of a mode is unstable iff ε(τ − κε) > η (Eq. D2.1), not ετ > η: in the window
    0.085 <= η < 0.1 (τ = 1, κ = 1.5, ε = 0.1) a tiny mode decays at λ_0 = 2[ε(τ − κε) − η] < 0 although ετ > η.
    The measured rate log(s(t)/s(0))/t matches λ_0 to 5e-5 (the correction from √s <= 1e-5 in p is
    2(τ − 2κε)√s <= 1.4e-5)."""
    s0, t1 = 1e-10, 10.0
    for eta in (0.02, 0.09, 0.12):
        lam0 = float(theory.directpred_origin_rate("sqrt", TAU, KAPPA, eta, eps=EPS))
        assert lam0 == pytest.approx(2 * (EPS * (TAU - KAPPA * EPS) - eta), rel=1e-14)
        s, _ = final_s(DirectPred(eps=EPS, form="raw"), [s0], eta, t1)
        rate = float(np.log(s[0] / s0) / t1)
        assert rate == pytest.approx(lam0, abs=5e-5), eta
    # the control: at η = 0.09 the first-order claim says unstable, the flow says stable
    assert EPS * TAU > 0.09 and float(theory.directpred_origin_rate("sqrt", TAU, KAPPA, 0.09, eps=EPS)) < 0
    s, _ = final_s(DirectPred(eps=EPS, form="raw"), [s0], 0.09, 400.0)
    assert s[0] < s0 * np.exp(-3.0)


@pytest.mark.slow
def test_collapse_threshold_is_bracketed():
    """η_c = τ²/4κ for ε <= τ/2κ, else ε(τ − κε) (D3): from s(0) = 0.3 a mode survives at 0.97 η_c and dies at
    1.03 η_c, for both cases of ε."""
    for eps in (EPS, 0.5):
        etac = float(theory.directpred_eta_c("sqrt", TAU, KAPPA, eps=eps))
        expect = TAU**2 / (4 * KAPPA) if eps <= TAU / (2 * KAPPA) else eps * (TAU - KAPPA * eps)
        assert etac == pytest.approx(expect, rel=1e-14)
        sp = float(theory.directpred_s_star("sqrt", TAU, KAPPA, 0.97 * etac, eps=eps)[1])
        pp = float(theory.p_star(TAU, KAPPA, 0.97 * etac)[1])
        t1 = 40.0 / abs(np.sqrt(sp) * (TAU - 2 * KAPPA * pp))  # the linear rate at s*_+ (D2), decayed by e^-40
        below, _ = final_s(DirectPred(eps=eps, form="raw"), [0.3], 0.97 * etac, t1)
        above, _ = final_s(DirectPred(eps=eps, form="raw"), [0.3], 1.03 * etac, t1)
        np.testing.assert_allclose(below[0], sp, rtol=1e-6)
        assert above[0] < 1e-8, (eps, above)


@pytest.mark.slow
@pytest.mark.parametrize("pred", [DirectPred(eps=EPS, form="code"), DirectCopy(eps=EPS)], ids=["code", "directcopy"])
def test_scale_free_forms_top_mode_is_exponential(pred):
    """Code form (10.2) and DirectCopy: the top mode has p ≡ 1 + ε, so s_1(t) = s_1(0) e^{λt} exactly with
    λ = 2[(1 + ε)(τ − κ(1 + ε)) − η] (D1): < 0 here, every mode collapses at the mode level (D3). Control: the
    learned predictor from the same start keeps its top mode."""
    eta, t1, s0 = 0.01, 3.0, np.array([0.5, 0.2, 0.05])
    lam = float(theory.directpred_top_rate(pred, TAU, KAPPA, eta))
    assert lam == pytest.approx(2 * ((1 + EPS) * (TAU - KAPPA * (1 + EPS)) - eta), rel=1e-14) and lam < 0
    assert float(theory.directpred_eta_c(pred, TAU, KAPPA)) < 0
    s, _ = final_s(pred, s0, eta, t1)
    np.testing.assert_allclose(s[0], s0[0] * np.exp(lam * t1), rtol=1e-6)
    assert np.all(s[1:] < s[0])  # the weak modes stay below the top one
    y0 = ModePST(jnp.sqrt(jnp.asarray(s0)), jnp.asarray(s0), jnp.full(3, TAU))
    learned = solve_modes(pst_field, y0, 400.0, args=(Hyper(eta=eta), KAPPA, False), ts=[400.0], **TOL)
    assert float(learned.states.s[-1, 0]) > 0.1


@pytest.mark.slow
def test_fixed_point_codes_match_the_jacobian():
    """`directpred_fixed_points`: at τ = 1 the sign of ∂ṡ/∂s (autodiff of Eq. 12) and with BYOL (β = 1) the
    class of the 2x2 Jacobian of (ẇ, ẇ_a) (autodiff of `directpred_field`) are the codes it returns."""
    eta = 0.03
    for pred in (DirectPred(eps=EPS, form="raw"), DirectPred(eps=EPS, form="paper")):
        s, code = (np.asarray(v) for v in theory.directpred_fixed_points(pred, TAU, KAPPA, eta))
        sb, codeb = (np.asarray(v) for v in theory.directpred_fixed_points(pred, TAU, KAPPA, eta, beta=1.0))
        np.testing.assert_array_equal(s, sb)
        for k in range(1, 3):  # s*_−, s*_+
            if code[k] == theory.NO_POINT:
                assert np.isnan(s[k])
                continue
            x = jnp.asarray([s[k]])
            assert float(directpred_s_field(x, Hyper(eta=eta), KAPPA, pred, TAU)[0]) == pytest.approx(0.0, abs=1e-12)
            d = float(jax.grad(lambda v: directpred_s_field(v, Hyper(eta=eta), KAPPA, pred, TAU)[0])(x)[0])
            assert code[k] == (theory.STABLE_NODE if d < 0 else theory.UNSTABLE_NODE), (pred, k, d)
            w = float(np.sqrt(s[k]))

            def f(y):
                d = directpred_field(DirectModeState(y[:1], y[1:]), Hyper(eta=eta, beta=1.0), KAPPA, pred)
                return jnp.concatenate([d.w, d.w_a])

            J = jax.jacfwd(f)(jnp.asarray([w, w]))
            assert codeb[k] == int(theory.classify(J)), (pred, k, np.asarray(J))
        assert code[2] == theory.STABLE_NODE and codeb[2] in (theory.STABLE_NODE, theory.STABLE_FOCUS)
        if code[1] != theory.NO_POINT:
            assert code[1] == theory.UNSTABLE_NODE and codeb[1] == theory.SADDLE


@pytest.mark.slow
def test_at_eta_c_collapse_is_algebraic_when_eps_is_at_least_tau_over_2kappa():
    """D3 at η = η_c (p = √s + ε): for ε > τ/2κ the only fixed point is s = 0 and ṡ ≈ −2(2κε − τ)s^{3/2}, so the
    mode still collapses, s(t) t² → 1/(2κε − τ)² (ε = 0.5: 4); at ε = τ/2κ, ṡ = −2κs², s(t) t → 1/2κ. Control:
    ε = 0.1 < τ/2κ, where the saddle-node s_c = (τ/2κ − ε)² persists at η = η_c and a start above it ends there."""
    t = np.array([1000.0, 3000.0])

    def s_at(eps):
        pred = traced(DirectPred(eps=eps, form="raw"))
        eta = float(theory.directpred_eta_c(pred, TAU, KAPPA))
        y0 = DirectModeState.from_s_tau(jnp.asarray([0.3]), TAU)
        sol = solve_directpred(y0, float(t[-1]), Hyper(eta=eta), KAPPA, pred, tau=TAU, ts=t, **TOL)
        return np.asarray(sol.states.s)[:, 0]

    # the next order: s t² = c⁻²(1 + O(1/t)) (measured 3.76, 3.90 at t = 1000, 3000)
    np.testing.assert_allclose(s_at(0.5) * t**2, 1 / (2 * KAPPA * 0.5 - TAU) ** 2, rtol=0.1)
    np.testing.assert_allclose(s_at(TAU / (2 * KAPPA)) * t, 1 / (2 * KAPPA), rtol=1e-2)
    sc = (TAU / (2 * KAPPA) - EPS) ** 2
    np.testing.assert_allclose(s_at(EPS)[-1], sc, rtol=1e-2)  # approached as 1/t from above


def test_ratio_fixed_point_lies_in_0_1_only_between_1_plus_2eps_and_2_plus_2eps():
    """D1 (code form, DirectCopy): r* with g(r*, 1) = τ/κ − 1 − ε lies in (0, 1) iff 1 + 2ε < τ/κ < 2 + 2ε; outside,
    the sign of ṙ/r = ṡ_j/s_j − ṡ_1/s_1 (from Eq. 12) is the same for every 0 < r < 1: + (flatten) for
    τ/κ <= 1 + 2ε, − (fall behind the top) for τ/κ >= 2 + 2ε; inside, − below r* and + above."""
    r = np.linspace(0.01, 0.99, 99)
    for pred, rstar in ((DirectPred(eps=EPS, form="code"), lambda x: x * x), (DirectCopy(eps=EPS), lambda x: x)):
        for x in (0.9, 1 + 2 * EPS, 1.5, 2 + 2 * EPS, 2.5):  # x = τ/κ
            tau = KAPPA * x
            rs = float(theory.directpred_ratio_star(pred, tau, KAPPA))
            s = jnp.asarray(np.stack([np.ones_like(r), r], -1))
            ds = np.asarray(directpred_s_field(s, Hyper(eta=0.01), KAPPA, pred, tau))
            rel = ds[:, 1] / r - ds[:, 0]  # ṙ/r (s_1 = 1)
            if 1 + 2 * EPS < x < 2 + 2 * EPS:
                assert rs == pytest.approx(rstar(x - 1 - 2 * EPS), rel=1e-12) and 0 < rs < 1
                assert np.all(rel[r < rs] < 0) and np.all(rel[r > rs] > 0)
            else:
                assert np.isnan(rs), (pred, x)
                assert np.all(rel > 0) if x <= 1 + 2 * EPS else np.all(rel < 0), (pred, x)


@pytest.mark.slow
def test_threshold_rows_fail_when_a_mode_survives_above_eta_c(monkeypatch):
    """The D3 rows of `byoldyn reproduce --only fig3_directpred`: with the weight decay of the field stopped at
    0.95 η_c (a broken mechanism: the mode survives above η_c, at another s than the claim's s*_+), every row
    fails through its control, which requires collapse there (s(t1) < S_DEAD); the true field passes them."""
    import importlib

    from byoldyn.figures import modes

    fm = importlib.import_module("byoldyn.flows.modes")
    args = (TAU, KAPPA, EPS, 3000.0)
    rows = modes.directpred_thresholds(*args)
    assert len(rows) == 3 and all(r.passed for r in rows)
    real = fm.solve_directpred

    def capped(y0, t1, hyper, kappa, pred, **kw):
        etac = float(theory.directpred_eta_c(pred, TAU, kappa))
        if float(hyper.eta) > etac:
            hyper = Hyper(eta=0.95 * etac, beta=hyper.beta)
        return real(y0, t1, hyper, kappa, pred, **kw)

    monkeypatch.setattr(fm, "solve_directpred", capped)
    rows = modes.directpred_thresholds(*args)
    assert all(r.agrees and r.control_agrees and not r.passed for r in rows), [r.control for r in rows]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="form must be one of"):
        theory.directpred_form("cosine", eps=0.1)
    with pytest.raises(ValueError, match="eps must be given"):
        theory.directpred_eta_c("sqrt", TAU, KAPPA)
    with pytest.raises(ValueError, match="scale-free"):
        theory.directpred_s_star(DirectCopy(), TAU, KAPPA, 0.01)
    with pytest.raises(ValueError, match="tau must be 1 with beta"):
        theory.directpred_fixed_points("sqrt", 0.8, KAPPA, 0.01, beta=1.0, eps=EPS)
    with pytest.raises(ValueError, match="DirectModeState"):
        solve_directpred((1.0, 0.0), 1.0, Hyper(), KAPPA, DirectPred(form="raw"))
    with pytest.raises(ValueError, match=r"\.modes\(s\)"):
        directpred_field(DirectModeState(jnp.ones(2), jnp.ones(2)), Hyper(), KAPPA, "learned")
