"""The BYOL step: finite loss, exact EMA, stop-gradient, loss formulas, BN view statistics, config checks."""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("flax")

import jax
import jax.numpy as jnp
from _nets_tiny import TINY, tiny_dataset
from flax import nnx

from byoldyn.nets import Config, Projector, build, byol_loss, ema_update, pair_loss, symmetrize_predictor

KEY = lambda i: jax.random.key(i, impl="rbg")


@pytest.fixture(scope="module")
def batch():
    return jnp.asarray(tiny_dataset(8).images)


@pytest.mark.slow
def test_resnet18_step_loss_finite(batch):
    """The real ResNet-18 layout (2, 2, 2, 2) at width 1/16: one step, finite loss in [0, 8]."""
    m = build(dataclasses.replace(TINY, stage_sizes=(2, 2, 2, 2)))
    s = m.init(KEY(0))
    s, met = m.step(s, batch, KEY(1))
    loss = float(met["loss"])
    assert np.isfinite(loss) and 0.0 <= loss <= 8.0
    assert int(s.step) == 1 and 0 < float(met["z_std"]) < 1


@pytest.mark.slow
def test_step_ema_is_exact_and_online_moves(batch):
    m = build(TINY)
    s0 = m.init(KEY(0))
    s1, met = m.step(s0, batch, KEY(1))
    assert np.isfinite(float(met["loss"]))
    m_, c_ = np.float32(TINY.ema), np.float32(1 - TINY.ema)  # coefficients rounded to float32 once
    for t0, o1, t1 in zip(jax.tree.leaves(s0.target), jax.tree.leaves(s1.online), jax.tree.leaves(s1.target)):
        ref = m_ * np.asarray(t0) + c_ * np.asarray(o1)
        # exact: the eager update; in the jitted step, XLA may fuse the multiply-add (one rounding fewer),
        # so there the error is bounded by the rounding of the two products
        np.testing.assert_array_equal(ema_update(t0, o1, TINY.ema), ref)
        bound = np.finfo(np.float32).eps * (m_ * np.abs(np.asarray(t0)) + c_ * np.abs(np.asarray(o1)))
        assert np.all(np.abs(np.asarray(t1) - ref) <= bound)
    moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(s0.online), jax.tree.leaves(s1.online))]
    assert all(moved)
    # ema_update alone, outside jit
    a, b = {"w": jnp.arange(3.0, dtype=jnp.float32)}, {"w": jnp.ones(3, jnp.float32)}
    np.testing.assert_array_equal(ema_update(a, b, 0.9)["w"], 0.9 * np.arange(3.0, dtype=np.float32) + np.float32(0.1))


@pytest.mark.slow
def test_stop_gradient_zero_target_gradient(batch):
    m = build(TINY)
    s = m.init(KEY(0))
    xs = m.views(batch, KEY(2))
    g = jax.jit(jax.grad(lambda o, p, t: m.loss(o, p, t, s.online_bn, s.pred_bn, s.target_bn, xs)[0],
                         argnums=(0, 1, 2)))
    g_online, g_pred, g_target = g(s.online, s.pred, s.target)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(g_target))
    assert all(np.any(np.asarray(x) != 0) for x in jax.tree.leaves(g_pred))
    assert sum(float(np.sum(np.asarray(x) ** 2)) for x in jax.tree.leaves(g_online)) > 0


def test_loss_formulas(rng):
    y1, y2, z1, z2 = (rng.standard_normal((5, 4)) for _ in range(4))
    cos = lambda a, b: np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(pair_loss(jnp.asarray(y1), jnp.asarray(z2)), 2 - 2 * cos(y1, z2), atol=1e-12)
    np.testing.assert_allclose(pair_loss(jnp.asarray(y1), jnp.asarray(z2), "euclidean"), np.sum((y1 - z2) ** 2, 1))
    ref = np.mean(2 - 2 * cos(y1, z2) + 2 - 2 * cos(y2, z1))
    np.testing.assert_allclose(byol_loss(*map(jnp.asarray, (y1, y2, z1, z2))), ref, atol=1e-12)


