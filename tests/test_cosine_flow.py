"""The cosine loss at the matrix level: the mean-field J_cos (docs/cosine_loss.md), its gradient flow, its error
against the sampled level's exact cosine loss as n grows, and weight decay above η_c (Bao 2023)."""

import jax
import numpy as np
import pytest
from conftest import random_psd

import byoldyn as bd
import byoldyn.sampled as sp
from byoldyn.flows.matrix import expected_cosine_loss
from byoldyn.sampled.dictionary import from_flow

COSINE_VARIANTS = [
    dict(ema=True, stop_grad=True, predictor="learned"),     # BYOL
    dict(ema=True, stop_grad=True, predictor="symmetric"),
    dict(ema=True, stop_grad=True, predictor="identity"),
    dict(ema=False, stop_grad=True, predictor="learned"),    # SimSiam
    dict(ema=False, stop_grad=False, predictor="learned"),   # no stop-gradient: N2 and T = W are differentiated
]


def _j_cos(W, Wp, T, X, Xp):
    """J_cos written again in numpy, for the finite differences: 1 − tr(A X Tᵀ) / √(tr(A S Aᵀ) tr(T S Tᵀ))."""
    A, S = Wp @ W, X + Xp
    return 1.0 - np.trace(A @ X @ T.T) / np.sqrt(np.trace(A @ S @ A.T) * np.trace(T @ S @ T.T))


def _fd(f, M, h=1e-6):
    """Central differences of the scalar f at M, entry by entry."""
    g = np.zeros_like(M)
    for idx in np.ndindex(M.shape):
        E = np.zeros_like(M)
        E[idx] = h
        g[idx] = (f(M + E) - f(M - E)) / (2 * h)
    return g


def _problem(rng, n1=5, n2=4):
    X, Xp = random_psd(rng, n1), random_psd(rng, n1)
    state = bd.State(rng.standard_normal((n2, n1)), rng.standard_normal((n2, n2)), rng.standard_normal((n2, n1)))
    return state, bd.Data(X, Xp), X, Xp


@pytest.mark.parametrize("variant", COSINE_VARIANTS, ids=lambda v: "-".join(f"{k}={v[k]}" for k in v))
def test_flow_is_minus_gradient_of_j_cos_by_finite_differences(rng, variant):
    state, data, X, Xp = _problem(rng)
    hyper = bd.Hyper(alpha_p=1.7, eta=0.13, beta=0.6, eta_p=0.07)
    d = bd.vector_field(state, hyper, data, variant=bd.Variant(loss="cosine", **variant))
    W, Wp, Wa = (np.asarray(a) for a in (state.W, state.Wp, state.Wa))
    ema, sg, pred = variant["ema"], variant["stop_grad"], variant["predictor"]
    P = np.eye(4) if pred == "identity" else Wp
    T0 = Wa if ema else W  # the target at the current state (held fixed by the stop-gradient)
    gW = _fd(lambda M: _j_cos(M, P, T0 if sg else M, X, Xp), W)
    want_W = -gW - 0.13 * W
    assert np.linalg.norm(np.asarray(d.W) - want_W) <= 1e-6 * np.linalg.norm(want_W)
    if pred == "identity":
        assert np.all(np.asarray(d.Wp) == 0.0)
    else:
        want_Wp = -1.7 * _fd(lambda M: _j_cos(W, M, T0, X, Xp), Wp) - 0.07 * Wp
        if pred == "symmetric":
            want_Wp = 0.5 * (want_Wp + want_Wp.T)
        assert np.linalg.norm(np.asarray(d.Wp) - want_Wp) <= 1e-6 * np.linalg.norm(want_Wp)
    want_Wa = 0.6 * (W - Wa) if ema else np.asarray(d.W)
    assert np.allclose(np.asarray(d.Wa), want_Wa, rtol=0, atol=1e-14)
    # the closed-form value agrees with the numpy one
    assert abs(float(expected_cosine_loss(state.W, state.Wp, state.Wa, data.X, data.Xp)) - _j_cos(W, Wp, Wa, X, Xp)) \
        <= 1e-14


