"""The reduced (Wp, F) flows: Eq. 7 (symmetrized) and Eq. 62 (non-symmetrized) against Lemma 1; Theorem 3."""

import jax.numpy as jnp
import numpy as np
import pytest

import byoldyn as bd
from byoldyn import observables as ob
from byoldyn import theory as th
from byoldyn.flows.modes import ModePST, pst_field, solve_modes
from byoldyn.flows.symmetric import SymState, reduced_field, symmetric_field

SIGMA2 = 0.5
KAPPA = 1.0 + SIGMA2
TOL = dict(rtol=1e-10, atol=1e-12)


def _sym(A):
    return 0.5 * (A + A.T)


def _random(rng, n1=5, n2=3, scale=0.8):
    W = scale * rng.standard_normal((n2, n1))
    Wp = scale * rng.standard_normal((n2, n2))
    return W, Wp


@pytest.mark.parametrize("predictor", ["learned", "symmetric"])
def test_field_equals_lemma1_with_proportional_ema(rng, predictor):
    """Pointwise: Lemma 1 at Wa = τ W, X = I, X' = σ² I gives dWp and dF = dW Wᵀ + W dWᵀ of Eq. 62 / Eq. 7."""
    W, Wp = _random(rng)
    if predictor == "symmetric":
        Wp = _sym(Wp)
    tau = 0.7
    hp = bd.Hyper(alpha_p=1.7, eta=0.13, beta=0.6, eta_p=0.07)
    data = bd.Data.isotropic(5, SIGMA2)
    d = bd.vector_field(bd.State(W, Wp, tau * W), hp, data, predictor=predictor)
    field = symmetric_field if predictor == "symmetric" else reduced_field
    ours = field(SymState(jnp.asarray(Wp), jnp.asarray(W @ W.T), jnp.asarray(tau)), hp, data)
    dF = np.asarray(d.W) @ W.T + W @ np.asarray(d.W).T
    assert np.max(np.abs(np.asarray(ours.Wp) - np.asarray(d.Wp))) <= 1e-12
    assert np.max(np.abs(np.asarray(ours.F) - dF)) <= 1e-12
    assert float(ours.tau) == 0.0  # τ held constant by default
    assert np.max(np.abs(dF)) > 0.1


@pytest.mark.slow
def test_trajectory_equals_simsiam_lemma1(rng):
    """SimSiam (Wa = W, τ ≡ 1), symmetric predictor: Lemma 1 runs give F = W Wᵀ and Wp equal to Eq. 7 runs."""
    W, Wp = _random(rng, n1=4, n2=4, scale=0.6)
    Wp = _sym(Wp)
    hp = bd.Hyper(alpha_p=1.3, eta=0.05, beta=1.0)
    ts = np.linspace(0.0, 10.0, 101)
    lem = bd.simulate(bd.State(W, Wp, W), hp, bd.Data.isotropic(4, SIGMA2), 10.0, ts=ts, ema=False,
                      predictor="symmetric", **TOL)
    assert int(lem.status) == bd.SUCCEEDED
    red = solve_modes(symmetric_field, SymState(jnp.asarray(Wp), jnp.asarray(W @ W.T), jnp.asarray(1.0)), 10.0,
                      ts=ts, args=(hp, KAPPA, False), **TOL)
    assert int(red.status) == bd.SUCCEEDED
    Wt = np.asarray(lem.states.W)
    F_lem = Wt @ np.swapaxes(Wt, 1, 2)
    assert np.max(np.abs(np.asarray(red.states.F) - F_lem)) <= 1e-8
    assert np.max(np.abs(np.asarray(red.states.Wp) - np.asarray(lem.states.Wp))) <= 1e-8
    assert np.max(np.abs(F_lem[-1] - F_lem[0])) > 0.1
    assert float(ob.commutator(F_lem[0], Wp)) > 0.1  # starts far from aligned (Theorem 3 aligns it)


@pytest.mark.slow
def test_evolving_tau_equals_byol_lemma1_single_output():
    """n2 = 1, Wa(0) = 0: Assumption 1 holds exactly in Lemma 1, and the evolving-τ Eq. 7 flow reproduces (F, Wp, τ̂)."""
    rng = np.random.default_rng(3)
    W = 0.5 * rng.standard_normal((1, 4))
    Wp = np.array([[0.3]])
    hp = bd.Hyper(alpha_p=1.5, eta=0.04, beta=0.5)
    ts = np.linspace(0.0, 30.0, 101)
    lem = bd.simulate(bd.State(W, Wp, np.zeros_like(W)), hp, bd.Data.isotropic(4, SIGMA2), 30.0, ts=ts, **TOL)
    s0 = SymState.from_state(bd.State(W, Wp, np.zeros_like(W)))
    red = solve_modes(symmetric_field, s0, 30.0, ts=ts, args=(hp, KAPPA, True), **TOL)
    Wt, Wat = np.asarray(lem.states.W), np.asarray(lem.states.Wa)
    assert np.max(np.abs(np.asarray(red.states.F)[:, 0, 0] - np.sum(Wt**2, axis=(1, 2)))) <= 1e-8
    assert np.max(np.abs(np.asarray(red.states.Wp) - np.asarray(lem.states.Wp))) <= 1e-8
    tau_hat = np.asarray(ob.tau_hat(Wt, Wat))
    assert np.max(np.abs(np.asarray(red.states.tau)[1:] - tau_hat[1:])) <= 1e-7
    assert np.max(np.asarray(ob.wa_correlation(Wt, Wat))[1:]) >= 1 - 1e-12  # Wa ∥ W: A1 is exact here
    assert tau_hat[-1] > 0.5