@pytest.mark.slow
def test_two_view_batchnorm_equals_two_sequential_passes(rng):
    """The vmapped pass over both views gives per-view batch statistics and the running statistics of
    two sequential forward passes (official code), up to rounding."""
    m = build(TINY)
    proj = Projector(5, 7, 3, rngs=nnx.Rngs(0))
    gd, params, bn = nnx.split(proj, nnx.Param, nnx.BatchStat)
    bn = jax.tree.map(lambda x: x + 0.3, bn)

    def fn(p, b, x):
        mod = nnx.merge(gd, p, b, copy=True)
        return mod(x), nnx.state(mod, nnx.BatchStat)

    xs = jnp.asarray(rng.standard_normal((2, 6, 5)), jnp.float32)
    y, bn2 = m._two_views(fn, params, bn, xs)
    ya, b1 = fn(params, bn, xs[0])
    yb, b2 = fn(params, b1, xs[1])
    np.testing.assert_allclose(y[0], ya, atol=1e-5)
    np.testing.assert_allclose(y[1], yb, atol=1e-5)
    for u, v in zip(jax.tree.leaves(bn2), jax.tree.leaves(b2)):
        np.testing.assert_allclose(u, v, atol=1e-6)


def test_symmetrize_predictor():
    from byoldyn.nets import make_predictor, predictor_matrix

    p = nnx.split(make_predictor("linear", 4, rngs=nnx.Rngs(0)), nnx.Param)[1]
    W = predictor_matrix(symmetrize_predictor(p))
    np.testing.assert_array_equal(W, W.T)
    np.testing.assert_allclose(W, 0.5 * (predictor_matrix(p) + predictor_matrix(p).T))


@pytest.mark.parametrize("kw, match", [
    (dict(width=0.0), "width must be > 0"), (dict(ema=1.0), "ema must be < 1"),
    (dict(predictor="deep"), "predictor must be one of"), (dict(stop_grad=False), "stop_grad must be True"),
    (dict(symmetric=True, predictor="directpred"), "symmetric must be False"),
    (dict(batch_size=1), "batch_size must be >= 2"), (dict(lr=float("nan")), "lr must be a finite number"),
])
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        Config(**kw)
    assert Config.from_dict(TINY.to_dict()) == TINY


@pytest.mark.slow
def test_two_view_statistics_and_their_observables(batch):
    """`cross` after the first step is (z₂ᵀ f₁ + z₁ᵀ f₂)/2B symmetrised, from the same views recomputed
    independently; `observe` reads the two-view ratio and the projector's Gram along F̂'s eigenvectors."""
    from byoldyn.nets import observe
    m = build(TINY)
    s0 = m.init(KEY(0))
    s1, _ = m.step(s0, batch, KEY(1))
    xs = m.views(batch, KEY(1))
    _, aux = jax.jit(m.loss)(s0.online, s0.pred, s0.target, s0.online_bn, s0.pred_bn, s0.target_bn, xs)
    f, z = np.asarray(aux["f"], np.float64), np.asarray(aux["z"], np.float64)
    M = (z[1].T @ f[0] + z[0].T @ f[1]) / (2 * f.shape[1])
    np.testing.assert_allclose(np.asarray(s1.cross), 0.5 * (M + M.T), rtol=1e-4, atol=1e-6 * np.abs(M).max())
    F = np.concatenate([f[0], f[1]]).T @ np.concatenate([f[0], f[1]]) / (2 * f.shape[1])
    np.testing.assert_allclose(np.asarray(s1.corr), F, rtol=1e-4, atol=1e-6 * np.abs(F).max())
    o = observe(s1, TINY.predictor)
    Fs = 0.5 * (np.asarray(s1.corr, np.float64) + np.asarray(s1.corr, np.float64).T)
    s, U = np.linalg.eigh(Fs)
    U = U[:, ::-1]
    K = np.asarray(s1.online["projector"]["fc2"]["kernel"][...], np.float64)
    ratio = np.einsum("ij,ik,kj->j", U, np.asarray(s1.cross, np.float64), U) / s[::-1]
    top = slice(0, 5)  # the leading eigenvectors are well separated at this size; the tail's order is not stable
    np.testing.assert_allclose(o["two_view_ratio"][top], ratio[top], rtol=1e-3)
    np.testing.assert_allclose(o["gram"][top], np.einsum("ij,ik,kj->j", U, K.T @ K, U)[top], rtol=1e-3)
    assert np.all(np.abs(o["two_view_ratio"][top]) < 1.5)  # a correlation ratio: |r| <= 1 up to F̂'s symmetrisation