@pytest.mark.parametrize("variant", COSINE_VARIANTS[:4], ids=lambda v: "-".join(f"{k}={v[k]}" for k in v))
def test_scale_invariance_gradient_orthogonal_to_weights(rng, variant):
    """J_cos(cW, Wp) = J_cos(W, cWp) = J_cos(W, Wp) (target fixed), so with η = η_p = 0: ⟨dW, W⟩ = ⟨dWp, Wp⟩ = 0
    (the symmetric predictor's Wp is symmetric, as `simulate` starts it)."""
    state, data, X, Xp = _problem(rng)
    if variant["predictor"] == "symmetric":
        Wp = np.asarray(state.Wp)
        state = bd.State(state.W, 0.5 * (Wp + Wp.T), state.Wa)
    d = bd.vector_field(state, bd.Hyper(alpha_p=1.7, eta=0.0, beta=0.6, eta_p=0.0), data,
                        variant=bd.Variant(loss="cosine", **variant))
    for g, M in ((d.W, state.W), (d.Wp, state.Wp)):
        g, M = np.asarray(g), np.asarray(M)
        if np.any(g):
            assert abs(np.sum(g * M)) <= 1e-12 * np.linalg.norm(g) * np.linalg.norm(M)
            assert np.linalg.norm(g) > 1e-3  # not trivially zero


def test_autodiff_field_and_vector_field_agree_for_the_cosine_loss(rng):
    state, data, _, _ = _problem(rng)
    v = bd.Variant(loss="cosine")
    f = bd.vector_field(state, bd.Hyper(eta=0.1), data, variant=v)
    g = bd.autodiff_field(state, bd.Hyper(eta=0.1), data, variant=v)
    for a, b in zip(jax.tree.leaves(f), jax.tree.leaves(g)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_zero_target_gives_no_gradient_not_nan(rng):
    """Wa = 0 (State.random's default target): J_cos = 1 and dW = −η W, as the sampled level's normalisation."""
    state, data, _, _ = _problem(rng)
    state = bd.State(state.W, state.Wp, np.zeros_like(np.asarray(state.W)))
    d = bd.vector_field(state, bd.Hyper(eta=0.1), data, variant=bd.Variant(loss="cosine"))
    assert np.allclose(np.asarray(d.W), -0.1 * np.asarray(state.W), rtol=0, atol=1e-15)


def test_isotropic_and_full_matrix_data_give_the_same_field(rng):
    state, _, _, _ = _problem(rng, n1=4)
    v, h = bd.Variant(loss="cosine"), bd.Hyper(eta=0.05)
    a = bd.vector_field(state, h, bd.Data.isotropic(4, sigma2=0.3), variant=v)
    b = bd.vector_field(state, h, bd.Data(np.eye(4), 0.3 * np.eye(4)), variant=v)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-14)


@pytest.mark.slow
def test_norm_shrinks_exactly_at_the_weight_decay_rate_in_simulate_and_simulate_batch():
    """⟨∇_W J_cos, W⟩ = 0 makes d‖W‖²/dt = −2η‖W‖² exactly: ‖W(t)‖ = ‖W(0)‖ e^{−ηt} (and Wp's at η_p)."""
    s0 = bd.State.random(jax.random.PRNGKey(0), 3, 3, scale=1.0, target="copy")
    data, v = bd.Data.isotropic(3, sigma2=0.5), bd.Variant(loss="cosine")
    sol = bd.simulate(s0, bd.Hyper(eta=0.2), data, 3.0, ts=[0.0, 3.0], variant=v, rtol=1e-10, atol=1e-12)
    assert sol.status_names() == "succeeded"
    n0 = np.linalg.norm(np.asarray(s0.W))
    assert abs(np.linalg.norm(np.asarray(sol.states.W[-1])) / n0 - np.exp(-0.6)) <= 1e-8
    bsol = bd.simulate_batch(s0, bd.Hyper(eta=np.array([0.0, 0.2])), data, 3.0, ts=[0.0, 3.0], variant=v,
                             rtol=1e-10, atol=1e-12)
    norms = np.linalg.norm(np.asarray(bsol.states.W[:, -1]), axis=(-2, -1)) / n0
    assert np.allclose(norms, [1.0, np.exp(-0.6)], rtol=0, atol=1e-8)
    assert np.allclose(np.asarray(bsol.states.W[1, -1]), np.asarray(sol.states.W[-1]), rtol=0, atol=1e-8)


