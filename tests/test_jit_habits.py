"""JAX's own habits hold: `simulate`, `simulate_batch` and the mode solvers run under `jax.jit` and
`jax.vmap` in float32 (the default precision) and float64, and give the same numbers as the eager call.

Validation runs at the boundary: it checks concrete values and leaves traced ones alone.
conftest enables float64 for the whole session, so float32 is entered with `jax.enable_x64(False)`, which
restores the global setting on exit.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import byoldyn as bd
from byoldyn.flows import DirectModeState, ModeState, mode_field, solve_directpred, solve_modes

pytestmark = pytest.mark.slow  # every case compiles a solve


@pytest.fixture(params=["float32", "float64"])
def precision(request):
    with jax.enable_x64(request.param == "float64"):
        yield np.dtype(request.param)


def _problem(n=3):
    s0 = bd.State.random(jax.random.PRNGKey(0), n, n, scale=0.5)
    return s0, bd.Hyper(alpha_p=1.0, eta=0.01), bd.Data.isotropic(n, sigma2=0.5)


def _close(a, b, dtype):
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def test_jit_simulate(precision):
    s0, hp, data = _problem()
    eager = bd.simulate(s0, hp, data, 10.0)
    sol = jax.jit(bd.simulate)(s0, hp, data, 10.0)  # t1 traced
    assert sol.states.W.dtype == precision and int(sol.status) == bd.SUCCEEDED
    _close(sol.states.W, eager.states.W, precision)
    # the fixed-step mode (dt static), with t0, t1 and ts traced
    ts = jnp.linspace(0.0, 10.0, 6)
    fixed = jax.jit(lambda s, t0, t1, ts: bd.simulate(s, hp, data, t1, t0=t0, ts=ts, dt=0.5))(s0, 0.0, 10.0, ts)
    _close(fixed.states.W, bd.simulate(s0, hp, data, 10.0, ts=ts, dt=0.5).states.W, precision)


def test_jit_vmap_simulate(precision):
    data = _problem()[2]
    alphas = jnp.asarray([0.5, 1.0, 2.0])
    hp = jax.vmap(lambda a: bd.Hyper(alpha_p=a, eta=0.01))(alphas)  # built under vmap: traced fields
    states = jax.vmap(lambda k: bd.State.random(k, 3, 3, scale=0.5))(jax.random.split(jax.random.PRNGKey(1), 3))
    t1 = jnp.asarray([5.0, 10.0, 20.0])
    sol = jax.jit(jax.vmap(lambda s, h, t: bd.simulate(s, h, data, t)))(states, hp, t1)
    assert sol.states.W.dtype == precision and sol.states.W.shape == (3, 101, 3, 3)
    for i in range(3):
        one = bd.simulate(jax.tree.map(lambda a: a[i], states), bd.Hyper(alpha_p=float(alphas[i]), eta=0.01),
                          data, float(t1[i]))
        _close(sol.states.W[i, -1], one.states.W[-1], precision)


def test_jit_simulate_batch(precision):
    _, _, data = _problem()
    hp = bd.Hyper(alpha_p=jnp.asarray([0.5, 2.0]), eta=0.01)
    states = jax.vmap(lambda k: bd.State.random(k, 3, 3, scale=0.5))(jax.random.split(jax.random.PRNGKey(1), 2))
    eager = bd.simulate_batch(states, hp, data, 10.0, ts=[0.0, 10.0])
    sol = jax.jit(lambda s, h, t1: bd.simulate_batch(s, h, data, t1, ts=[0.0, 10.0]))(states, hp, 10.0)
    assert sol.states.W.dtype == precision and sol.states.W.shape == (2, 2, 3, 3)
    _close(sol.states.W, eager.states.W, precision)


def test_jit_and_vmap_mode_solvers(precision):
    hp = bd.Hyper(alpha_p=1.0, eta=0.01)
    y0 = ModeState.from_pst(jnp.asarray([0.2, 0.5]), jnp.asarray([0.3, 0.6]), 0.0)
    one = lambda t1, k: solve_modes(mode_field, y0, t1, args=(hp, k), ts=jnp.stack([t1]))  # noqa: E731
    eager = [one(10.0, 1.5), one(5.0, 2.0)]  # one compile: t1 and kappa are arrays inside
    sol = jax.jit(one)(10.0, 1.5)
    assert sol.states.w.dtype == precision and int(sol.status) == bd.SUCCEEDED
    _close(sol.states.w, eager[0].states.w, precision)
    sols = jax.jit(jax.vmap(one))(jnp.asarray([10.0, 5.0]), jnp.asarray([1.5, 2.0]))
    for i in range(2):
        _close(sols.states.w[i], eager[i].states.w, precision)
    # DirectPred's solver, jitted in t1: every mode ends at s*_+ (its docstring example)
    d0, g = DirectModeState.from_s_tau(jnp.asarray([0.01, 0.5]), 1.0), bd.DirectPred(eps=0.1, form="raw")
    sol = jax.jit(lambda t1: solve_directpred(d0, t1, bd.Hyper(eta=0.05), 1.5, g, tau=1.0, ts=jnp.stack([t1])))(400.0)
    assert sol.states.s.dtype == precision
    s_star = float(bd.theory.directpred_s_star("sqrt", 1.0, 1.5, 0.05, eps=0.1)[1])
    np.testing.assert_allclose(np.asarray(sol.states.s[-1]), s_star, rtol=1e-4)
