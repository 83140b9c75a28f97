"""`simulate`: accuracy against scipy, theorems along runs, fixed-step = gradient descent, batching, failures."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
from conftest import random_psd

import byoldyn as bd
from byoldyn import observables as ob


def _general(rng, n1=4, n2=3, scale=0.7):
    data = bd.Data(random_psd(rng, n1), random_psd(rng, n1, floor=0.2))
    state = bd.State(scale * rng.standard_normal((n2, n1)), scale * rng.standard_normal((n2, n2)),
                     scale * rng.standard_normal((n2, n1)))
    return state, data


def _lemma1_numpy(t, y, n1, n2, X, Xp, alpha_p, eta, beta):
    """Eqs. 2-4 in plain numpy, for scipy (independent of the JAX code)."""
    a, b = n2 * n1, n2 * n2
    W, Wp, Wa = y[:a].reshape(n2, n1), y[a:a + b].reshape(n2, n2), y[a + b:].reshape(n2, n1)
    G = -Wp @ W @ (X + Xp) + Wa @ X
    return np.concatenate([(Wp.T @ G - eta * W).ravel(), (alpha_p * G @ W.T - eta * Wp).ravel(),
                           (beta * (W - Wa)).ravel()])


@pytest.mark.slow
def test_simulate_matches_scipy_dop853(rng):
    state, data = _general(rng)
    hyper = bd.Hyper(alpha_p=1.5, eta=0.05, beta=0.8)
    ts = np.linspace(0, 10, 21)
    sol = bd.simulate(state, hyper, data, 10.0, ts=ts, rtol=1e-8, atol=1e-10)
    assert int(sol.status) == bd.SUCCEEDED
    X, Xp = (np.asarray(a) for a in data.matrices())
    y0 = np.concatenate([np.asarray(a).ravel() for a in (state.W, state.Wp, state.Wa)])
    ref = scipy.integrate.solve_ivp(_lemma1_numpy, (0, 10), y0, method="DOP853", t_eval=ts, rtol=1e-10, atol=1e-12,
                                    args=(4, 3, X, Xp, 1.5, 0.05, 0.8))
    ours = np.concatenate([np.asarray(a).reshape(len(ts), -1) for a in (sol.states.W, sol.states.Wp, sol.states.Wa)], 1)
    err = np.max(np.abs(ours - ref.y.T)) / np.max(np.abs(ref.y))
    assert err <= 1e-6
    assert np.max(np.abs(ref.y[:, -1] - y0)) > 0.1  # the state really moved


@pytest.mark.slow
@pytest.mark.parametrize("ema", [True, False], ids=["byol", "simsiam"])
def test_theorem1_invariant_along_long_run(rng, ema):
    """Eq. 5: W Wᵀ − Wpᵀ Wp/alpha_p − e^{−2ηt} C = 0 for t in [0, 120], general X, X', eta > 0."""
    state, data = _general(rng, n1=5, n2=4)
    hyper = bd.Hyper(alpha_p=2.0, eta=0.02, beta=0.5)
    C = ob.theorem1_C(state, hyper)
    observe = lambda t, s: (ob.theorem1_residual(s, hyper, t, C, relative=True), ob.norm_W(s.W))
    sol = bd.simulate(state, hyper, data, 120.0, ema=ema, rtol=1e-10, atol=1e-12, observe=observe)
    res, norm = (np.asarray(a) for a in sol.observed)
    assert int(sol.status) == bd.SUCCEEDED
    assert np.max(res) <= 1e-8
    assert norm[-1] > 1e-2 and abs(norm[-1] - norm[0]) > 1e-2  # non-trivial, non-collapsed run


@pytest.mark.slow
def test_theorem2_no_stop_grad_collapses(rng):
    """Theorem 2 / Lemma 2: ‖vec W(t)‖ <= e^{−λ0 t} ‖vec W(0)‖ with λ0 = λ_min(X') + eta <= λ_min(H)."""
    state, data = _general(rng)
    hyper = bd.Hyper(alpha_p=1.0, eta=0.01)
    ts = np.linspace(0, 40, 41)
    sol = bd.simulate(state, hyper, data, 40.0, ts=ts, ema=False, stop_grad=False, rtol=1e-9, atol=1e-12,
                      observe=lambda t, s: ob.norm_W(s.W))
    norm = np.asarray(sol.observed)
    lam0 = np.min(np.linalg.eigvalsh(np.asarray(data.Xp))) + 0.01
    assert np.all(norm <= np.exp(-lam0 * ts) * norm[0] * (1 + 1e-7))
    assert norm[-1] < 1e-3 * norm[0]


