"""DirectSet(α) (Wang, Chen, Du & Tian 2021, arXiv 2110.04947; docs/directset.md) at the four levels and the CLI:
p_j ∝ s_j^α on F̂'s eigenvectors with DirectPred's forms, and its mode-level closed forms (`byoldyn.theory`)
against long integrations to 1e-6, as tests/test_modes_directpred.py does for DirectPred.

Integrations run at rtol 1e-10 / atol 1e-14 until the slowest linear rate at the fixed point has decayed by e^-30
or more. Each claim has a control that must disagree (DirectPred's α = 1/2, the other side of a threshold).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_psd

import byoldyn as bd
from byoldyn import theory
from byoldyn.flows import DirectModeState, directpred_s_field, solve_directpred

TAU, KAPPA, EPS = 1.0, 1.5, 0.1
TOL = dict(rtol=1e-10, atol=1e-14)


def final_s(pred, s0, eta, t1, tau=1.0):
    y0 = DirectModeState.from_s_tau(jnp.asarray(s0, float), tau)
    sol = solve_directpred(y0, t1, bd.Hyper(eta=eta, beta=0.0), KAPPA, pred, tau=tau, ts=[t1], max_steps=10**6, **TOL)
    assert bool(np.all(sol.succeeded))
    return np.asarray(sol.states.s[-1])


@pytest.mark.parametrize("form", ["code", "paper", "raw"])
def test_matrix_is_eigh_reconstruction_with_power_alpha(rng, form):
    F = random_psd(rng, 6, floor=0.0) * 3.7
    s, U = np.linalg.eigh(F)
    s = np.clip(s, 0, None)
    a = 0.3
    p = {"code": np.maximum((s / s.max()) ** a + EPS, 1e-4), "paper": s ** a + EPS * s.max(), "raw": s ** a + EPS}[form]
    np.testing.assert_allclose(bd.DirectSet(alpha=a, eps=EPS, form=form).matrix(F), (U * p) @ U.T, rtol=1e-11,
                               atol=1e-12)
    # α = 1/2 is DirectPred to the bit; α = 1 (code form) is DirectCopy's spectrum
    np.testing.assert_array_equal(bd.DirectSet(alpha=0.5, eps=EPS, form=form).matrix(F),
                                  bd.DirectPred(eps=EPS, form=form).matrix(F))
    np.testing.assert_allclose(bd.DirectSet(alpha=1.0, eps=EPS).matrix(F), bd.DirectCopy(eps=EPS).matrix(F),
                               rtol=1e-12, atol=1e-12)
    assert not np.allclose(bd.DirectSet(alpha=a, eps=EPS, form=form).matrix(F), bd.DirectPred(eps=EPS, form=form).matrix(F))


def test_validation_and_vocabulary():
    with pytest.raises(ValueError, match=r"^alpha must be finite and > 0, got 0"):
        bd.DirectSet(alpha=0)
    assert bd.as_predictor("directset") == bd.DirectSet()
    assert bd.DirectSet(alpha=0.3, eps=0.2).label() == "DirectSet (α = 0.3, ε = 0.2)"
    assert bd.DirectSet(alpha=0.3).replace(eps=0.0) == bd.DirectSet(alpha=0.3, eps=0.0)


@pytest.mark.slow
def test_raw_form_fixed_point_and_threshold():
    """p = s^α + ε: s*_+ = (p*_+ − ε)^{1/α} (docs/directset.md S1); η_c as DirectPred's raw form (independent of α,
    S3), bracketed at 0.97 / 1.03 η_c. Control: DirectPred's s*_+ differs."""
    a, eta = 0.3, 0.05
    pred = bd.DirectSet(alpha=a, eps=EPS, form="raw")
    sm, sp = (float(v) for v in theory.directpred_s_star(pred, TAU, KAPPA, eta))
    pp = float(theory.p_star(TAU, KAPPA, eta)[1])
    assert np.isnan(sm) and sp == pytest.approx((pp - EPS) ** (1 / a), rel=1e-13)
    np.testing.assert_allclose(final_s(pred, [1e-4, 0.05, 0.5, 2.0], eta, 400.0), sp, rtol=1e-6)
    assert abs(float(theory.directpred_s_star(bd.DirectPred(eps=EPS, form="raw"), TAU, KAPPA, eta)[1]) - sp) > 0.1 * sp
    etac = float(theory.directpred_eta_c(pred, TAU, KAPPA))
    assert etac == pytest.approx(TAU ** 2 / (4 * KAPPA), rel=1e-14)
    below = float(theory.directpred_s_star(pred, TAU, KAPPA, 0.97 * etac)[1])
    np.testing.assert_allclose(final_s(pred, [0.3], 0.97 * etac, 3000.0), below, rtol=1e-6)
    assert final_s(pred, [0.3], 1.03 * etac, 3000.0)[0] < 1e-8


