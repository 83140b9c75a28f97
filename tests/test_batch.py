"""`simulate_batch`: each member equals its own `simulate`, on one device or sharded over several."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import byoldyn as bd

TS = np.linspace(0.0, 4.0, 5)


def _members(B=5):
    r = np.random.default_rng(2)
    keys = jax.random.split(jax.random.PRNGKey(0), B)
    states = jax.vmap(lambda k: bd.State.random(k, 3, 2, scale=0.6))(keys)
    hypers = bd.Hyper(alpha_p=r.uniform(0.5, 2, B), eta=0.02, beta=r.uniform(0.2, 2, B))  # eta shared
    return states, hypers, bd.Data.isotropic(3, 0.4)


def _member(tree, i):
    return jax.tree.map(lambda a: a[i] if a.ndim and a.shape[0] == 5 else a, tree)


@pytest.mark.slow
def test_members_equal_single_solves():
    states, hypers, data = _members()
    sol = bd.simulate_batch(states, hypers, data, 4.0, ts=TS, rtol=1e-9, atol=1e-12)
    assert sol.states.W.shape == (5, 5, 2, 3) and sol.ts.shape == (5, 5)
    for i in range(5):
        h = bd.Hyper(alpha_p=hypers.alpha_p[i], eta=0.02, beta=hypers.beta[i])
        one = bd.simulate(jax.tree.map(lambda a: a[i], states), h, data, 4.0, ts=TS, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(sol.states.W[i], one.states.W, rtol=0, atol=1e-14)
        assert int(sol.num_steps[i]) == int(one.num_steps)
    assert np.all(np.asarray(sol.status) == bd.SUCCEEDED)


@pytest.mark.slow
def test_diverging_member_marked_others_complete():
    states, _, data = _members()
    hypers = bd.Hyper(alpha_p=jnp.array([1.0, 1.0, 1e4, 1.0, 1.0]), eta=0.0, beta=1.0)
    sol = bd.simulate_batch(states, hypers, data, 4.0, ts=TS, dt=0.1)
    assert list(sol.status_names()) == ["succeeded"] * 2 + ["diverged"] + ["succeeded"] * 2
    W = np.asarray(sol.states.W)
    assert np.all(np.isfinite(W[[0, 1, 3, 4]])) and np.isnan(W[2, -1]).all()


@pytest.mark.slow
def test_observe_and_shared_state():
    _, hypers, data = _members()
    s0 = bd.State.random(jax.random.PRNGKey(1), 3, 2)  # shared by all members
    sol = bd.simulate_batch(s0, hypers, data, 4.0, ts=TS, observe=lambda t, s: bd.observables.norm_W(s.W))
    assert sol.states is None and sol.observed.shape == (5, 5)
    np.testing.assert_allclose(sol.observed[:, 0], float(bd.observables.norm_W(s0.W)), rtol=1e-14)
    assert np.std(np.asarray(sol.observed[:, -1])) > 1e-4


def test_batch_rejects():
    states, hypers, data = _members()
    with pytest.raises(ValueError, match=r"batched fields disagree on the number of members: \[4, 5\]"):
        bd.simulate_batch(states, bd.Hyper(alpha_p=np.ones(4)), data, 1.0)
    with pytest.raises(ValueError, match=r"needs at least one field with a leading member axis"):
        bd.simulate_batch(jax.tree.map(lambda a: a[0], states), bd.Hyper(), data, 1.0)
    with pytest.raises(ValueError, match=r"every field must have 0 \(shared\) or 1 \(one member axis\) dimensions"):
        bd.simulate_batch(states, bd.Hyper(alpha_p=np.ones((5, 2))), data, 1.0)
    with pytest.raises(ValueError, match=r"t1 must be > t0"):
        bd.simulate_batch(states, hypers, data, -1.0)


@pytest.mark.slow
def test_sharded_over_four_cpu_devices_equals_one_device():
    """Members split over 4 forced CPU devices (B = 7, padded) give the single-device results."""
    code = textwrap.dedent("""
        import jax, numpy as np
        jax.config.update("jax_enable_x64", True)
        import byoldyn as bd
        assert jax.device_count() == 4
        keys = jax.random.split(jax.random.PRNGKey(0), 7)
        states = jax.vmap(lambda k: bd.State.random(k, 3, 3, scale=0.6))(keys)
        h = bd.Hyper(alpha_p=np.linspace(0.5, 2, 7), eta=0.01, beta=0.5)
        d = bd.Data.isotropic(3, 0.3)
        a = bd.simulate_batch(states, h, d, 3.0, ts=[0.0, 3.0], rtol=1e-9, atol=1e-12)
        b = bd.simulate_batch(states, h, d, 3.0, ts=[0.0, 3.0], rtol=1e-9, atol=1e-12, devices=jax.devices()[:1])
        assert a.states.W.sharding.num_devices == 4
        print(float(np.max(np.abs(np.asarray(a.states.W) - np.asarray(b.states.W)))),
              int(np.sum(np.asarray(a.num_steps) != np.asarray(b.num_steps))))
    """)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    diff, steps = r.stdout.split()
    assert float(diff) == 0.0 and int(steps) == 0


# ---- strategies: the same members, member by member, whichever way they are batched

def _four():
    r = np.random.default_rng(5)
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    states = jax.vmap(lambda k: bd.State.random(k, 3, 2, scale=0.6))(keys)
    return states, bd.Hyper(alpha_p=r.uniform(0.5, 2, 4), eta=0.02, beta=r.uniform(0.2, 2, 4)), \
        bd.Data.isotropic(3, r.uniform(0.1, 1.0, 4))


@pytest.mark.slow
def test_strategies_adaptive_same_steps_and_states():
    """Step control is per member under vmap too (diffrax keeps each lane's t, h and controller state), so every
    strategy takes the same accepted steps; the states differ only by the rounding of batched kernels. Bound:
    1e-13, i.e. a few hundred ulps of |W| ~ 1 after ~100 steps, 7 orders below rtol (an accept/reject flip
    would show as a difference in num_steps and of order rtol * |W|)."""
    states, hypers, data = _four()
    kw = dict(ts=TS, rtol=1e-7, atol=1e-10)
    ref = bd.simulate_batch(states, hypers, data, 4.0, strategy="map", **kw)
    for strategy, block in (("vmap", None), ("map-vmap", 2), ("auto", None)):
        sol = bd.simulate_batch(states, hypers, data, 4.0, strategy=strategy, block=block, **kw)
        np.testing.assert_array_equal(sol.num_steps, ref.num_steps, err_msg=strategy)
        np.testing.assert_array_equal(sol.status, ref.status)
        np.testing.assert_allclose(sol.states.W, ref.states.W, rtol=0, atol=1e-13, err_msg=strategy)
        np.testing.assert_allclose(sol.states.Wp, ref.states.Wp, rtol=0, atol=1e-13, err_msg=strategy)
    assert int(ref.num_steps.min()) > 5


@pytest.mark.slow
def test_strategies_fixed_step_bit_identical():
    """Fixed steps (Euler = gradient descent): every strategy gives bit-identical members, including a block
    size that does not divide B (the remainder block) and a diverging member."""
    states, hypers, data = _members()
    hypers = bd.Hyper(alpha_p=jnp.array([1.0, 1.5, 1e4, 0.7, 1.2]), eta=0.02, beta=hypers.beta)
    ref = bd.simulate_batch(states, hypers, data, 4.0, ts=TS, dt=0.05, strategy="map")
    assert list(ref.status_names()).count("diverged") == 1
    for strategy, block in (("vmap", None), ("map-vmap", 2), ("map-vmap", 64)):
        sol = bd.simulate_batch(states, hypers, data, 4.0, ts=TS, dt=0.05, strategy=strategy, block=block)
        for a, b in zip(jax.tree.leaves(sol), jax.tree.leaves(ref)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{strategy} {block}")


def test_auto_strategy_per_backend():
    from byoldyn.batch import resolve_strategy
    assert resolve_strategy("auto", "cpu", 10_000, 1000) == ("map", None)
    assert resolve_strategy("auto", "gpu", 500, 1000, block=1000) == ("vmap", None)
    assert resolve_strategy("auto", "tpu", 5000, 1000, block=1000) == ("map-vmap", 1000)
    assert resolve_strategy("map-vmap", "cpu", 5, 1000) == ("map-vmap", 5)  # a block never exceeds the members
    assert resolve_strategy("map-vmap", "cpu", 100, 1000) == ("map-vmap", 8)
    assert resolve_strategy("vmap", "cpu", 100, 1000) == ("vmap", None)


def test_batch_rejects_strategy_block_empty_and_unknown():
    states, hypers, data = _members()
    with pytest.raises(ValueError, match=r"strategy must be one of \('auto', 'map', 'vmap', 'map-vmap'\), got 'pmap'"):
        bd.simulate_batch(states, hypers, data, 1.0, strategy="pmap")
    with pytest.raises(ValueError, match=r"block must be None or a positive integer, got 0"):
        bd.simulate_batch(states, hypers, data, 1.0, strategy="map-vmap", block=0)
    with pytest.raises(ValueError, match=r"needs at least one member: the member axis \(B\) has length 0"):
        bd.simulate_batch(jax.tree.map(lambda a: a[:0], states), bd.Hyper(alpha_p=np.ones(0)), data, 1.0)
    with pytest.raises(ValueError, match=r"devices must be a non-empty list of JAX devices, got \[\]"):
        bd.simulate_batch(states, hypers, data, 1.0, devices=[])
    with pytest.raises(ValueError, match=r"devices must be a non-empty list of JAX devices, got \['cpu'\]"):
        bd.simulate_batch(states, hypers, data, 1.0, devices=["cpu"])
    with pytest.raises(ValueError, match=r"simulate_batch got unknown keyword\(s\) rtl; choose from devices, "):
        bd.simulate_batch(states, hypers, data, 1.0, rtl=1e-3)


_SWEEP = dict(alpha_p=[0.5, 1.0, 2.0, 1e4], eta=[0.0, 0.02], seeds=2, t1=2.0, dt=0.1, progress=False)


def _same(a, b, what):
    for k in a.data_vars:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=f"{what}: {k}")


@pytest.mark.slow
def test_sweep_strategies_matrix_bit_identical():
    """Matrix level, RK4, with saves and diverging members (alpha_p = 1e4): blocks of any size >= 2 and the
    whole batch give the same bits. A lone member ("map") has its products compiled as plain matrix products
    (another kernel), so it may differ in the last bits (seen at n = 16: 2e-16 relative in norm_W)."""
    ref = bd.sweep("matrix", n1=3, n_save=2, strategy="vmap", **_SWEEP)
    assert (ref.status.values == bd.DIVERGED).sum() == 4 and (ref.status.values == bd.SUCCEEDED).sum() == 12
    for strategy, block in (("map-vmap", 3), ("map-vmap", 2), ("auto", None)):
        ds = bd.sweep("matrix", n1=3, n_save=2, strategy=strategy, block=block, **_SWEEP)
        _same(ds, ref, f"{strategy} {block}")
        assert json.loads(ds.attrs["run"])["strategy"] == strategy
    ds = bd.sweep("matrix", n1=3, n_save=2, strategy="map", **_SWEEP)
    np.testing.assert_array_equal(ds.status.values, ref.status.values)
    for k in ("norm_W", "alignment_weighted", "tau_hat"):
        np.testing.assert_allclose(ds[k].values, ref[k].values, rtol=1e-14, atol=0)


@pytest.mark.slow
def test_sweep_strategies_modes():
    """Mode level (elementwise lanes): blocks of a power of two >= 4 give the same bits as one lockstep batch;
    blocks of 1-3 members compile to other (less vectorised) loops, where a fused multiply-add may round
    differently: at most a few ulps."""
    ref = bd.sweep("modes", n1=3, strategy="vmap", **_SWEEP)
    _same(bd.sweep("modes", n1=3, strategy="map-vmap", block=4, **_SWEEP), ref, "map-vmap 4")
    ds = bd.sweep("modes", n1=3, strategy="map", **_SWEEP)
    for k in ("norm_W", "s", "p"):
        np.testing.assert_allclose(ds[k].values, ref[k].values, rtol=4e-16, atol=1e-300)


@pytest.mark.slow
def test_sweep_strategy_reaches_simulate_batch_and_is_validated(monkeypatch):
    import byoldyn.batch

    seen = {}

    def fake(*args, **kwargs):
        seen.update(strategy=kwargs["strategy"], block=kwargs["block"])
        raise RuntimeError("stop here")

    monkeypatch.setattr(byoldyn.batch, "simulate_batch", fake)
    with pytest.raises(RuntimeError, match="stop here"):
        bd.sweep("matrix", n1=2, method="adaptive", t1=1.0, progress=False, strategy="map-vmap", block=16)
    assert seen == {"strategy": "map-vmap", "block": 16}
    with pytest.raises(ValueError, match=r"strategy must be one of \('auto', 'map', 'vmap', 'map-vmap'\), got 'x'"):
        bd.sweep("modes", progress=False, strategy="x")
    with pytest.raises(ValueError, match=r"block must be None or a positive integer, got -2"):
        bd.sweep("modes", progress=False, block=-2)
