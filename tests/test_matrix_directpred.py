"""DirectPred and DirectCopy at the matrix level: Wp = g(F̂) in Eq. 3 (THEORY.md 2, 10.1-10.2, 15.13).

The reference is an independent numpy transcription of the same equations (numpy `eigh`), integrated
by scipy's DOP853 at rtol 1e-12.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_psd
from scipy.integrate import solve_ivp

import byoldyn as bd
from byoldyn import observables as ob

N1, N2 = 4, 3


def g_numpy(F, name, form, eps):
    """Wp = g(F̂): Eq. 18 ("paper"), the official code's boost_scale (10.2, "code"), DirectCopy."""
    if name == "directcopy":
        return F / np.linalg.norm(F, 2) + eps * np.eye(len(F))
    s, U = np.linalg.eigh(0.5 * (F + F.T))
    s = np.clip(s, 0.0, None)
    if form == "paper":
        p = np.sqrt(s) + eps * s.max()
    else:
        p = np.maximum(np.sqrt(s / s.max()) + eps, 1e-4)
    return (U * p) @ U.T


def field_numpy(W, Wa, Fhat, X, Xp, *, eta, beta, ema, name, form, eps, beta_F):
    """Eq. 3 with Wp = g(F̂), Eq. 4 (or Wa = W), dF̂ = beta_F (W (X + X') Wᵀ - F̂)."""
    S = X + Xp
    Fa = W @ S @ W.T
    Wp = g_numpy(Fa if beta_F is None else Fhat, name, form, eps)
    T = Wa if ema else W
    G = -Wp @ W @ S + T @ X
    dW = Wp.T @ G - eta * W
    dWa = beta * (W - Wa) if ema else dW
    dF = None if beta_F is None else beta_F * (Fa - Fhat)
    return dW, dWa, dF, Wp


def _problem(seed=0, isotropic=False, scale=1.0):
    rng = np.random.default_rng(seed)
    if isotropic:
        data = bd.Data.isotropic(N1, 0.3)
    else:
        data = bd.Data(random_psd(rng, N1), random_psd(rng, N1))
    W = scale * rng.standard_normal((N2, N1)) / np.sqrt(N1)
    state = bd.State(W, rng.standard_normal((N2, N2)) / np.sqrt(N2), 0.5 * W + 0.1 * rng.standard_normal((N2, N1)))
    hyper = bd.Hyper(alpha_p=1.0, eta=0.05, beta=0.5)
    return state, hyper, data


CASES = [
    dict(name="directpred", form="paper", eps=0.1, beta_F=None),
    dict(name="directpred", form="code", eps=0.1, beta_F=None),
    dict(name="directcopy", form=None, eps=0.1, beta_F=None),
    dict(name="directpred", form="paper", eps=0.1, beta_F=2.0),
    dict(name="directpred", form="code", eps=0.1, beta_F=2.0),
    dict(name="directcopy", form=None, eps=0.1, beta_F=2.0),
]


def _predictor(c):
    if c["name"] == "directcopy":
        return bd.DirectCopy(eps=c["eps"], beta_F=c["beta_F"])
    return bd.DirectPred(eps=c["eps"], form=c["form"], beta_F=c["beta_F"])


def _ids(c):
    return f"{c['name']}-{c['form']}-betaF={c['beta_F']}"


@pytest.mark.parametrize("ema", [True, False], ids=["byol", "simsiam"])
@pytest.mark.parametrize("c", CASES, ids=_ids)
def test_field_by_hand_and_autodiff(c, ema):
    state, hyper, data = _problem()
    pred = _predictor(c)
    X, Xp = (np.asarray(a) for a in data.matrices())
    Fhat = None
    if c["beta_F"] is not None:  # an F̂ that is not the current correlation
        Fhat = np.asarray(bd.observables.F(state.W, data)) + 0.2 * np.eye(N2)
        state = bd.State(state.W, state.Wp, state.Wa, Fhat=Fhat)
    dW, dWa, dF, _ = field_numpy(np.asarray(state.W), np.asarray(state.Wa), Fhat, X, Xp, eta=0.05, beta=0.5,
                                 ema=ema, **c)
    for field in (bd.vector_field, bd.autodiff_field):
        f = field(state, hyper, data, ema=ema, predictor=pred)
        np.testing.assert_allclose(f.W, dW, rtol=0, atol=1e-12)
        np.testing.assert_allclose(f.Wa, dWa, rtol=0, atol=1e-12)
        assert np.all(np.asarray(f.Wp) == 0)  # no gradient flow on Wp
        if dF is None:
            assert f.Fhat is None
        else:
            np.testing.assert_allclose(f.Fhat, dF, rtol=0, atol=1e-12)
    assert np.max(np.abs(dW)) > 0.05