@pytest.mark.slow
def test_paper_form_top_mode_fixed_points_by_bisection():
    """Eq. 18 with power α, one mode: s^α + εs = p*_± (no closed form for α ≠ 1/2: bisection to the last bit);
    the flow reaches s*_+ from above and below, and a start under s*_− collapses. Codes: s*_− unstable, s*_+
    stable (the sign of ∂ṡ/∂s by autodiff)."""
    a, eta = 0.7, 0.05
    pred = bd.DirectSet(alpha=a, eps=EPS, form="paper")
    sm, sp = (float(v) for v in theory.directpred_s_star(pred, TAU, KAPPA, eta))
    pm, pp = (float(v) for v in theory.p_star(TAU, KAPPA, eta))
    assert sm ** a + EPS * sm == pytest.approx(pm, rel=1e-13) and sp ** a + EPS * sp == pytest.approx(pp, rel=1e-13)
    s = final_s(pred, [[0.5 * sp], [2.0 * sp]], eta, 600.0)
    np.testing.assert_allclose(s[:, 0], sp, rtol=1e-6)
    assert final_s(pred, [[0.5 * sm]], eta, 400.0)[0, 0] < 1e-12
    s3, code = (np.asarray(v) for v in theory.directpred_fixed_points(pred, TAU, KAPPA, eta))
    for k in (1, 2):
        d = float(jax.grad(lambda v: directpred_s_field(v, bd.Hyper(eta=eta), KAPPA, pred, TAU)[0])(
            jnp.asarray([s3[k]]))[0])
        assert code[k] == (theory.STABLE_NODE if d < 0 else theory.UNSTABLE_NODE)
    assert (code[1], code[2]) == (theory.UNSTABLE_NODE, theory.STABLE_NODE)


@pytest.mark.slow
def test_code_form_top_rate_and_ratio_threshold():
    """Code form (scale-free): the top mode grows as e^{λt}, λ = 2[(1+ε)(τ − κ(1+ε)) − η] for every α (S1), so
    η_c = (1+ε)(τ − κ(1+ε)) (S3); the weak modes' ratio r = s/max s has the unstable fixed point
    r* = (τ/κ − 1 − 2ε)^{1/α} (S1): at η = η_c the top is still, and modes started at r*(1 ± 1e-6) leave r* in
    opposite directions (to 0 and to 1): r* is the threshold to 1e-6. Control: DirectPred's r* (α = 1/2) is not
    between them."""
    a, tau, eps = 0.3, 2.0, EPS
    pred = bd.DirectSet(alpha=a, eps=eps)
    etac = float(theory.directpred_eta_c(pred, tau, KAPPA))
    assert etac == pytest.approx((1 + eps) * (tau - KAPPA * (1 + eps)), rel=1e-14)
    lam = float(theory.directpred_top_rate(pred, TAU, KAPPA, 0.01))
    s = final_s(pred, [0.5, 0.2], 0.01, 3.0)
    np.testing.assert_allclose(s[0], 0.5 * np.exp(lam * 3.0), rtol=1e-6)
    r = float(theory.directpred_ratio_star(pred, tau, KAPPA))
    assert r == pytest.approx((tau / KAPPA - 1 - 2 * eps) ** (1 / a), rel=1e-13)
    m = 1.0
    s0 = np.array([m, r * (1 - 1e-6) * m, r * (1 + 1e-6) * m])
    s = final_s(pred, s0, etac, 200.0, tau=tau)
    assert s[0] == pytest.approx(m, rel=1e-9)  # η = η_c: the top mode is still
    assert s[1] < 1e-6 * m and s[2] == pytest.approx(m, rel=1e-6)
    r_dp = float(theory.directpred_ratio_star(bd.DirectPred(eps=eps), tau, KAPPA))
    assert abs(r_dp - r) > 0.1 * r


def test_sampled_and_nets_levels_carry_alpha():
    """The sampled step sets Wp = DirectSet(α).matrix(F̂); nets.Config carries the object through its record."""
    from byoldyn import sampled as sp
    from byoldyn.sampled.train import init_train_state, sgd_step

    jax.config.update("jax_enable_x64", True)
    n = 4
    s0 = bd.State.random(jax.random.PRNGKey(0), n, n, scale=0.7, dtype=jnp.float64)
    src = sp.Source.isotropic(n, 0.5)
    pred = bd.DirectSet(alpha=0.3, eps=0.05)
    setup = sp.Setup(batch=None, predictor=pred)
    ts1 = sgd_step(init_train_state(s0, setup), sp.SGD(lr=0.05), src, src.moments(), None, setup)
    np.testing.assert_allclose(ts1.Wp, pred.matrix(1.5 * s0.W @ s0.W.T), rtol=1e-12, atol=1e-13)
    pytest.importorskip("flax")
    from byoldyn.nets.config import Config
    c = Config(predictor=pred)
    assert c.predictor == "directset" and c.predictor_object == pred and Config.from_dict(c.to_dict()) == c
