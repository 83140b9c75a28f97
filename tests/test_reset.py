"""Predictor resets (byoldyn.reset, docs/predictor_reset.md): the segments are the plain solvers chained, a period
longer than the run is the plain run bit for bit, α_p drops out (R1), η = 0 closed form (R2), the critical period
(R3), and the sampled level equals the ODE's Euler steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import byoldyn as bd
from byoldyn import theory
from byoldyn.reset import (
    Reset,
    critical_period,
    modes_with_resets,
    recovery_time,
    simulate_with_resets,
    train_with_resets,
)
from byoldyn.sampled import SGD, Setup, Source, from_flow, train

KAPPA = 1.5


def _s0(n=3, seed=0):
    return bd.State.random(jax.random.PRNGKey(seed), n, n, scale=np.sqrt(n), wp_scale=0.3 * np.sqrt(n),
                           target="copy")


def test_reset_validation():
    with pytest.raises(ValueError, match="every"):
        Reset(0.0)
    with pytest.raises(ValueError, match="init"):
        Reset(1.0, "ones")
    with pytest.raises(ValueError, match="whole number"):
        Reset(3.0).count(0.0, 10.0)
    s0, data = _s0(), bd.Data.isotropic(3, 0.5)
    with pytest.raises(ValueError, match="key"):
        simulate_with_resets(s0, bd.Hyper(), data, 10.0, Reset(5.0, "random"))
    with pytest.raises(ValueError, match="learned predictor"):
        simulate_with_resets(s0, bd.Hyper(), data, 10.0, Reset(5.0, "zeros"), predictor="identity")


@pytest.mark.slow
def test_one_segment_is_the_plain_run_bit_for_bit():
    s0, hp, data = _s0(), bd.Hyper(alpha_p=1.0, eta=0.02), bd.Data.isotropic(3, 0.5)
    seg = simulate_with_resets(s0, hp, data, 30.0, Reset(100.0, "random"), key=jax.random.PRNGKey(1), saves=6)
    sol = bd.simulate(s0, hp, data, 30.0, ts=np.linspace(0.0, 30.0, 7))
    assert seg.ts.shape == (1, 7)
    assert bool(jnp.all(seg.states.W[0] == sol.states.W)) and bool(jnp.all(seg.states.Wp[0] == sol.states.Wp))


@pytest.mark.slow
def test_segments_are_independent_simulate_calls():
    # segment k is simulate from segment k-1's end with Wp replaced by the k-th draw (solver tolerance 1e-10)
    s0, hp, data = _s0(), bd.Hyper(alpha_p=1.0, eta=0.02), bd.Data.isotropic(3, 0.5)
    reset, key = Reset(10.0, "random", scale=0.2), jax.random.PRNGKey(4)
    seg = simulate_with_resets(s0, hp, data, 30.0, reset, key=key, saves=4, rtol=1e-10, atol=1e-12)
    assert seg.ts.shape == (3, 5) and bool(seg.succeeded)
    for k in (1, 2):
        y = bd.State(seg.states.W[k - 1, -1], reset.wp(k, s0.Wp, key), seg.states.Wa[k - 1, -1])
        sol = bd.simulate(y, hp, data, 10.0 * (k + 1), t0=10.0 * k, ts=np.asarray(seg.ts[k]), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(sol.states.W, seg.states.W[k], rtol=0, atol=1e-12)
        np.testing.assert_allclose(seg.states.Wp[k, 0], reset.wp(k, s0.Wp, key), rtol=0, atol=1e-15)


@pytest.mark.slow
def test_alpha_p_drops_out():
    # R1: W -> W/√α_p maps the α_p = 1 flow onto the α_p flow (W₁(t)/√α_p solves it), resets to 0 included:
    # √α_p W(t) and Wp(t) of the α_p run started at W(0)/√α_p agree with the α_p = 1 run
    s0, data = _s0(), bd.Data.isotropic(3, 0.5)
    out = []
    for ap in (0.1, 1.0, 10.0):
        y = bd.State(s0.W / np.sqrt(ap), s0.Wp, s0.Wa / np.sqrt(ap))
        seg = simulate_with_resets(y, bd.Hyper(alpha_p=ap, eta=0.03), data, 40.0, Reset(10.0, "zeros"), saves=4,
                                   rtol=1e-10, atol=1e-12)
        out.append((np.sqrt(ap) * np.asarray(seg.states.W), np.asarray(seg.states.Wp)))
    for W, Wp in out[1:]:
        np.testing.assert_allclose(W, out[0][0], atol=1e-7)
        np.testing.assert_allclose(Wp, out[0][1], atol=1e-7)
    # control: the same comparison with η changed by 10% differs far above the tolerance
    y = bd.State(s0.W, s0.Wp, s0.Wa)
    seg = simulate_with_resets(y, bd.Hyper(alpha_p=1.0, eta=0.033), data, 40.0, Reset(10.0, "zeros"), saves=4,
                               rtol=1e-10, atol=1e-12)
    assert np.max(np.abs(np.asarray(seg.states.W) - out[1][0])) > 1e-3


@pytest.mark.slow
def test_eta0_each_reset_adds_p_star_squared():
    # R2 (η = 0, τ = 1): a reset of p to 0 and full recovery move s by (τ/κ)²/α_p (Eq. 14, c_j conserved)
    ap, K = 2.0, 4
    y0 = bd.ModeState.from_pst(p=jnp.full(3, 1 / KAPPA), s=jnp.array([0.05, 0.3, 1.0]), tau=1.0)
    seg = modes_with_resets(y0, bd.Hyper(alpha_p=ap, eta=0.0), KAPPA, K * 400.0, Reset(400.0, "zeros"), tau=1.0,
                            saves=2, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(seg.final.s, np.array([0.05, 0.3, 1.0]) + (K - 1) / (KAPPA ** 2 * ap), rtol=1e-7)
    assert np.max(np.abs(np.asarray(seg.final.s) - np.array([0.05, 0.3, 1.0]))) > 0.1  # control: no reset, s fixed


@pytest.mark.slow
def test_critical_period_mode_map():
    # R3: a mode at its fixed point survives periodic resets to 0 iff T_r > T_c; checked at 0.8 T_c and 1.25 T_c
    eta = 0.04
    pp = float(theory.p_star(1.0, KAPPA, eta)[1])
    tc = float(critical_period(1.0, KAPPA, eta))
    y0 = bd.ModeState.from_pst(p=pp, s=pp ** 2, tau=1.0)
    ends = []
    for f in (0.8, 1.25):
        seg = modes_with_resets(y0, bd.Hyper(eta=eta), KAPPA, 600 * f * tc, Reset(f * tc, "zeros"), tau=1.0, saves=1)
        ends.append(float(seg.final.s) / pp ** 2)
    assert ends[0] < 0.2 and ends[1] > 1.5


@pytest.mark.slow
def test_critical_period_is_the_one_period_threshold():
    # R3 at κη/τ² = 0.05, where the closed form matches the exact map to 2e-5: one period from (p, ŝ) = (0, p*_+²)
    # shrinks ŝ at 0.99 T_c and grows it at 1.01 T_c (scipy DOP853 at rtol 1e-12: ∓1.1e-4; solver rtol 1e-11 here).
    # The leading order 2η/(τ² p*_+²) = 0.89 T_c would put 0.99 T_c above the threshold: the signs tell them apart.
    eta = 0.05 / KAPPA
    pp = float(theory.p_star(1.0, KAPPA, eta)[1])
    tc = float(critical_period(1.0, KAPPA, eta))
    assert 2 * eta / pp ** 2 < 0.9 * tc
    y0 = bd.ModeState.from_pst(p=0.0, s=pp ** 2, tau=1.0)
    growth = [float(modes_with_resets(y0, bd.Hyper(eta=eta), KAPPA, f * tc, Reset(f * tc, "keep"), tau=1.0, saves=1,
                                      rtol=1e-11, atol=1e-13).final.s) / pp ** 2 - 1.0 for f in (0.99, 1.01)]
    assert -2e-4 < growth[0] < -5e-5 and 5e-5 < growth[1] < 2e-4, growth
    with pytest.raises(ValueError, match="eta_c"):
        critical_period(1.0, KAPPA, 0.2)


def test_recovery_time():
    ts = np.linspace(0.0, 4.0, 5)[None]
    x = np.array([[0.0, 0.5, 0.97, 1.02, 1.0], [1.0, 1.0, 0.5, 1.0, 1.0]]).T[None]
    np.testing.assert_array_equal(recovery_time(ts, x, np.array([[1.0, 1.0]]), 0.05), [[2.0, 3.0]])
    assert np.isinf(recovery_time(ts, x[..., :1] * 0.5, np.array([[1.0]]), 0.05))[0, 0]


@pytest.mark.slow
def test_sampled_equals_euler_with_resets():
    # exact moments, momentum 0, EMA in its flow form: one SGD step is one Euler step of Lemma 1, resets included
    n, dt = 3, 0.05
    s0, hp = _s0(n), bd.Hyper(alpha_p=1.0, eta=0.02, beta=0.5)
    src = Source.additive(np.eye(n), 0.5 * np.eye(n))
    sgd = from_flow(hp, dt)
    seg = train_with_resets(s0, sgd, src, jax.random.PRNGKey(0), 60, Reset(1.0, "zeros"), save_every=10,
                            setup=Setup(batch=None, ema_form="flow"))
    ode = simulate_with_resets(s0, hp, bd.Data(jnp.eye(n), 0.5 * jnp.eye(n)), 3.0, Reset(1.0, "zeros"), dt=dt,
                               saves=2)
    assert seg.ts.shape == (3, 3)
    np.testing.assert_allclose(seg.states.W, ode.states.W, rtol=0, atol=1e-12)
    np.testing.assert_allclose(seg.states.Wp, ode.states.Wp, rtol=0, atol=1e-12)
    one = train_with_resets(s0, sgd, src, jax.random.PRNGKey(0), 60, Reset(10.0, "zeros"), save_every=10,
                            setup=Setup(batch=None, ema_form="flow"))
    plain = train(s0, sgd, src, jax.random.PRNGKey(0), 60, save_every=10, setup=Setup(batch=None, ema_form="flow"))
    np.testing.assert_array_equal(one.states.W[0], plain.states.W)
    assert isinstance(sgd, SGD)


def test_reset_members_and_keep_validation():
    r = Reset([1.0, 2.0], "zeros")
    assert r.members == 2 and r.every == (1.0, 2.0) and r.count(0.0, [4.0, 8.0]) == 4
    with pytest.raises(ValueError, match="same number of reset periods"):
        r.count(0.0, 4.0)
    with pytest.raises(ValueError, match="every"):
        Reset([1.0, -1.0])
    assert Reset(1.0).members is None and "keep" in bd.reset.INITS
    Wp0, Wp = jnp.ones((2, 2)), 3.0 * jnp.eye(2)
    np.testing.assert_array_equal(Reset(1.0, "keep").wp(1, Wp0, None, Wp), Wp)
    np.testing.assert_array_equal(Reset(1.0, "identity", scale=0.5).wp(1, Wp0, None), 0.5 * np.eye(2))
    s0, data = _s0(), bd.Data.isotropic(3, 0.5)
    with pytest.raises(ValueError, match="one end time or one per member"):
        simulate_with_resets(s0, bd.Hyper(), data, [2.0, 4.0, 6.0], r)
    with pytest.raises(ValueError, match="one reset period"):
        modes_with_resets(bd.ModeState.from_pst(p=0.5, s=0.25, tau=1.0), bd.Hyper(), KAPPA, 4.0, r, tau=1.0)
    with pytest.raises(ValueError, match="segment"):
        train_with_resets(s0, from_flow(bd.Hyper(), 0.1), Source.isotropic(3, 0.5), jax.random.PRNGKey(0), 40,
                          Reset(1.0, "zeros"), segment=3)
    with pytest.raises(ValueError, match="the sampled level takes one reset period"):
        train_with_resets(s0, from_flow(bd.Hyper(), 0.1), Source.isotropic(3, 0.5), jax.random.PRNGKey(0), 40, r)
    with pytest.raises(ValueError, match="reset_key="):
        train_with_resets(s0, from_flow(bd.Hyper(), 0.1), Source.isotropic(3, 0.5), jax.random.PRNGKey(0), 40,
                          Reset(1.0))


@pytest.mark.slow
def test_members_are_the_separate_runs_and_keep_is_no_reset():
    # B members in one vmapped program equal B separate calls (solver tolerance); "keep" is the plain run
    s0, data = _s0(), bd.Data.isotropic(3, 0.5)
    ap = np.array([1.0, 10.0])
    st = bd.State(jnp.stack([s0.W, s0.W / np.sqrt(10)]), jnp.stack([s0.Wp, s0.Wp]), jnp.stack([s0.Wa, s0.Wa / np.sqrt(10)]))
    mem = simulate_with_resets(st, bd.Hyper(alpha_p=ap, eta=0.03), data, [8.0, 20.0], Reset([2.0, 5.0], "zeros"),
                               saves=4, ema=False, rtol=1e-10, atol=1e-12)
    assert mem.ts.shape == (2, 4, 5) and bool(jnp.all(mem.succeeded))
    for b, e in enumerate((2.0, 5.0)):
        one = simulate_with_resets(bd.State(st.W[b], st.Wp[b], st.Wa[b]), bd.Hyper(alpha_p=ap[b], eta=0.03), data,
                                   4 * e, Reset(e, "zeros"), saves=4, ema=False, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(mem.states.W[b], one.states.W, rtol=0, atol=1e-12)
    hp = bd.Hyper(eta=0.03, beta=0.5)
    keep = simulate_with_resets(s0, hp, data, 20.0, Reset(5.0, "keep"), saves=4, rtol=1e-10, atol=1e-12)
    plain = bd.simulate(s0, hp, data, 20.0, ts=[5.0, 10.0, 15.0, 20.0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(keep.states.W[:, -1], plain.states.W, rtol=0, atol=1e-9)  # solver restarts: rtol 1e-10
    zeros = simulate_with_resets(s0, hp, data, 20.0, Reset(5.0, "zeros"), saves=4, rtol=1e-10, atol=1e-12)
    assert np.max(np.abs(np.asarray(zeros.states.W[:, -1] - plain.states.W))) > 1e-3  # control: a reset does differ


@pytest.mark.slow
def test_sampled_segments_are_chained_train_calls():
    # minibatch, momentum, random re-draws: the scan of segments equals train(resume=...) chained by hand, and
    # segment= (two segments per period, one compiled program for any period) gives the same run
    import equinox as eqx

    s0, src = _s0(), Source.isotropic(3, 0.5)
    sgd, setup = SGD(lr=0.01, wd=0.02, momentum=0.9, gamma_a=0.99), Setup(batch=16)
    reset, rk, key = Reset(5.0, "random", scale=0.2), jax.random.PRNGKey(5), jax.random.PRNGKey(1)
    seg = train_with_resets(s0, sgd, src, key, 200, reset, reset_key=rk, setup=setup, save_every=10)
    resume, Ws = None, []
    for k in range(4):
        if k > 0:
            resume = eqx.tree_at(lambda t: (t.Wp, t.vWp), resume, (reset.wp(k, s0.Wp, rk), jnp.zeros_like(resume.vWp)))
        r = train(s0, sgd, src, key, 50, setup=setup, save_every=10, resume=resume)
        Ws.append(r.states.W)
        resume = r.final
    np.testing.assert_allclose(seg.states.W, jnp.stack(Ws), rtol=0, atol=1e-13)
    half = train_with_resets(s0, sgd, src, key, 200, reset, reset_key=rk, setup=setup, save_every=5, segment=25)
    assert half.ts.shape == (8, 6)
    np.testing.assert_allclose(half.states.W[1::2, -1], seg.states.W[:, -1], rtol=0, atol=1e-13)
    keep = train_with_resets(s0, sgd, src, key, 200, Reset(5.0, "keep"), setup=setup, save_every=10)
    plain = train(s0, sgd, src, key, 200, setup=setup, save_every=50)
    np.testing.assert_array_equal(keep.states.W[:, -1], plain.states.W[1:])
    assert np.max(np.abs(np.asarray(seg.states.W[:, -1] - plain.states.W[1:]))) > 1e-3  # control: resets differ


@pytest.mark.slow
def test_sampled_level_verdict_on_a_disjoint_seed_set():
    # the predictor_reset figure's sampled row (seeds S_SEEDS) on two disjoint seed sets of its size (4-7 and 8-11,
    # one vmapped run): the same verdict, R3's alive set on every seed, every mode alive (> ALIVE) or dead (< DEAD)
    from byoldyn.figures import reset as fr

    seeds = tuple(range(max(fr.S_SEEDS) + 1, max(fr.S_SEEDS) + 1 + 2 * len(fr.S_SEEDS)))
    assert not set(seeds) & set(fr.S_SEEDS) and seeds == tuple(range(4, 12))
    out = fr.sampled_resets(seeds)
    for f in fr.F_SHORT:
        end = out[f][1][:, -1]
        assert np.all((end > fr.ALIVE) == out["pred"][f]), (f, end)
        assert np.all((end > fr.ALIVE) | (end < fr.DEAD)), (f, end)
    assert int(out["pred"][0.5].sum()) == 3 and int(out["pred"][2.0].sum()) == 4  # the two arms differ