@pytest.mark.slow
@pytest.mark.parametrize("c", CASES, ids=_ids)
def test_flow_against_scipy_dop853(c):
    """The whole trajectory, W, Wa, F̂ and the saved Wp = g(F̂), to 1e-8 (float64)."""
    state, hyper, data = _problem(seed=1)
    X, Xp = (np.asarray(a) for a in data.matrices())
    bF = c["beta_F"]
    W0, Wa0 = np.asarray(state.W), np.asarray(state.Wa)
    F0 = W0 @ (X + Xp) @ W0.T
    k = N2 * N1

    def rhs(t, y):
        W, Wa = y[:k].reshape(N2, N1), y[k:2 * k].reshape(N2, N1)
        Fhat = None if bF is None else y[2 * k:].reshape(N2, N2)
        dW, dWa, dF, _ = field_numpy(W, Wa, Fhat, X, Xp, eta=0.05, beta=0.5, ema=True, **c)
        return np.concatenate([dW.ravel(), dWa.ravel()] + ([] if dF is None else [dF.ravel()]))

    ts = np.linspace(0.0, 4.0, 9)
    y0 = np.concatenate([W0.ravel(), Wa0.ravel()] + ([] if bF is None else [F0.ravel()]))
    ref = solve_ivp(rhs, (0.0, 4.0), y0, method="DOP853", t_eval=ts, rtol=1e-12, atol=1e-12)
    assert ref.success
    sol = bd.simulate(state, hyper, data, 4.0, ts=jnp.asarray(ts), predictor=_predictor(c), rtol=1e-11, atol=1e-12)
    assert int(sol.status) == bd.SUCCEEDED
    Y = ref.y.T
    np.testing.assert_allclose(sol.states.W, Y[:, :k].reshape(-1, N2, N1), rtol=0, atol=1e-8)
    np.testing.assert_allclose(sol.states.Wa, Y[:, k:2 * k].reshape(-1, N2, N1), rtol=0, atol=1e-8)
    if bF is None:
        assert sol.states.Fhat is None
        Fs = [W @ (X + Xp) @ W.T for W in Y[:, :k].reshape(-1, N2, N1)]
    else:
        Fs = Y[:, 2 * k:].reshape(-1, N2, N2)
        np.testing.assert_allclose(sol.states.Fhat, Fs, rtol=0, atol=1e-8)
    Wp_ref = np.stack([g_numpy(F, c["name"], c["form"], c["eps"]) for F in Fs])
    np.testing.assert_allclose(sol.states.Wp, Wp_ref, rtol=0, atol=1e-8)  # the saved Wp is g(F̂)
    assert np.max(np.abs(Y[-1, :k] - Y[0, :k])) > 0.05  # it moved


@pytest.mark.slow
def test_fixed_step_is_numpy_euler():
    """`dt` mode: each step y <- y + dt f(y) with the numpy field (beta_F finite), to rounding."""
    c = CASES[4]
    state, hyper, data = _problem(seed=2)
    X, Xp = (np.asarray(a) for a in data.matrices())
    W, Wa = np.asarray(state.W), np.asarray(state.Wa)
    Fh = W @ (X + Xp) @ W.T
    dt, n = 0.05, 40
    for _ in range(n):
        dW, dWa, dF, _ = field_numpy(W, Wa, Fh, X, Xp, eta=0.05, beta=0.5, ema=True, **c)
        W, Wa, Fh = W + dt * dW, Wa + dt * dWa, Fh + dt * dF
    sol = bd.simulate(state, hyper, data, n * dt, ts=jnp.asarray([0.0, n * dt]), dt=dt, predictor=_predictor(c))
    np.testing.assert_allclose(sol.states.W[-1], W, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.states.Fhat[-1], Fh, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sol.states.Wp[-1], g_numpy(Fh, "directpred", "code", 0.1), rtol=0, atol=1e-12)


