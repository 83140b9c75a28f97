"""Typed sweeps: the predictor object and its swept parameters reach every member of a sweep,
equal to the direct calls with the same object (`simulate`, `simulate_batch`, `flows.modes.solve_directpred`);
bad values are refused by the model's own checks, naming the parameter (or its flag)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import byoldyn as bd
from byoldyn.cli import main as cli_main
from byoldyn.flows import DirectModeState, solve_directpred
from byoldyn.sweep_levels import OBS
from byoldyn.sweeps import sweep

N1, SEEDS, SIGMA2, SCALE, ETA, BETA = 3, (0, 1), 0.5, 0.5, 0.02, 0.7
KW = dict(alpha_p=1.0, eta=ETA, beta=BETA, sigma2=SIGMA2, scale=SCALE, n1=N1, seeds=list(SEEDS), progress=False)
COMPARED = ("s", "p", "norm_W", "alignment_weighted", "asymmetry")


def _starts():
    return [bd.State.random(jax.random.PRNGKey(s), N1, N1, scale=SCALE) for s in SEEDS]


def _stack(states):
    return jax.tree.map(lambda *a: jnp.stack(a), *states)


def _observed(states) -> dict:
    """The sweep's matrix observables of the states (one per member)."""
    return {k: np.asarray(v) for k, v in OBS["matrix"](states, 1e-4).items()}


