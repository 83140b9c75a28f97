"""DirectPred / DirectCopy: the predictor equals the formula applied to F̂ (THEORY.md section 10)."""

import numpy as np
import pytest

pytest.importorskip("flax")

import jax
import jax.numpy as jnp

from byoldyn.predictors import DirectCopy, DirectPred, correlation, update_correlation


def _F(rng, d=6, negative=False):
    A = rng.standard_normal((d, d))
    F = A @ A.T / d
    if negative:  # a slightly indefinite estimate: the negative eigenvalue must be clamped to 0
        s, U = np.linalg.eigh(F)
        s[0] = -0.05
        F = (U * s) @ U.T
    return F


def _ref(F, eps, form):
    s, U = np.linalg.eigh(F)
    s = np.clip(s, 0, None)
    if form == "code":  # official boost_scale, dyn_convert = 2
        p = np.clip(np.sqrt(s / s.max()) + eps, 1e-4, None)
    else:  # Eq. 18
        p = np.sqrt(s) + eps * s.max()
    return (U * p) @ U.T


@pytest.mark.slow
@pytest.mark.parametrize("form", ["code", "paper"])
@pytest.mark.parametrize("negative", [False, True])
def test_directpred_matrix_formula(rng, form, negative):
    F = _F(rng, negative=negative) * 3.7  # max eigenvalue != 1, so the two forms differ
    for eps in (0.0, 0.1):
        np.testing.assert_allclose(DirectPred(eps=eps, form=form).matrix(jnp.asarray(F)), _ref(F, eps, form), atol=1e-12)
    assert not np.allclose(_ref(F, 0.1, "code") / _ref(F, 0.1, "code")[0, 0],
                           _ref(F, 0.1, "paper") / _ref(F, 0.1, "paper")[0, 0])


@pytest.mark.slow
def test_directcopy_matrix_formula(rng):
    F = _F(rng) * 2.5
    ref = F / np.linalg.eigvalsh(F).max() + 0.2 * np.eye(6)
    np.testing.assert_allclose(DirectCopy(eps=0.2).matrix(jnp.asarray(F)), ref, atol=1e-12)


def test_correlation_update(rng):
    f = rng.standard_normal((10, 4))
    F0 = _F(rng, 4)
    np.testing.assert_allclose(correlation(jnp.asarray(f)), f.T @ f / 10, atol=1e-12)
    np.testing.assert_allclose(update_correlation(jnp.asarray(F0), jnp.asarray(f), 0.3, False),
                               0.3 * F0 + 0.7 * f.T @ f / 10, atol=1e-12)
    np.testing.assert_allclose(update_correlation(jnp.asarray(F0), jnp.asarray(f), 0.3, True), f.T @ f / 10, atol=1e-12)


@pytest.mark.slow
def test_train_step_sets_predictor_from_F():
    import dataclasses

    from _nets_tiny import TINY, tiny_dataset

    from byoldyn.nets import build, predictor_matrix

    cfg = dataclasses.replace(TINY, predictor="directpred", eps=0.1)
    m = build(cfg)
    s = m.init(jax.random.key(0, impl="rbg"))
    x = jnp.asarray(tiny_dataset(8).images)
    for t in range(2):
        s, met = m.step(s, x, jax.random.key(10 + t, impl="rbg"))
        F = np.asarray(s.corr, np.float64)
        assert np.isfinite(float(met["loss"])) and np.linalg.norm(F) > 0
        np.testing.assert_allclose(F, F.T, atol=1e-6)
        np.testing.assert_allclose(predictor_matrix(s.pred), _ref(F, 0.1, "code"), atol=2e-5)