@pytest.mark.slow
def test_eigenvectors_aligned_by_construction():
    """Theorem 3's alignment holds at every save by construction (isotropic data: F̂ = κ F), and through
    `observe`; the learned predictor from the same start is not aligned (negative control)."""
    state, hyper, data = _problem(seed=3, isotropic=True)
    ts = jnp.linspace(0.0, 5.0, 11)
    align = lambda t, y: ob.eigen_alignment(ob.F(y.W, data), y.Wp)[1]
    for pred in ("directpred", "directcopy"):
        sol = bd.simulate(state, hyper, data, 5.0, ts=ts, predictor=pred, rtol=1e-9, atol=1e-12)
        cos = ob.eigen_alignment(ob.F(sol.states.W, data), sol.states.Wp)[1]
        np.testing.assert_allclose(cos, 1.0, rtol=0, atol=1e-10)
        np.testing.assert_allclose(ob.commutator_normalized(ob.F(sol.states.W, data), sol.states.Wp), 0.0,
                                   rtol=0, atol=1e-10)
    # the observe path sees the synced Wp
    seen = bd.simulate(state, hyper, data, 5.0, ts=ts, predictor="directpred", rtol=1e-9, atol=1e-12, observe=align)
    np.testing.assert_allclose(seen.observed, 1.0, rtol=0, atol=1e-10)
    # a finite beta_F: Wp is aligned with F̂ (not with the current F)
    sol = bd.simulate(state, hyper, data, 5.0, ts=ts, predictor=bd.DirectPred(beta_F=0.5), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ob.eigen_alignment(sol.states.Fhat, sol.states.Wp)[1], 1.0, rtol=0, atol=1e-10)
    # negative control: a learned Wp starts random, not aligned
    learned = bd.simulate(state, hyper, data, 5.0, ts=ts, rtol=1e-9, atol=1e-12, observe=align)
    assert np.min(np.asarray(learned.observed)[0]) < 0.9


@pytest.mark.slow
def test_batch_equals_simulate():
    state, hyper, data = _problem(seed=4)
    pred = bd.DirectPred(beta_F=1.0)
    ts = jnp.linspace(0.0, 2.0, 5)
    Ws = jnp.stack([state.W, 0.7 * state.W])
    batch = bd.State(Ws, jnp.stack([state.Wp] * 2), jnp.stack([state.Wa] * 2))
    sb = bd.simulate_batch(batch, hyper, data, 2.0, ts=ts, predictor=pred, rtol=1e-10, atol=1e-12)
    for i in range(2):
        s = bd.State(Ws[i], state.Wp, state.Wa)
        one = bd.simulate(s, hyper, data, 2.0, ts=ts, predictor=pred, rtol=1e-10, atol=1e-12)
        for name in ("W", "Wp", "Wa", "Fhat"):
            np.testing.assert_allclose(getattr(sb.states, name)[i], getattr(one.states, name), rtol=0, atol=1e-13)


@pytest.mark.slow
def test_validation():
    state, hyper, data = _problem()
    with pytest.raises(ValueError, match="needs the state's Fhat"):
        bd.vector_field(state, hyper, data, predictor=bd.DirectPred(beta_F=1.0))
    with pytest.raises(ValueError, match="predictor must be one of"):
        bd.simulate(state, hyper, data, 1.0, predictor="diagonal")
    with pytest.raises(ValueError, match="Fhat must be symmetric"):
        bd.State(state.W, state.Wp, state.Wa, Fhat=np.triu(np.ones((N2, N2))))
    # Fhat given to a predictor that does not use it: dFhat = 0, structure kept
    s = bd.State(state.W, state.Wp, state.Wa, Fhat=np.eye(N2))
    f = bd.vector_field(s, hyper, data, predictor="directpred")
    assert np.all(np.asarray(f.Fhat) == 0)
    # the initial F̂ of simulate: state0.Fhat if given
    sol = bd.simulate(s, hyper, data, 1.0, ts=jnp.asarray([0.0, 1.0]), predictor=bd.DirectCopy(beta_F=1.0))
    np.testing.assert_allclose(sol.states.Fhat[0], np.eye(N2), rtol=0, atol=0)


@pytest.mark.slow
def test_batch_isotropic_data_per_member():
    """A sigma2 per member: F̂(0) = (1 + sigma2_b) W Wᵀ per member, as in the unbatched solve."""
    state, hyper, _ = _problem(seed=5)
    s2 = np.array([0.1, 0.6])
    ts = jnp.linspace(0.0, 1.0, 3)
    pred = bd.DirectCopy(beta_F=1.5)
    sb = bd.simulate_batch(state, hyper, bd.Data.isotropic(N1, s2), 1.0, ts=ts, predictor=pred, rtol=1e-10,
                           atol=1e-12)
    for i in range(2):
        one = bd.simulate(state, hyper, bd.Data.isotropic(N1, s2[i]), 1.0, ts=ts, predictor=pred, rtol=1e-10,
                          atol=1e-12)
        np.testing.assert_allclose(sb.states.Fhat[i], one.states.Fhat, rtol=0, atol=1e-13)
        np.testing.assert_allclose(sb.states.Wp[i], one.states.Wp, rtol=0, atol=1e-13)
    W0 = np.asarray(state.W)
    np.testing.assert_allclose(sb.states.Fhat[1, 0], 1.6 * W0 @ W0.T, rtol=0, atol=1e-14)