def _close(ds, ref: dict, rtol: float, atol: float = 1e-12):
    for k in COMPARED:
        np.testing.assert_allclose(np.asarray(ds[k].values), ref[k], rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.slow
def test_matrix_sweep_with_a_predictor_object_equals_simulate_batch_and_simulate():
    """`predictor=bd.DirectPred(eps=0.2)` runs ε = 0.2: adaptive = `simulate_batch` with the same object to rounding,
    fixed-step Euler = `simulate(dt=...)` member by member to rounding, and ε = 0.1 (the default) differs."""
    pred, t1, dt = bd.DirectPred(eps=0.2), 2.0, 0.1
    hyper, data = bd.Hyper(alpha_p=1.0, eta=ETA, beta=BETA), bd.Data.isotropic(N1, SIGMA2)
    ada = sweep("matrix", predictor=pred, method="adaptive", dt=None, t1=t1, **KW)
    sol = bd.simulate_batch(_stack(_starts()), hyper, data, t1, ts=[t1], predictor=pred)
    _close(ada, _observed(jax.tree.map(lambda a: a[:, -1], sol.states)), rtol=1e-10)
    assert json.loads(ada.attrs["config"])["predictor_params"]["eps"] == 0.2
    assert json.loads(ada.attrs["predictor"]) == {"name": "directpred", **pred.params()}

    euler = sweep("matrix", predictor=pred, method="euler", dt=dt, t1=t1, **KW)
    finals = [jax.tree.map(lambda a: a[-1], bd.simulate(s0, hyper, data, t1, ts=[0.0, t1], dt=dt, predictor=pred)
                           .states) for s0 in _starts()]
    _close(euler, _observed(_stack(finals)), rtol=1e-12)
    default = sweep("matrix", predictor="directpred", method="euler", dt=dt, t1=t1, **KW)
    assert np.max(np.abs(default.s.values - euler.s.values)) > 1e-4


@pytest.mark.slow
def test_a_swept_eps_is_simulate_batch_with_one_eps_per_member():
    """`eps=[...]` sweeps ε (a dimension after the Hyper parameters): member (ε_i, seed) equals `simulate_batch` with
    `DirectPred(eps=array)`, one ε per member; the predictor's fields are recorded, ε as swept."""
    eps, t1 = [0.05, 0.4], 1.5
    ds = sweep("matrix", predictor="directpred", eps=eps, method="adaptive", dt=None, t1=t1, **KW)
    assert ds.s.dims[:2] == ("eps", "seed") and ds.eps.values.tolist() == eps
    cfg = json.loads(ds.attrs["config"])
    assert cfg["predictor"] == "directpred" and cfg["predictor_params"] == {
        "eps": "swept", "rho": 0.3, "form": "code", "freq": 1, "beta_F": None}
    assert cfg["grid"]["eps"] == eps
    starts = _stack([s for _ in eps for s in _starts()])
    per = jnp.asarray(np.repeat(eps, len(SEEDS)))
    sol = bd.simulate_batch(starts, bd.Hyper(alpha_p=1.0, eta=ETA, beta=BETA), bd.Data.isotropic(N1, SIGMA2), t1,
                            ts=[t1], predictor=bd.DirectPred(eps=per))
    ref = _observed(jax.tree.map(lambda a: a[:, -1], sol.states))
    _close(ds.stack(member=("eps", "seed")).transpose("member", ...), ref, rtol=1e-10)


@pytest.mark.slow
def test_mode_level_eps_sweep_matches_solve_directpred():
    """A mode-level sweep over ε (p_j = `DirectPred(eps).modes(s)` slaved to the spectrum) ends at the s_j of
    `flows.modes.solve_directpred` from the same start, member by member (RK4 at dt = 0.01 against an adaptive
    solve at rtol 1e-10); its recorded p is the predictor's p(s)."""
    eps, t1 = [0.05, 0.5], 10.0
    ds = sweep("modes", predictor="directpred", eps=eps, t1=t1, dt=0.01, n_save=1, n1=4, seeds=2, eta=0.05,
               beta=BETA, sigma2=SIGMA2, progress=False)
    assert (ds.status.values == bd.SUCCEEDED).all()
    for e in eps:
        for seed in range(2):
            m = ds.sel(eps=e, seed=seed)
            s0, s1 = m.s.isel(time=0).values, m.s.isel(time=-1).values
            pred = bd.DirectPred(eps=e)
            sol = solve_directpred(DirectModeState.from_s_tau(s0, 0.0), t1, bd.Hyper(eta=0.05, beta=BETA),
                                   1.0 + SIGMA2, pred, ts=[t1], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(s1, np.asarray(sol.states.s[-1]), rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(m.p.isel(time=-1).values, np.asarray(pred.modes(s1)), rtol=1e-12)
    a, b = ds.s.isel(time=-1).sel(eps=0.05).values, ds.s.isel(time=-1).sel(eps=0.5).values
    assert np.max(b / a) < 0.1  # ε reaches the members: at η = 0.05 the larger boost collapses faster


@pytest.mark.slow
def test_cli_eps_equals_the_api(tmp_path, capsys):
    """`byoldyn sweep --predictor directpred --eps 0.2` is `sweep(predictor=bd.DirectPred(eps=0.2))`, bit for bit and
    with the same configuration hash."""
    out = tmp_path / "e.nc"
    argv = ["sweep", "--level", "matrix", "--predictor", "directpred", "--eps", "0.2", "--alpha-p", "1", "--eta",
            str(ETA), "--beta", str(BETA), "--sigma2", str(SIGMA2), "--scale", str(SCALE), "--n1", str(N1),
            "--seeds", "0,1", "--t1", "1", "--dt", "0.1", "--out", str(out), "--no-progress"]
    assert cli_main(argv) == 0, capsys.readouterr().err
    api = sweep("matrix", predictor=bd.DirectPred(eps=0.2), t1=1.0, dt=0.1, **KW)
    with xr.open_dataset(out, engine="h5netcdf") as cli:
        assert cli.attrs["config_hash"] == api.attrs["config_hash"]
        for k in api.data_vars:
            np.testing.assert_array_equal(cli[k].values, api[k].values, err_msg=k)


def test_cli_refuses_a_negative_eps_in_a_range_naming_the_flag(tmp_path, capsys):
    argv = ["sweep", "--predictor", "directpred", "--eps", "-0.1:0.5:4", "--out", str(tmp_path / "x.nc")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["byoldyn: error: --eps must be finite and >= 0, got -0.1"]
    assert not (tmp_path / "x.parts").exists()


@pytest.mark.slow
def test_cli_directset_alpha_sweeps(tmp_path, capsys):
    """`--predictor directset --alpha 0.5,1` sweeps DirectSet's power at the mode level: α = 1/2 is DirectPred's code
    form and α = 1 DirectCopy's spectrum (to rounding: a traced power against sqrt and s itself)."""
    out = tmp_path / "a.nc"
    flags = ["--level", "modes", "--n1", "4", "--seeds", "2", "--t1", "4", "--dt", "0.05", "--eta", "0.02"]
    assert cli_main(["sweep", "--predictor", "directset", "--alpha", "0.5,1", *flags, "--out", str(out),
                     "--no-progress"]) == 0, capsys.readouterr().err
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.s.dims[:2] == ("alpha", "seed") and ds.alpha.values.tolist() == [0.5, 1.0]
        assert json.loads(ds.attrs["config"])["predictor_params"]["alpha"] == "swept"
        got = {a: ds.s.sel(alpha=a).values for a in (0.5, 1.0)}
    for a, name in ((0.5, "directpred"), (1.0, "directcopy")):
        ref = sweep("modes", predictor=name, n1=4, seeds=2, t1=4.0, dt=0.05, eta=0.02, beta=0.5, sigma2=0.5,
                    alpha_p=1.0, progress=False)
        np.testing.assert_allclose(got[a], ref.s.values, rtol=1e-10, atol=1e-12, err_msg=name)
    assert np.max(np.abs(got[0.5] - got[1.0])) > 1e-4


@pytest.mark.parametrize("kw, match", [
    (dict(predictor=bd.DirectPred(eps=0.2), eps=[0.1, 0.3]), r"^eps is given twice"),
    (dict(predictor="learned", eps=[0.1, 0.3]), r"^eps is not a sweep option nor a parameter of the predictor learned"),
    (dict(predictor="directpred", rho=[0.1, 0.3]), r"^rho cannot be swept"),
    (dict(predictor="directpred", eps=[0.1, -0.3]), r"^eps must be finite and >= 0, got -0.3"),
    (dict(predictor="directset", alpha=[0.0, 1.0]), r"^alpha must be finite and > 0, got 0.0"),
    (dict(predictor=bd.DirectPred(eps=0.2), eps=0.3), r"^eps = 0.3 conflicts with the predictor's eps = 0.2"),
    (dict(predictor=bd.DirectPred(beta_F=1.0)), r"^beta_F is not swept"),
    (dict(predictor=bd.DirectPred(eps=jnp.array([0.1, 0.2]))), r"^eps on the predictor must be a number"),
    (dict(predictor="directpred", points={"eps": [0.1, 0.2], "alpha_p": [1.0, 2.0]}, eps=0.3),
     r"^eps is given twice"),
    (dict(variant=bd.Variant(predictor="directpred"), predictor="learned"), r"^predictor='learned' conflicts"),
    (dict(alpha_p=[1.0, 0.0]), r"^alpha_p must be > 0, got 0.0"),
    (dict(sigma2=[-0.5, 0.5]), r"^sigma2 must be >= 0, got -0.5"),
])
def test_bad_predictor_sweeps_are_refused_naming_the_parameter(kw, match):
    with pytest.raises(ValueError, match=match):
        sweep("matrix", t1=1.0, dt=0.1, progress=False, **kw)


@pytest.mark.slow
def test_points_and_variant_and_the_resume_key(tmp_path):
    """`points` may name a predictor parameter; `variant=` is the shorthands' object; the predictor's fields are part
    of the resume key (another ε on the same out is refused, naming predictor_params)."""
    v = bd.Variant(ema=False, stop_grad=True, predictor="directpred")
    ds = sweep("modes", variant=v, points={"eps": [0.1, 0.3], "eta": [0.0, 0.05]}, t1=1.0, dt=0.1, seeds=1, n1=3,
               progress=False)
    assert dict(ds.sizes) == {"point": 2, "seed": 1, "mode": 3} and ds.eps.values.tolist() == [0.1, 0.3]
    cfg = json.loads(ds.attrs["config"])
    assert (cfg["ema"], cfg["predictor"], cfg["predictor_params"]["eps"]) == (False, "directpred", "swept")
    out = tmp_path / "r.nc"
    kw = dict(predictor="directpred", t1=1.0, dt=0.1, seeds=1, n1=3, chunk=1, out=out, keep_parts=True,
              progress=False)
    sweep("modes", eps=0.2, **kw)
    out.unlink()
    with pytest.raises(ValueError, match="differs in predictor_params"):
        sweep("modes", eps=0.3, **kw)