@pytest.mark.slow
def test_aligned_start_decouples_into_modes(rng):
    """Wp = U diag(p) Uᵀ, F = U diag(s) Uᵀ: Eq. 7 keeps U fixed and (p_j, s_j) follow Eqs. 11-12 (section 7.1)."""
    n = 4
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    p0, s0 = np.array([0.6, 0.3, 0.1, -0.2]), np.array([0.5, 0.05, 0.3, 0.2])
    hp = bd.Hyper(alpha_p=1.2, eta=0.05, beta=0.0)
    tau = 0.9
    y0 = SymState(jnp.asarray(U @ np.diag(p0) @ U.T), jnp.asarray(U @ np.diag(s0) @ U.T), jnp.asarray(tau))
    sym = solve_modes(symmetric_field, y0, 20.0, args=(hp, KAPPA, False), **TOL)
    modes = solve_modes(pst_field, ModePST(jnp.asarray(p0), jnp.asarray(s0), jnp.full(n, tau)), 20.0,
                        args=(hp, KAPPA, False), **TOL)
    rot = lambda A: np.einsum("ji,tjk,kl->til", U, np.asarray(A), U)  # Uᵀ A(t) U
    Wp_u, F_u = rot(sym.states.Wp), rot(sym.states.F)
    eye = np.eye(n, dtype=bool)
    assert np.max(np.abs(Wp_u[:, ~eye])) <= 1e-9 and np.max(np.abs(F_u[:, ~eye])) <= 1e-9  # U stays the eigenbasis
    assert np.max(np.abs(Wp_u[:, eye] - np.asarray(modes.states.p))) <= 1e-8
    assert np.max(np.abs(F_u[:, eye] - np.asarray(modes.states.s))) <= 1e-8
    assert np.max(np.abs(np.asarray(modes.states.p)[-1] - p0)) > 0.05


def test_commutator_identity_theorem3(rng):
    """Exact check 3 (section 14): d[F, Wp]/dt from Eq. 7 equals −L K − K L, with η_p ≠ η too."""
    W, Wp = _random(rng, n1=4, n2=4)
    state = SymState(jnp.asarray(_sym(Wp)), jnp.asarray(W @ W.T), jnp.asarray(0.6))
    hp = bd.Hyper(alpha_p=1.4, eta=0.07, beta=0.3, eta_p=0.02)
    d = symmetric_field(state, hp, KAPPA, True)
    F, P, dF, dP = (np.asarray(a) for a in (state.F, state.Wp, d.F, d.Wp))
    L = F @ P - P @ F
    dL = dF @ P + F @ dP - dP @ F - P @ dF
    K = np.asarray(th.K(state, hp, KAPPA))
    assert np.max(np.abs(dL - (-L @ K - K @ L))) <= 1e-12
    assert np.max(np.abs(L)) > 0.1


@pytest.mark.slow
@pytest.mark.parametrize("evolve_tau", [False, True], ids=["tau-const", "tau-evolving"])
def test_theorem3_commutator_bound_along_run(rng, evolve_tau):
    """Theorem 3: with λ0 = inf_t λ_min(K(t)) > 0, ‖[F, Wp](t)‖_F <= e^{−2 λ0 t} ‖[F, Wp](0)‖_F along Eq. 7 runs."""
    W, Wp = _random(rng, n1=4, n2=4, scale=0.7)
    hp = bd.Hyper(alpha_p=1.0, eta=0.2, beta=0.5)  # 3η/2 > τ²/(4κ) for τ <= 1: K > 0 for every state
    tau0 = 0.0 if evolve_tau else 1.0
    y0 = SymState(jnp.asarray(_sym(Wp)), jnp.asarray(W @ W.T), jnp.asarray(tau0))
    ts = np.linspace(0.0, 8.0, 101)
    sol = solve_modes(symmetric_field, y0, 8.0, ts=ts, args=(hp, KAPPA, evolve_tau), **TOL)
    assert int(sol.status) == bd.SUCCEEDED
    lam = np.asarray(th.lambda_min_K(sol.states, hp, KAPPA))
    lam0 = float(np.min(lam))
    assert lam0 > 0.1
    L = np.asarray(ob.commutator(sol.states.F, sol.states.Wp))
    bound = np.exp(-2.0 * lam0 * ts) * L[0]
    assert np.all(L <= bound * (1 + 1e-9))
    assert L[-1] / L[0] < 1e-2  # the commutator really decays (alignment)
    assert L[0] > 0.1