def _modes_run(pred, t1, ts, atol=1e-12):
    """n = 4 isotropic (kappa = 1.3), eta = 0.05, beta = 0.5, one small random start (F's spectrum
    0.72, 0.41, 0.045, 8.8e-4)."""
    data = bd.Data.isotropic(4, 0.3)
    state = bd.State.random(jax.random.PRNGKey(0), 4, 4, scale=0.5)
    hyper = bd.Hyper(alpha_p=1.0, eta=0.05, beta=0.5)
    return bd.simulate(state, hyper, data, t1, ts=jnp.asarray(ts), predictor=pred, rtol=1e-10, atol=atol)


@pytest.mark.slow
def test_eq18_keeps_every_mode_where_learned_collapses_two():
    """Eq. 18 (p = sqrt(s_F̂) + eps max s_F̂, F̂ = kappa F) from the same start as the learned Wp: all four
    modes survive, at the closed-form fixed point; the learned predictor keeps two (negative control).

    Fixed point (Wa = W, tau = 1): p (1 - kappa p) = eta, the stable root p* = (1 + sqrt(1 - 4 kappa eta)) / 2 kappa
    (THEORY.md 7.4); learned (alpha_p = 1, Theorem 1): s = p*²; Eq. 18 with all s_j equal:
    u + eps u² = p*, u = sqrt(kappa s), so s = u² / kappa.
    """
    kappa, eta, eps = 1.3, 0.05, 0.1
    p = (1 + np.sqrt(1 - 4 * kappa * eta)) / (2 * kappa)
    u = (-1 + np.sqrt(1 + 4 * eps * p)) / (2 * eps)
    dp = _modes_run(bd.DirectPred(eps=eps, form="paper"), 200.0, [0.0, 200.0])
    learned = _modes_run("learned", 200.0, [0.0, 200.0])
    s0 = np.asarray(ob.spectrum_F(ob.F(dp.states.W[0])))
    assert s0[-1] < 1e-3 and s0[0] > 0.5  # the start: one small mode
    np.testing.assert_allclose(ob.spectrum_F(ob.F(dp.states.W[-1])), u * u / kappa, rtol=0, atol=1e-8)
    s_l = np.asarray(ob.spectrum_F(ob.F(learned.states.W[-1])))
    np.testing.assert_allclose(s_l[:2], p * p, rtol=0, atol=1e-8)
    assert np.all(np.abs(s_l[2:]) < 1e-10)
    assert int(ob.n_modes(ob.F(dp.states.W[-1]))) == 4 and int(ob.n_modes(ob.F(learned.states.W[-1]))) == 2


@pytest.mark.slow
@pytest.mark.parametrize("pred", [bd.DirectPred(eps=0.1, form="code"), bd.DirectCopy(eps=0.1)], ids=["code", "copy"])
def test_scale_free_forms_collapse_in_the_l2_flow(pred):
    """The code form (10.2) and DirectCopy fix p_max = 1 + eps whatever the scale of F̂, so under Eq. 1's
    unnormalized loss every mode decays: the spectrum equalizes (p_j -> q = 1 + eps for all j) and
    W ~ e^{-rt} with the target lagging, tau = beta / (beta - r), r = eta + q (kappa q - tau), i.e.
    r² - (beta + c) r + beta (c - q) = 0 with c = eta + kappa q² (smaller root). The paper's cosine loss
    removes the scale; here it is the collapse rate of s_j = e^{-2rt}."""
    kappa, eta, beta, q = 1.3, 0.05, 0.5, 1.1
    c = eta + kappa * q * q
    r = ((beta + c) - np.sqrt((beta + c) ** 2 - 4 * beta * (c - q))) / 2
    sol = _modes_run(pred, 125.0, [0.0, 100.0, 125.0], atol=1e-30)
    s = np.asarray(ob.spectrum_F(ob.F(sol.states.W)))
    rate = np.log(s[2] / s[1]) / 25.0
    np.testing.assert_allclose(rate, -2 * r, rtol=1e-6)
    np.testing.assert_allclose(ob.tau_hat(sol.states.W[-1], sol.states.Wa[-1]), beta / (beta - r), rtol=1e-6)
    np.testing.assert_allclose(s[-1] / s[-1, 0], 1.0, rtol=1e-6)  # isotropic spectrum
    assert s[-1, 0] < 1e-12 < s[0, -1]  # negative control: the start has four modes above 1e-4
