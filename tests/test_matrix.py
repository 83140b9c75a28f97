"""The Lemma 1 field (Eqs. 2-4) and its variants against independent constructions."""

import jax
import numpy as np
import pytest
from conftest import random_psd

import byoldyn as bd

VARIANTS = [
    dict(ema=True, stop_grad=True, predictor="learned"),      # BYOL, Lemma 1
    dict(ema=True, stop_grad=True, predictor="symmetric"),    # Assumption 3
    dict(ema=True, stop_grad=True, predictor="identity"),     # BYOL without predictor
    dict(ema=False, stop_grad=True, predictor="learned"),     # SimSiam
    dict(ema=False, stop_grad=True, predictor="symmetric"),
    dict(ema=False, stop_grad=True, predictor="identity"),
    dict(ema=False, stop_grad=False, predictor="learned"),    # Theorem 2
    dict(ema=False, stop_grad=False, predictor="symmetric"),
    dict(ema=False, stop_grad=False, predictor="identity"),
]


def _problem(rng, n1=5, n2=4, general=True):
    X, Xp = (random_psd(rng, n1), random_psd(rng, n1)) if general else (None, None)
    data = bd.Data(X, Xp) if general else bd.Data.isotropic(n1, 0.3)
    state = bd.State(rng.standard_normal((n2, n1)), rng.standard_normal((n2, n2)), rng.standard_normal((n2, n1)))
    hyper = bd.Hyper(alpha_p=1.7, eta=0.13, beta=0.6, eta_p=0.07)
    return state, hyper, data


@pytest.mark.slow
@pytest.mark.parametrize("general", [True, False], ids=["general", "isotropic"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={v[k]}" for k in v))
def test_field_equals_autodiff_of_expected_loss(rng, variant, general):
    state, hyper, data = _problem(rng, general=general)
    f = bd.vector_field(state, hyper, data, **variant)
    g = bd.autodiff_field(state, hyper, data, **variant)
    for a, b in zip(jax.tree.leaves(f), jax.tree.leaves(g)):
        assert np.max(np.abs(np.asarray(a) - np.asarray(b))) <= 1e-12
    assert np.max(np.abs(np.asarray(f.W))) > 0.1  # not trivially zero


def test_lemma1_formulas_by_hand(rng):
    """Eqs. 2-4 written out in numpy, general X, X', separate eta_p."""
    state, hyper, data = _problem(rng)
    W, Wp, Wa = (np.asarray(a) for a in (state.W, state.Wp, state.Wa))
    X, Xp = (np.asarray(a) for a in data.matrices())
    G = -Wp @ W @ (X + Xp) + Wa @ X
    f = bd.vector_field(state, hyper, data)
    np.testing.assert_allclose(f.Wp, 1.7 * G @ W.T - 0.07 * Wp, rtol=0, atol=1e-13)
    np.testing.assert_allclose(f.W, Wp.T @ G - 0.13 * W, rtol=0, atol=1e-13)
    np.testing.assert_allclose(f.Wa, 0.6 * (W - Wa), rtol=0, atol=1e-15)


def test_variant_semantics(rng):
    state, hyper, data = _problem(rng)
    f = bd.vector_field(state, hyper, data, ema=False)
    np.testing.assert_array_equal(f.Wa, f.W)  # SimSiam: Wa = W is preserved
    f = bd.vector_field(state, hyper, data, predictor="identity")
    assert np.all(np.asarray(f.Wp) == 0)
    f = bd.vector_field(state, hyper, data, predictor="symmetric")
    np.testing.assert_allclose(f.Wp, np.asarray(f.Wp).T, rtol=0, atol=1e-15)


def test_theorem2_field_is_minus_H_vecW(rng):
    """THEORY.md section 4: d vec(W)/dt = -H vec(W), column-major vec, H PSD."""
    state, hyper, data = _problem(rng, n1=4, n2=3)
    W, Wp = np.asarray(state.W), np.asarray(state.Wp)
    X, Xp = (np.asarray(a) for a in data.matrices())
    I2 = np.eye(3)
    Wt = Wp - I2
    H = np.kron(Xp, Wp.T @ Wp + I2) + np.kron(X, Wt.T @ Wt) + 0.13 * np.eye(12)
    f = bd.vector_field(state, hyper, data, ema=False, stop_grad=False)
    vec = lambda A: A.reshape(-1, order="F")
    np.testing.assert_allclose(vec(np.asarray(f.W)), -H @ vec(W), rtol=0, atol=1e-12)
    assert np.min(np.linalg.eigvalsh(H)) > 0.13


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(predictor="diagonal"), r"predictor must be one of \('learned', 'symmetric', 'identity', 'directpred', 'directcopy', 'directset'\), got 'diagonal'"),
        (dict(ema=True, stop_grad=False), r"stop_grad=False needs ema=False"),
    ],
)
def test_bad_variant(rng, kwargs, match):
    state, hyper, data = _problem(rng)
    with pytest.raises(ValueError, match=match):
        bd.vector_field(state, hyper, data, **kwargs)
    with pytest.raises(ValueError, match=match):
        bd.simulate(state, hyper, data, 1.0, **kwargs)
