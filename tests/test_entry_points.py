"""At every entry point (Python API at each level, the CLI's simulate and train-linear), a
non-default value of each predictor and variant parameter set there changes the result exactly as the direct
call with the object does (the carrier principle: no layer rebuilds the predictor from loose values)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import byoldyn as bd
from byoldyn import sampled as sp
from byoldyn.flows import DirectModeState, solve_directpred

jax.config.update("jax_enable_x64", True)

N = 4
HYPER, DATA = bd.Hyper(alpha_p=1.0, eta=0.01, beta=0.5), bd.Data.isotropic(N, 0.5)
TS = jnp.linspace(0.0, 2.0, 3)
STEP = dict(dt=0.1)  # fixed steps: what is checked is which parameters arrive, and a fixed-step program compiles fast


def _s0():
    return bd.State.random(jax.random.PRNGKey(1), N, N, scale=0.7, dtype=jnp.float64)


def _W(**kw):
    return np.asarray(bd.simulate(_s0(), HYPER, DATA, 2.0, ts=TS, **STEP, **kw).states.W)


@pytest.mark.slow
def test_simulate_variant_and_predictor_parameters():
    """simulate: each predictor parameter (eps, form, beta_F) and each variant flag, given through the object
    (`variant=` or `predictor=`), equals the keyword shorthand and differs from the default."""
    base = _W(predictor="directpred")
    np.testing.assert_array_equal(base, _W(predictor=bd.DirectPred()))
    for kw in (dict(eps=0.3), dict(form="paper"), dict(form="raw"), dict(beta_F=2.0)):
        obj = bd.DirectPred(**kw)
        got = _W(variant=bd.Variant(predictor=obj))
        np.testing.assert_array_equal(got, _W(predictor=obj))
        assert not np.allclose(got, base), kw
    v = bd.Variant(ema=False, stop_grad=False, predictor="identity")
    got = _W(variant=v)
    np.testing.assert_array_equal(got, _W(ema=False, stop_grad=False, predictor="identity"))
    np.testing.assert_array_equal(got, _W(variant=v, ema=False, predictor="identity"))  # agreeing shorthands
    assert not np.allclose(got, _W(ema=False, predictor="identity"))
    assert not np.allclose(_W(ema=False), _W())


@pytest.mark.slow
def test_simulate_batch_per_member_predictor_parameter():
    """simulate_batch: the variant's predictor is shared, or carries one value per member (a sweep over ε):
    member b equals simulate with DirectPred(eps=eps[b])."""
    eps = jnp.asarray([0.05, 0.3])
    s0 = _s0()
    state = jax.tree.map(lambda a: jnp.stack([a, a]), s0)
    sol = bd.simulate_batch(state, HYPER, DATA, 2.0, ts=TS, **STEP,
                            variant=bd.Variant(predictor=bd.DirectPred(eps=eps, form="paper")))
    for b in range(2):
        one = _W(predictor=bd.DirectPred(eps=float(eps[b]), form="paper"))
        np.testing.assert_allclose(np.asarray(sol.states.W[b]), one, rtol=1e-12, atol=1e-14)
    assert not np.allclose(sol.states.W[0], sol.states.W[1])
    shared = bd.simulate_batch(state, HYPER, DATA, 2.0, ts=TS, **STEP, predictor=bd.DirectPred(eps=0.3),
                               ema=False)
    np.testing.assert_allclose(np.asarray(shared.states.W[1]), _W(predictor=bd.DirectPred(eps=0.3), ema=False),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_mode_solver_takes_names_and_objects():
    y0 = DirectModeState.from_s_tau(jnp.asarray([0.01, 0.5]), 1.0)

    def run(pred):
        return np.asarray(solve_directpred(y0, 5.0, bd.Hyper(eta=0.05), 1.5, pred, tau=1.0, ts=[5.0]).states.s)

    np.testing.assert_array_equal(run("directpred"), run(bd.DirectPred()))
    for obj in (bd.DirectPred(eps=0.3), bd.DirectPred(form="paper"), bd.DirectSet(alpha=0.3)):
        assert not np.allclose(run(obj), run("directpred")), obj


def _train(setup, steps=6):
    src = sp.Source.isotropic(N, 0.5)
    run = sp.train(_s0(), sp.SGD(lr=0.05, gamma_a=0.99), src, jax.random.PRNGKey(3), steps, setup=setup, save_every=3)
    return np.asarray(run.states.Wp)


@pytest.mark.slow
def test_sampled_setup_carries_every_parameter():
    """Setup: eps, rho, freq, form of the object all reach the step; the shorthands freq=, directpred_form= with a
    name build the same object."""
    base = _train(sp.Setup(batch=8, predictor="directpred"))
    np.testing.assert_array_equal(_train(sp.Setup(batch=8, predictor="directpred", freq=2, directpred_form="paper")),
                                  _train(sp.Setup(batch=8, predictor=bd.DirectPred(freq=2, form="paper"))))
    for kw in (dict(eps=0.3), dict(rho=0.7), dict(freq=2), dict(form="paper")):
        assert not np.allclose(_train(sp.Setup(batch=8, predictor=bd.DirectPred(**kw))), base), kw


@pytest.mark.slow
def test_nets_config_carries_every_parameter():
    """nets.Config: the shorthands build the object the step reads (Wp = obj.matrix(F̂) every freq steps)."""
    pytest.importorskip("flax")
    import dataclasses

    from _nets_tiny import TINY, tiny_dataset

    from byoldyn.nets import build, predictor_matrix
    from byoldyn.nets.config import Config

    obj = bd.DirectPred(eps=0.2, rho=0.5, freq=1, form="paper")
    assert Config(predictor="directpred", eps=0.2, rho=0.5, freq=1, dp_form="paper") == Config(predictor=obj)
    cfg = dataclasses.replace(TINY, predictor=obj, predictor_object=None, rho=None, eps=None, freq=None, dp_form=None)
    m = build(cfg)
    s = m.init(jax.random.key(0, impl="rbg"))
    s, _ = m.step(s, jnp.asarray(tiny_dataset(8).images), jax.random.key(10, impl="rbg"))
    F = np.asarray(s.corr, np.float64)
    np.testing.assert_allclose(predictor_matrix(s.pred), np.asarray(obj.matrix(F)), atol=2e-5)
    assert not np.allclose(predictor_matrix(s.pred), np.asarray(bd.DirectPred().matrix(F)), atol=1e-3)


def _cli_last(tmp_path, argv, name):
    from byoldyn.cli import main

    out = tmp_path / f"{name}.nc"
    assert main([*argv, "--x64", "--no-progress", "--out", str(out)]) == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        return {k: np.asarray(ds[k].values)[-1] for k in ("s", "p", "norm_W")}


@pytest.mark.slow
def test_cli_simulate_flags_reach_the_predictor(tmp_path):
    """`byoldyn simulate --predictor directpred --eps 0.2 --form paper` runs ε = 0.2 in the paper form: its last
    save equals simulate with DirectPred(eps=0.2, form="paper"), not the default."""
    from byoldyn.cli.common import DEFAULTS
    from byoldyn.observables import standard

    argv = ["simulate", "--n1", str(N), "--n2", str(N), "--t1", "2", "--n-save", "3", "--dt", "0.1",
            "--predictor", "directpred"]
    got = _cli_last(tmp_path, [*argv, "--eps", "0.2", "--form", "paper"], "a")
    default = _cli_last(tmp_path, argv, "b")
    hyper = bd.Hyper(alpha_p=DEFAULTS["alpha_p"], eta=DEFAULTS["eta"], beta=DEFAULTS["beta"])
    data = bd.Data.isotropic(N, DEFAULTS["sigma2"])
    s0 = bd.State.random(jax.random.PRNGKey(0), N, N, scale=DEFAULTS["scale"])
    sol = bd.simulate(s0, hyper, data, 2.0, ts=jnp.linspace(0.0, 2.0, 3), **STEP, observe=standard(hyper, data, s0),
                      variant=bd.Variant(predictor=bd.DirectPred(eps=0.2, form="paper")))
    for k in got:
        np.testing.assert_allclose(got[k], np.asarray(sol.observed[k])[-1], rtol=1e-10, atol=1e-12)
    assert not np.allclose(got["p"], default["p"])


@pytest.mark.slow
def test_cli_train_linear_flags_reach_the_predictor(tmp_path):
    """`byoldyn train-linear --predictor directset --alpha 0.3 --eps 0.2 --rho 0.5 --freq 2`: the last save equals
    `sampled.train` with that object; the default differs."""
    from byoldyn.observables import standard

    argv = ["train-linear", "--n1", str(N), "--n2", str(N), "--steps", "8", "--n-save", "2", "--batch", "16",
            "--predictor", "directset"]
    flags = ["--alpha", "0.3", "--eps", "0.2", "--rho", "0.5", "--freq", "2"]
    got = _cli_last(tmp_path, [*argv, *flags], "a")
    default = _cli_last(tmp_path, argv, "b")
    k0, k1 = jax.random.split(jax.random.PRNGKey(0))
    s0 = bd.State.random(k0, N, N, scale=0.5)
    sgd, src = sp.SGD(lr=0.05, wd=0.01, gamma_a=0.99), sp.Source.isotropic(N, 0.5)
    hyper, _ = sp.to_flow(sgd)
    setup = sp.Setup(batch=16, predictor=bd.DirectSet(alpha=0.3, eps=0.2, rho=0.5, freq=2))
    run = sp.train(s0, sgd, src, k1, 8, setup=setup, save_every=4, observe=standard(hyper, src.moments(), s0))
    for k in got:
        np.testing.assert_allclose(got[k], np.asarray(run.observed[k])[-1], rtol=1e-10, atol=1e-12)
    assert not np.allclose(got["p"], default["p"])