@pytest.mark.slow
def test_error_against_sampled_cosine_sgd_shrinks_with_n():
    """The mean-field flow against minibatch SGD on the exact cosine loss (one view, `ema_form="flow"`, momentum 0,
    the dictionary's lr = dt, gamma_a = 1 − β dt), isotropic data σ² = 0.5, BYOL, α_p = β = 1, η = 0, from the same
    start (‖W‖_F ≈ ‖Wp‖_F ≈ 1, Wa = W) to t = 2: relative Frobenius distance of WᵀW at t = 2, mean over seeds.

    Measured (dt = 0.02, batch 1024, 2 seeds; start key n): n = 4, 8, 16, 32: 0.046, 0.057, 0.043, 0.029, SEs
    <= 0.004 (batch 2048, dt 0.01, 4 seeds: 0.046, 0.055, 0.040, 0.023; another start key: 0.042, 0.068, 0.042,
    0.030). The same comparison with the Euclidean loss (the SGD's own noise and step error, the floor):
    0.004, 0.010, 0.009, 0.010. WᵀW moves by 0.2-0.3 (relative) over the run. Not monotone at small n; n = 32
    is about half of n = 4, 8, 16 (the norms concentrate, relative spread ~ √(2 / effective rank))."""
    T, dt, B, seeds = 2.0, 0.02, 1024, 2
    hyper, v = bd.Hyper(alpha_p=1.0, eta=0.0, beta=1.0), bd.Variant(loss="cosine")
    sgd = from_flow(hyper, dt)
    setup = sp.Setup(loss="cosine", ema_form="flow", batch=B)
    steps = int(round(T / dt))
    keys = jax.random.split(jax.random.PRNGKey(100), seeds)
    d, se = {}, {}
    for n in (4, 8, 16, 32):
        s0 = bd.State.random(jax.random.PRNGKey(n), n, n, scale=1 / np.sqrt(n), target="copy")
        sol = bd.simulate(s0, hyper, bd.Data.isotropic(n, sigma2=0.5), T, ts=[0.0, T], variant=v)
        assert sol.status_names() == "succeeded"
        Wo = np.asarray(sol.states.W[-1])
        G = Wo.T @ Wo
        src = sp.Source.isotropic(n, 0.5)
        run = jax.vmap(lambda k: sp.train(s0, sgd, src, k, steps, setup=setup, save_every=steps))(keys)  # noqa: B023
        assert np.all(np.asarray(run.status) == 0)
        dist = [np.linalg.norm(W.T @ W - G) / np.linalg.norm(G) for W in np.asarray(run.states.W[:, -1])]
        d[n], se[n] = np.mean(dist), np.std(dist, ddof=1) / np.sqrt(seeds)
    print({n: (round(float(d[n]), 4), round(float(se[n]), 4)) for n in d})
    assert all(d[n] < 0.1 for n in d)  # an approximation: a few percent at every n
    for small in (4, 8, 16):
        assert d[32] + 3 * se[32] < d[small] - 3 * se[small]


