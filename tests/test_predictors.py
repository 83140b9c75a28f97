"""byoldyn.predictors: DirectPred / DirectCopy against numpy references (THEORY.md 10.1-10.2, Eqs. 18-19),
the registry, the validation, and the former per-level implementations reproduced."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_psd

import byoldyn as bd
import byoldyn.predictors as P


def _F(rng, d=6, negative=False, scale=3.7):
    F = random_psd(rng, d, floor=0.0) * scale  # max eigenvalue != 1: the two DirectPred forms differ
    if negative:  # slightly indefinite: the negative eigenvalue must be clamped to 0
        s, U = np.linalg.eigh(F)
        s[0] = -0.05
        F = (U * s) @ U.T
    return F


def _ref(F, eps, form):
    """Wp = U diag(p) Uᵀ by numpy eigh: Eq. 18 ("paper") or the official boost_scale ("code", 10.2)."""
    s, U = np.linalg.eigh(F)
    s = np.clip(s, 0, None)
    p = np.sqrt(s) + eps * s.max() if form == "paper" else np.maximum(np.sqrt(s / s.max()) + eps, 1e-4)
    return (U * p) @ U.T


# the former implementations, verbatim (byoldyn/sampled/directpred.py and byoldyn/nets/directpred.py at 85cf2c4)
def _old_sampled_directpred(Fhat, eps, form="boost_scale"):
    s, U = jnp.linalg.eigh(0.5 * (Fhat + jnp.swapaxes(Fhat, -1, -2)))
    s = jnp.clip(s, 0.0, None)
    smax = jnp.max(s, axis=-1, keepdims=True)
    if form == "paper":
        p = jnp.sqrt(s) + eps * smax
    else:
        ok = smax > 0
        p = jnp.maximum(jnp.sqrt(jnp.where(ok, s / jnp.where(ok, smax, 1.0), 0.0)) + eps, 1e-4)
    return (U * p[..., None, :]) @ jnp.swapaxes(U, -1, -2)


def _old_sampled_directcopy(Fhat, eps):
    s = jnp.linalg.eigvalsh(0.5 * (Fhat + jnp.swapaxes(Fhat, -1, -2)))
    norm = jnp.max(jnp.abs(s), axis=-1)[..., None, None]
    ok = norm > 0
    eye = jnp.eye(Fhat.shape[-1], dtype=Fhat.dtype)
    return jnp.where(ok, Fhat / jnp.where(ok, norm, 1.0), 0.0) + eps * eye


def _old_nets_directpred(F, eps, form="code"):
    s, U = jnp.linalg.eigh(F)
    s = jnp.clip(s, 0.0, None)
    smax = jnp.max(s)
    if form == "code":
        sn = jnp.where(smax > 0, s / jnp.where(smax > 0, smax, 1.0), 0.0)
        p = jnp.clip(sn ** (1.0 / 2.0) + eps, 1e-4, None)
    else:
        p = jnp.sqrt(s) + eps * smax
    return (U * p[None, :]) @ U.T


def _old_nets_update(F, f, rho, first):
    d = f.T @ f / f.shape[0]
    return jnp.where(first, d, rho * F + (1.0 - rho) * d)


@pytest.mark.parametrize("form", ["code", "paper"])
@pytest.mark.parametrize("negative", [False, True])
def test_directpred_matrix_is_eigh_reconstruction(rng, form, negative):
    F = _F(rng, negative=negative)
    for eps in (0.0, 0.1, 0.5):
        Wp = P.DirectPred(eps=eps, form=form).matrix(jnp.asarray(F))
        np.testing.assert_allclose(Wp, _ref(F, eps, form), rtol=0, atol=1e-12)
        np.testing.assert_allclose(Wp, Wp.T, rtol=0, atol=1e-13)
    # negative control: the two forms differ when max s != 1
    assert np.max(np.abs(_ref(F, 0.1, "code") - _ref(F, 0.1, "paper"))) > 1e-2


def test_directcopy_matrix(rng):
    F = _F(rng)
    ref = F / np.linalg.norm(F, 2) + 0.2 * np.eye(6)
    np.testing.assert_allclose(P.DirectCopy(eps=0.2).matrix(jnp.asarray(F)), ref, rtol=0, atol=1e-13)
    np.testing.assert_allclose(P.DirectCopy(eps=0.2).matrix(jnp.zeros((3, 3))), 0.2 * np.eye(3), rtol=0, atol=0)


@pytest.mark.parametrize("pred", [P.DirectPred(eps=0.1, form="code"), P.DirectPred(eps=0.1, form="paper"),
                                  P.DirectCopy(eps=0.1)], ids=["code", "paper", "directcopy"])
def test_modes_agree_with_matrix_on_diagonal_F(rng, pred):
    s = np.array([3.0, 0.7, 0.2, 0.0, 1e-3])
    np.testing.assert_allclose(np.diag(pred.matrix(jnp.diag(jnp.asarray(s)))), pred.modes(jnp.asarray(s)),
                               rtol=0, atol=1e-14)
    # a rotated F has the same p, in the rotated basis
    U, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    np.testing.assert_allclose(pred.matrix(jnp.asarray((U * s) @ U.T)), (U * np.asarray(pred.modes(s))) @ U.T,
                               rtol=0, atol=1e-12)


def test_modes_closed_forms():
    s = jnp.asarray([[4.0, 1.0, 0.0], [2.0, 0.5, 0.5]])  # batched: modes on the last axis
    m = np.array([[4.0], [2.0]])
    sn = np.asarray(s) / m
    np.testing.assert_allclose(P.DirectPred(eps=0.1, form="paper").modes(s), np.sqrt(s) + 0.1 * m, rtol=1e-15)
    np.testing.assert_allclose(P.DirectPred(eps=0.1).modes(s), np.maximum(np.sqrt(sn) + 0.1, 1e-4), rtol=1e-15)
    np.testing.assert_allclose(P.DirectPred(eps=0.0).modes(s)[0, 2], 1e-4, rtol=0)  # the code's floor
    np.testing.assert_allclose(P.DirectCopy(eps=0.1).modes(s), sn + 0.1, rtol=1e-15)
    np.testing.assert_allclose(P.DirectCopy(eps=0.1).modes(jnp.zeros(3)), 0.1 * np.ones(3), rtol=0)


def test_code_form_is_paper_form_up_to_scale_at_eps_0(rng):
    F = jnp.asarray(_F(rng, scale=5.3))
    code, paper = P.DirectPred(eps=0.0).matrix(F), P.DirectPred(eps=0.0, form="paper").matrix(F)
    smax = np.linalg.eigvalsh(np.asarray(F)).max()
    np.testing.assert_allclose(code * np.sqrt(smax), paper, rtol=0, atol=1e-12)
    # with eps > 0 they are not proportional (max s != 1)
    c, p = P.DirectPred(eps=0.1).matrix(F), P.DirectPred(eps=0.1, form="paper").matrix(F)
    assert np.max(np.abs(c / c[0, 0] - p / p[0, 0])) > 1e-3


@pytest.mark.slow
def test_batched_matrix(rng):
    Fs = np.stack([_F(rng), _F(rng, scale=0.4)])
    for pred in (P.DirectPred(form="paper"), P.DirectPred(), P.DirectCopy()):
        got = pred.matrix(jnp.asarray(Fs))
        for k in range(2):
            np.testing.assert_allclose(got[k], pred.matrix(jnp.asarray(Fs[k])), rtol=0, atol=1e-13)


@pytest.mark.parametrize("negative", [False, True])
def test_former_implementations_reproduced(rng, negative):
    F = jnp.asarray(_F(rng, negative=negative))
    for eps in (0.0, 0.1):
        for form in ("paper", "boost_scale"):
            new = P.DirectPred(eps=eps, form=form).matrix(F)
            np.testing.assert_allclose(new, _old_sampled_directpred(F, eps, form), rtol=0, atol=1e-14)
        for form in ("paper", "code"):
            new = P.DirectPred(eps=eps, form=form).matrix(F)
            np.testing.assert_allclose(new, _old_nets_directpred(F, eps, form), rtol=0, atol=1e-14)
        np.testing.assert_allclose(P.DirectCopy(eps=eps).matrix(F), _old_sampled_directcopy(F, eps), rtol=0,
                                   atol=1e-15)
    assert P.DirectPred(form="boost_scale") == P.DirectPred(form="code")
    f, F0 = jnp.asarray(rng.standard_normal((10, 4))), jnp.asarray(_F(rng, 4))
    for first in (False, True):
        np.testing.assert_allclose(P.update_correlation(F0, f, 0.3, first), _old_nets_update(F0, f, 0.3, first),
                                   rtol=0, atol=1e-15)
    np.testing.assert_allclose(P.update_correlation(F0, f, 0.3, False),
                               0.3 * np.asarray(F0) + 0.7 * np.asarray(f).T @ np.asarray(f) / 10, rtol=1e-14)


def test_matrix_under_jit_and_grad(rng):
    F = jnp.asarray(_F(rng))
    pred = P.DirectPred(eps=0.2, form="paper")
    np.testing.assert_allclose(jax.jit(lambda p, F: p.matrix(F))(pred, F), pred.matrix(F), rtol=0, atol=1e-14)
    # d tr(Wp) / d eps = d * max s for the paper form
    g = jax.grad(lambda e: jnp.trace(P.DirectPred(eps=e, form="paper").matrix(F)))(0.2)
    np.testing.assert_allclose(g, 6 * np.linalg.eigvalsh(np.asarray(F)).max(), rtol=1e-12)


def test_registry_and_as_predictor():
    assert tuple(P.PREDICTORS) == ("learned", "symmetric", "identity", "directpred", "directcopy", "directset")
    for name, cls in P.PREDICTORS.items():
        assert cls.name == name and isinstance(P.as_predictor(name), cls)
    assert [c.learned for c in P.PREDICTORS.values()] == [True, True, False, False, False, False]
    assert [c.direct for c in P.PREDICTORS.values()] == [False, False, False, True, True, True]
    assert P.as_predictor("linear") == P.Learned() and P.as_predictor("none") == P.Identity()
    d = P.DirectPred(eps=0.3)
    assert P.as_predictor(d) is d and P.as_predictor("directpred") == P.DirectPred()
    with pytest.raises(ValueError, match=r"predictor must be one of \('learned', 'symmetric', 'identity', "
                                         r"'directpred', 'directcopy', 'directset'\), got 'diag'"):
        P.as_predictor("diag")
    assert bd.DirectPred is P.DirectPred and bd.predictors is P and bd.PREDICTORS is P.PREDICTORS


@pytest.mark.parametrize("kw, match", [
    (dict(eps=-0.1), "eps must be finite and >= 0"), (dict(eps=float("inf")), "eps must be finite"),
    (dict(eps="a"), "eps must be a real number"), (dict(rho=1.0), "rho must be finite and >= 0 and < 1"),
    (dict(rho=-0.1), "rho must be"), (dict(form="sqrt"), "form must be one of"), (dict(freq=0), "freq must be"),
    (dict(freq=1.5), "freq must be"), (dict(freq=True), "freq must be"), (dict(beta_F=0.0), "beta_F must be finite and > 0"),
    (dict(beta_F=float("nan")), "beta_F must be"),
])
def test_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        P.DirectPred(**kw)
    if "form" not in kw:
        with pytest.raises(ValueError, match=match):
            P.DirectCopy(**kw)
    # the boundaries are accepted
    P.DirectPred(eps=0.0, rho=0.0, freq=3, beta_F=1e-3)


def test_variant():
    v = P.Variant(ema=False, stop_grad=False, predictor="directcopy")
    assert v.predictor == P.DirectCopy() and not v.ema and not v.stop_grad
    assert P.Variant().predictor == P.Learned() and P.Variant().ema and P.Variant().stop_grad
    with pytest.raises(ValueError, match="stop_grad=False needs ema=False"):
        P.Variant(ema=True, stop_grad=False)
    with pytest.raises(ValueError, match="ema must be True or False"):
        P.Variant(ema=0.996)
    with pytest.raises(ValueError, match="predictor must be one of"):
        P.Variant(predictor="mlp")


def test_resnet_config_vocabulary():
    """nets.Config takes the shared names; old values ("linear", "none", symmetric=True, predictor_wd) map onto
    them, so a checkpoint's stored config of an old run compares equal to the same run's new config."""
    pytest.importorskip("flax")
    from byoldyn.nets.config import PREDICTORS as NETS
    from byoldyn.nets.config import Config
    assert NETS == (*P.PREDICTORS, "mlp")
    assert Config(predictor="linear") == Config(predictor="learned") == Config()
    assert Config(predictor="none").predictor == "identity"
    c = Config(predictor="linear", symmetric=True)
    assert (c.predictor, c.symmetric, c.symmetrize) == ("symmetric", False, True)
    assert Config(predictor="mlp", symmetric=True).symmetrize and not Config().symmetrize
    assert Config(predictor="directpred", eps=0.2, dp_form="paper", freq=3).predictor_object == \
        P.DirectPred(eps=0.2, rho=0.3, form="paper", freq=3)
    assert Config(predictor="mlp").predictor_object is None
    assert Config(predictor_wd=1e-3).wd_p == 1e-3 and Config(wd_p=1e-3).eta_p == 1e-3
    old = Config().to_dict()
    old.update(predictor="linear", symmetric=True, predictor_wd=2e-3)
    del old["wd_p"]
    assert Config.from_dict(old) == Config(predictor="symmetric", wd_p=2e-3)
    with pytest.raises(ValueError, match="symmetric must be False unless"):
        Config(predictor="directpred", symmetric=True)
    with pytest.raises(ValueError, match="wd_p and predictor_wd"):
        Config(wd_p=1e-3, predictor_wd=2e-3)
    with pytest.raises(ValueError, match="predictor must be one of"):
        Config(predictor="deep")


def test_sampled_vocabulary():
    from byoldyn import sampled as sp
    assert sp.PREDICTORS == tuple(P.PREDICTORS)
    dp = sp.Setup(predictor="directpred")
    assert sp.Setup(predictor="directpred", directpred_form="boost_scale") == \
        sp.Setup(predictor="directpred", directpred_form="code") == dp
    assert sp.Setup(predictor="directpred", freq=2).predictor == P.DirectPred(freq=2)
    assert sp.Setup(predictor=P.DirectPred(eps=0.2, freq=2), freq=2).predictor == P.DirectPred(eps=0.2, freq=2)
    assert sp.predictor_of(sp.Setup(predictor="symmetric")) == P.Symmetric()
    with pytest.raises(ValueError, match="freq = 3 conflicts with the predictor's freq = 2"):
        sp.Setup(predictor=P.DirectPred(freq=2), freq=3)
    with pytest.raises(ValueError, match="freq is not a parameter of learned"):
        sp.Setup(freq=2)
    with pytest.raises(ValueError, match=r"eps is the predictor's parameter, not SGD's"):
        sp.SGD(eps=0.2)
    assert float(sp.SGD(ema=0.9).gamma_a) == 0.9 and float(sp.SGD().gamma_a) == 0.996
    with pytest.raises(ValueError, match="gamma_a and ema name the same"):
        sp.SGD(gamma_a=0.5, ema=0.9)