@pytest.mark.slow
def test_no_predictor_no_ema_closed_form(rng):
    """Wp = I, Wa = W: dW = −W (X' + ηI), so W(t) = W(0) expm(−t (X' + ηI)) (THEORY.md section 2)."""
    state, data = _general(rng)
    hyper = bd.Hyper(eta=0.1)
    ts = np.array([0.0, 1.0, 3.0, 7.0])
    sol = bd.simulate(state, hyper, data, 7.0, ts=ts, ema=False, predictor="identity", rtol=1e-10, atol=1e-13)
    Xp = np.asarray(data.Xp)
    for t, W in zip(ts, np.asarray(sol.states.W)):
        ref = np.asarray(state.W) @ scipy.linalg.expm(-t * (Xp + 0.1 * np.eye(4)))
        np.testing.assert_allclose(W, ref, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(sol.states.Wp[-1], np.eye(3))


@pytest.mark.slow
def test_fixed_step_is_gradient_descent_bit_for_bit(rng):
    state, data = _general(rng)
    hyper = bd.Hyper(alpha_p=1.3, eta=0.03, beta=0.7)
    dt, n = 0.01, 300
    ts = dt * np.arange(0, n + 1, 50)
    sol = bd.simulate(state, hyper, data, ts[-1], ts=ts, dt=dt)

    @jax.jit  # hyper, data, dt as arguments: XLA would constant-fold closed-over values differently
    def gd_step(y, hyper, data, dt):
        g = bd.vector_field(y, hyper, data)
        return jax.tree.map(lambda a, b: a + dt * b, y, g)

    y, saved, dt_ = state, [state], jnp.asarray(dt)
    for k in range(1, n + 1):
        y = gd_step(y, hyper, data, dt_)
        if k % 50 == 0:
            saved.append(y)
    for name in ("W", "Wp", "Wa"):
        ref = np.stack([np.asarray(getattr(s, name)) for s in saved])
        np.testing.assert_array_equal(np.asarray(getattr(sol.states, name)), ref)
    assert int(sol.num_steps) == n and int(sol.status) == bd.SUCCEEDED


@pytest.mark.slow
def test_vmap_over_64_hypers_equals_loop(rng):
    state, data = _general(rng, n1=3, n2=3, scale=0.5)
    r = np.random.default_rng(1)
    hypers = bd.Hyper(alpha_p=r.uniform(0.3, 3, 64), eta=r.uniform(0, 0.2, 64), beta=r.uniform(0.1, 2, 64))
    ts = np.linspace(0, 5, 6)
    run = jax.jit(lambda h: bd.simulate(state, h, data, 5.0, ts=ts, rtol=1e-8, atol=1e-10).states.W)
    batched = np.asarray(jax.vmap(run)(hypers))
    looped = np.stack([np.asarray(run(jax.tree.map(lambda a: a[i], hypers))) for i in range(64)])
    np.testing.assert_allclose(batched, looped, rtol=1e-12, atol=1e-14)
    assert np.std(batched[:, -1]) > 1e-2  # members differ


@pytest.mark.slow
def test_vmap_over_initial_states(rng):
    data = bd.Data.isotropic(3, 0.2)
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    states = jax.vmap(lambda k: bd.State.random(k, 3, 3, scale=0.5))(keys)
    hyper = bd.Hyper(eta=0.01)
    sol = jax.vmap(lambda s: bd.simulate(s, hyper, data, 2.0, ts=[0.0, 2.0]))(states)
    one = bd.simulate(jax.tree.map(lambda a: a[5], states), hyper, data, 2.0, ts=[0.0, 2.0])
    np.testing.assert_allclose(sol.states.W[5], one.states.W, rtol=1e-12, atol=1e-14)
    assert np.all(np.asarray(sol.status) == bd.SUCCEEDED)


@pytest.mark.slow
def test_diverging_member_is_marked_and_others_complete():
    """Fixed-step GD with a huge alpha_p blows up; it is DIVERGED, NaN after, the rest are exact."""
    data = bd.Data.isotropic(3, 0.5)
    state = bd.State.random(jax.random.PRNGKey(3), 3, 3, scale=1.0)
    hypers = bd.Hyper(alpha_p=jnp.array([1.0, 1e4, 2.0]), eta=jnp.zeros(3), beta=jnp.ones(3))
    ts = 0.1 * np.arange(0, 201, 20)
    sol = jax.vmap(lambda h: bd.simulate(state, h, data, 20.0, ts=ts, dt=0.1))(hypers)
    assert list(sol.status_names()) == ["succeeded", "diverged", "succeeded"]
    W = np.asarray(sol.states.W)
    assert np.all(np.isfinite(W[[0, 2]]))
    bad = W[1].reshape(len(ts), -1)
    k = int(sol.num_steps[1])
    assert 0 < k < 200 and float(sol.t_final[1]) == pytest.approx(0.1 * k)
    valid = ts <= 0.1 * k + 1e-9
    assert np.all(np.isfinite(bad[valid])) and np.all(np.isnan(bad[~valid]))
    one = bd.simulate(state, bd.Hyper(alpha_p=2.0, eta=0.0, beta=1.0), data, 20.0, ts=ts, dt=0.1)
    np.testing.assert_array_equal(W[2], np.asarray(one.states.W))


@pytest.mark.slow
def test_adaptive_divergence_and_max_steps(rng):
    state, data = _general(rng, scale=0.2)
    hyper = bd.Hyper(alpha_p=1.0, eta=0.0, beta=1.0)
    ts = np.linspace(0, 10, 11)
    # max_norm between the initial and the peak magnitude: stopped by the event, DIVERGED, NaN after
    big = lambda s: max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree.leaves(s))
    peak, start = big(bd.simulate(state, hyper, data, 10.0, ts=ts).states), big(state)
    assert peak > 1.2 * start
    sol = bd.simulate(state, hyper, data, 10.0, ts=ts, max_norm=0.5 * (peak + start))
    assert sol.status_names() == "diverged" and 0 < float(sol.t_final) < 10
    W = np.asarray(sol.states.W).reshape(11, -1)
    assert np.all(np.isnan(W[ts > float(sol.t_final)])) and np.all(np.isfinite(W[ts <= float(sol.t_final)]))
    sol = bd.simulate(state, hyper, data, 10.0, ts=ts, max_steps=3)
    assert sol.status_names() == "max_steps"