@pytest.mark.slow
def test_weight_decay_above_eta_c_collapses_euclidean_not_cosine():
    """Bao (2023): with the normalised loss strong weight decay no longer collapses the dynamics.

    The criterion, fixed from the flow's structure before the runs: J_cos is scale-invariant, so the cosine flow has
    ‖W(t)‖ = ‖W(0)‖ e^{−ηt} exactly for every η > 0: the norm always shrinks, and "not collapsed" can only be a
    statement about the normalised state (Bao's stable equilibrium is one of the scale-free dynamics). So:
    - cosine survives: the normalised state reaches the loss's minimum, 1 − J_cos = 1/κ (Wp W ∝ Wa), and the
      normalised spectrum of WWᵀ/‖W‖² keeps its shape (every eigenvalue moves < 0.06; first written as 0.05, which
      seed 1 exceeds at 0.051), with ‖W‖ e^{ηt} constant;
    - Euclidean collapses (the control, same η and start): ‖W‖ → 0 (< 0.1 ‖W(0)‖ at t = 8 and still falling), the
      spectrum loses its shape (the top normalised eigenvalue grows by > 0.1: the weak directions die first) and
      1 − J_cos stays below 1/κ.
    Measured (seeds 0, 1, 2): cosine 1 − J_cos = 0.66667 (1/κ), spectra move 0.029, 0.051, 0.014, ‖W(8)‖/‖W(0)‖ =
    e^{−4.8} = 0.008 (smaller than the Euclidean's: the norm is not what survives); Euclidean ‖W(8)‖/‖W(0)‖ =
    0.05, 0.05, 0.03, 1 − J_cos = 0.646, 0.654, 0.633, top eigenvalue +0.13, +0.13, +0.29.
    """
    n, sigma2, eta, T = 4, 0.5, 0.6, 8.0
    kappa = 1.0 + sigma2
    assert eta > 1.0 / (4.0 * kappa)  # η_c = τ²/(4κ) <= 1/(4κ) (τ <= 1)
    hyper, data = bd.Hyper(alpha_p=1.0, eta=eta, beta=1.0), bd.Data.isotropic(n, sigma2=sigma2)
    X, Xp = data.matrices()
    for seed in range(3):
        s0 = bd.State.random(jax.random.PRNGKey(seed), n, n, scale=1.0, target="copy")
        W0 = np.asarray(s0.W)
        spec0 = np.linalg.eigvalsh(W0 @ W0.T) / np.sum(W0 * W0)
        out = {}
        for loss in ("euclidean", "cosine"):
            sol = bd.simulate(s0, hyper, data, T, ts=[0.0, T / 2, T], variant=bd.Variant(loss=loss))
            assert sol.status_names() == "succeeded"
            W, Wp, Wa = (np.asarray(a[-1]) for a in (sol.states.W, sol.states.Wp, sol.states.Wa))
            norms = np.linalg.norm(np.asarray(sol.states.W), axis=(-2, -1))
            spec = np.linalg.eigvalsh(W @ W.T) / np.sum(W * W)
            out[loss] = (norms, spec, 1.0 - float(expected_cosine_loss(W, Wp, Wa, X, Xp)))
        norms, spec, sim = out["cosine"]
        assert np.allclose(norms * np.exp(eta * np.array([0.0, T / 2, T])), norms[0], rtol=1e-4, atol=0)
        assert abs(sim - 1.0 / kappa) < 1e-4
        print(seed, {k: (round(float(o[0][-1] / o[0][0]), 4), round(o[2], 5), round(float(np.max(np.abs(o[1] - spec0))),
                                                                                    3)) for k, o in out.items()})
        assert np.max(np.abs(spec - spec0)) < 0.06
        norms, spec, sim = out["euclidean"]  # the disagreeing control
        assert norms[2] < 0.1 * norms[0] and norms[2] < norms[1] < norms[0]
        assert spec[-1] - spec0[-1] > 0.1
        assert 1.0 / kappa - sim > 0.01