@pytest.mark.slow
def test_float32_default(rng):
    with jax.enable_x64(False):
        s = bd.State.random(jax.random.PRNGKey(0), 3, 3)
        sol = bd.simulate(s, bd.Hyper(eta=0.01), bd.Data.isotropic(3, 0.1), 1.0)
        assert sol.states.W.dtype == jnp.float32 and int(sol.status) == bd.SUCCEEDED


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(t1=0.0), r"t1 must be > t0 = 0\.0, got 0\.0"),
        (dict(t1=float("nan")), r"t1 must be finite"),
        (dict(ts=[0.0, 2.0, 1.0]), r"^ts must be non-decreasing, got ts\[2\] = 1\.0 after ts\[1\] = 2\.0$"),
        (dict(ts=[0.0, 6.0]), r"^ts must lie within \[t0, t1\] = \[0\.0, 5\.0\], got ts\[1\] = 6\.0$"),
        (dict(ts=[-1.0, 1.0]), r"^ts must lie within \[t0, t1\] = \[0\.0, 5\.0\], got ts\[0\] = -1\.0$"),
        (dict(ts=np.zeros((2, 2))), r"ts must be a non-empty 1-D array of times, got shape \(2, 2\)"),
        (dict(ts=[]), r"ts must be a non-empty 1-D array of times, got shape \(0,\)"),
        # non-finite save times were accepted
        (dict(ts=[0.0, float("nan"), 5.0]), r"^ts must be finite, got ts\[1\] = nan$"),
        (dict(ts=[0.0, float("inf")]), r"^ts must be finite, got ts\[1\] = inf$"),
        (dict(ts="0 1 2"), r"^ts must be a 1-D array of save times, got '0 1 2'$"),
        (dict(ts=[0.0, "a"]), r"^ts must be a 1-D array of real save times"),
        (dict(rtol=0.0), r"rtol and atol must be > 0, got rtol=0\.0"),
        (dict(max_steps=0), r"max_steps must be a positive integer, got 0"),
        (dict(max_norm=-1.0), r"max_norm must be > 0, got -1\.0"),
        (dict(dt=-0.1), r"dt must be a finite number > 0, got -0\.1"),
        (dict(dt=0.3, ts=[0.0, 0.5]), r"every save time must be t0 \+ k\*dt; ts is not on the dt = 0\.3 grid"),
        # TypeError / AttributeError / ZeroDivisionError before
        (dict(dt="0.1"), r"^dt must be a real number, got '0\.1'$"),
        (dict(dt=float("inf")), r"^dt must be a finite number > 0, got inf$"),
        (dict(t1=[10]), r"^t1 must be a real number, got \[10\]$"),
        (dict(t1="5"), r"^t1 must be a real number, got '5'$"),
        (dict(t0=float("nan")), r"^t0 must be finite, got nan$"),
        (dict(max_steps=None), r"^max_steps must be a positive integer, got None$"),
        (dict(max_steps=2.5), r"^max_steps must be a positive integer, got 2\.5$"),
        (dict(max_steps=True), r"^max_steps must be a positive integer, got True$"),
        (dict(solver="tsit5"), r"^solver must be a diffrax solver such as diffrax\.Tsit5\(\), got 'tsit5'$"),
        (dict(solver=diffrax.Euler()), r"^solver must give an error estimate for the adaptive mode"),
        (dict(rtol="tight"), r"^rtol must be a real number, got 'tight'$"),
        (dict(atol=float("nan")), r"^atol must be finite, got nan$"),
        (dict(max_norm="big"), r"^max_norm must be a real number, got 'big'$"),
        (dict(ema="no"), r"^ema must be True or False, got 'no'$"),
        (dict(stop_grad=0), r"^stop_grad must be True or False, got 0$"),
        (dict(predictor=3), r"^predictor must be a name or a byoldyn\.predictors\.Predictor, got 3$"),
        (dict(variant=bd.Variant(), ema=False), r"^ema=False conflicts with variant\.ema=True: give it once$"),
        (dict(variant=bd.Variant(predictor=bd.DirectPred(eps=0.2)), predictor=bd.DirectPred()),
         r"^predictor=DirectPred\(.*\) conflicts with variant\.predictor="),
        (dict(variant="byol"), r"^variant must be a byoldyn\.Variant, got 'byol'$"),
        (dict(observe="norm_W"), r"^observe must be a function observe\(t, state\) or None, got 'norm_W'$"),
        (dict(progress="yes"), r"^progress must be True or False, got 'yes'$"),
    ],
)
def test_simulate_rejects(kwargs, match):
    state = bd.State.random(jax.random.PRNGKey(0), 2, 2)
    kwargs = {"t1": 5.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        bd.simulate(state, bd.Hyper(), bd.Data.isotropic(2, 0.1), **kwargs)


def test_simulate_rejects_mismatch():
    state = bd.State.random(jax.random.PRNGKey(0), 3, 2)
    with pytest.raises(ValueError, match=r"W has n1 = 3 columns but the data are 4-dimensional"):
        bd.simulate(state, bd.Hyper(), bd.Data.isotropic(4, 0.1), 1.0)
    with pytest.raises(ValueError, match=r"simulate takes \(State, Hyper, Data\)"):
        bd.simulate(state, {"eta": 0.1}, bd.Data.isotropic(3, 0.1), 1.0)


def test_unknown_option_is_named():
    """simulate has no **kwargs: an unknown option is Python's own TypeError naming it."""
    state = bd.State.random(jax.random.PRNGKey(0), 2, 2)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'foo'"):
        bd.simulate(state, bd.Hyper(), bd.Data.isotropic(2, 0.1), 1.0, foo=1)


@pytest.mark.slow
def test_float32_fixed_step_on_ordinary_grids():
    """dt = 0.1 in float32 was refused ("ts is not on the dt = 0.1 grid")."""
    with jax.enable_x64(False):
        s0 = bd.State.random(jax.random.PRNGKey(0), 3, 3)
        hp, data = bd.Hyper(eta=0.01), bd.Data.isotropic(3, 0.5)
        sol = bd.simulate(s0, hp, data, 10.0, dt=0.1)  # default ts: linspace(0, 10, 101)
        assert sol.status_names() == "succeeded" and int(sol.num_steps) == 100 and float(sol.t_final) == 10.0
        # byoldyn simulate --dt 0.1 --t1 20 (n-save 201), and docs/getting-started.md's arange grid
        sol = bd.simulate(s0, hp, data, 20.0, ts=jnp.linspace(0.0, 20.0, 201), dt=0.1)
        assert int(sol.num_steps) == 200 and sol.states.W.dtype == jnp.float32
        sol = bd.simulate(s0, hp, data, 20.0, dt=0.01, ts=jnp.arange(0, 20.01, 0.5))
        assert int(sol.num_steps) == 2000 and np.all(np.isfinite(np.asarray(sol.states.W)))
        # still refused: save times genuinely off the grid, in float32 too
        for ts in ([0.0, 0.15], [0.0, 1.0 + 1e-3], [0.0, 10.0, 10.05]):
            with pytest.raises(ValueError, match=r"ts is not on the dt = 0\.1 grid \(ts\[\d\] = "):
                bd.simulate(s0, hp, data, 10.1, ts=ts, dt=0.1)
        # float32 cannot tell 10^7 steps apart: refused with the advice to use float64
        with pytest.raises(ValueError, match=r"^dt is too small for float32 over times up to 1000: 1e\+07 steps.*"
                                             r"jax_enable_x64"):
            bd.simulate(s0, hp, data, 1000.0, dt=1e-4)


def test_float32_grid_tolerance_is_tight_in_float64():
    """In float64 the same grid tolerance still refuses 1e-5 steps off the grid."""
    s0 = bd.State.random(jax.random.PRNGKey(0), 2, 2)
    with pytest.raises(ValueError, match=r"ts is not on the dt = 0\.1 grid \(ts\[1\] = 1\.000001 is 10\.00001 steps"):
        bd.simulate(s0, bd.Hyper(), bd.Data.isotropic(2, 0.1), 2.0, ts=[0.0, 1.000001], dt=0.1)


@pytest.mark.slow
def test_float32_stiff_start_recovers():
    """In float32 a large alpha_p overflowed diffrax's first step (dt0 = 0.01), the NaN error
    estimate made every later step size NaN, no step was accepted and t = 0 was saved as inf. Now the
    overflowing step is rejected and retried smaller; the run agrees with float64."""
    ts = np.linspace(0.0, 0.2, 5)
    r = np.random.default_rng(0)  # one initial state, exact in float32 and float64
    W, Wp = (r.standard_normal((4, 4)).astype(np.float32) for _ in range(2))
    with jax.enable_x64(False):
        s0 = bd.State(W, Wp)
        sol = bd.simulate(s0, bd.Hyper(alpha_p=400.0, eta=0.0), bd.Data.isotropic(4, 0.5), 0.2, ts=ts,
                          max_steps=2000)
        W32 = np.asarray(sol.states.W)
        assert sol.status_names() == "succeeded" and 200 < int(sol.num_steps) < 800  # measured 410
    s64 = bd.State(W.astype(np.float64), Wp.astype(np.float64))
    ref = bd.simulate(s64, bd.Hyper(alpha_p=400.0, eta=0.0), bd.Data.isotropic(4, 0.5), 0.2, ts=ts)
    np.testing.assert_allclose(W32, np.asarray(ref.states.W), rtol=0, atol=1e-4)
    assert np.max(np.abs(np.asarray(ref.states.W)[-1] - np.asarray(s64.W))) > 1e-3  # it moved


@pytest.mark.slow
def test_no_step_accepted_is_said_and_never_inf():
    """A solve that accepts no step says so in `status`; t = t0 holds the initial state and
    the saves it never reached are NaN (never inf)."""
    s0 = bd.State.random(jax.random.PRNGKey(0), 3, 3, scale=1.0)
    data = bd.Data.isotropic(3, 0.5)
    # stiff start: the first step (0.01) is rejected and the budget of one step is spent
    sol = bd.simulate(s0, bd.Hyper(alpha_p=1e4), data, 1.0, ts=[0.0, 0.5, 1.0], max_steps=1)
    assert sol.status_names() == "no_step_accepted" and int(sol.status) == bd.NO_STEP == 4
    assert float(sol.t_final) == 0.0 and int(sol.num_steps) == 0
    W = np.asarray(sol.states.W)
    np.testing.assert_array_equal(W[0], np.asarray(s0.W))
    assert np.all(np.isnan(W[1:]))
    # with observables, and a vector field that is not finite at the initial state (nothing can be accepted)
    with jax.enable_x64(False):
        s32 = bd.State.random(jax.random.PRNGKey(0), 3, 3, scale=1.0)
        hp, data = bd.Hyper(alpha_p=1e38), bd.Data.isotropic(3, 0.5)
        sol = bd.simulate(s32, hp, data, 1.0, ts=[0.0, 1.0], max_steps=50, observe=bd.observables.standard(hp, data, s32))
        assert sol.status_names() == "no_step_accepted" and float(sol.t_final) == 0.0
        for k, v in sol.observed.items():
            v = np.asarray(v)
            assert not np.any(np.isinf(v)), k
            assert np.all(np.isnan(v[1])), k
        assert float(sol.observed["norm_W"][0]) == pytest.approx(float(jnp.linalg.norm(s32.W)), rel=1e-6)


def test_mask_after_turns_inf_into_nan():
    from byoldyn.stepper import mask_after
    ts = jnp.asarray([0.0, 1.0, 2.0])
    out = mask_after(ts, 1.0, {"a": jnp.asarray([jnp.inf, 1.0, 2.0]), "b": jnp.ones((3, 2))})
    np.testing.assert_array_equal(np.asarray(out["a"]), [np.nan, 1.0, np.nan])
    np.testing.assert_array_equal(np.asarray(out["b"]), [[1, 1], [1, 1], [np.nan, np.nan]])
