"""`byoldyn.sweeps` (`bd.sweep`): labels, sharding, kill-and-resume, failures, the eta_c boundary, the sweep CLI."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import byoldyn as bd
from byoldyn import theory
from byoldyn.cli import main as cli_main
from byoldyn.cli.ranges import parse_range
from byoldyn.sweeps import parts_dir, summary, sweep

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def _data(ds):
    """The dataset without the run statistics (wall time, chunks computed), which differ between runs."""
    ds = ds.copy()
    ds.attrs = {k: v for k, v in ds.attrs.items() if k != "run"}
    return ds


@pytest.mark.slow
def test_labels_roundtrip_and_matrix_euler_equals_simulate(tmp_path):
    """The saved file round-trips with its labels; Euler at the matrix level is simulate(dt) member by member."""
    out = tmp_path / "s.nc"
    ds = sweep("matrix", alpha_p=[0.5, 2.0], eta=[0.0, 0.05], beta=0.7, sigma2=0.3, n1=3, n2=2, seeds=[4, 9],
               t1=2.0, dt=0.1, method="euler", n_save=4, chunk=3, out=out, progress=False)
    assert dict(ds.sizes) == {"alpha_p": 2, "eta": 2, "seed": 2, "time": 5, "mode": 2}
    assert ds.s.dims == ("alpha_p", "eta", "seed", "time", "mode") and ds.status.dims == ("alpha_p", "eta", "seed")
    back = xr.open_dataset(out, engine="h5netcdf").load()
    xr.testing.assert_identical(back, ds)
    cfg = json.loads(back.attrs["config"])
    assert cfg["level"] == "matrix" and cfg["grid"]["alpha_p"] == [0.5, 2.0] and cfg["fixed"]["beta"] == 0.7
    assert float(back.sigma2) == 0.3 and list(back.seed.values) == [4, 9] and not parts_dir(out).exists()
    assert summary(back)["chunks"] == 3 and int((back.status == 0).sum()) == 8
    # member (alpha_p = 2, eta = 0.05, seed 9) against simulate's fixed-step (GD) mode
    s0 = bd.State.random(jax.random.PRNGKey(9), 3, 2, scale=0.5)
    hp = bd.Hyper(alpha_p=2.0, eta=0.05, beta=0.7)
    data = bd.Data.isotropic(3, 0.3)
    sol = bd.simulate(s0, hp, data, 2.0, dt=0.1, ts=jnp.linspace(0, 2, 5), observe=bd.observables.standard(hp, data, s0))
    m = ds.sel(alpha_p=2.0, eta=0.05, seed=9)
    for k in ("norm_W", "tau_hat", "wa_correlation", "asymmetry", "commutator_normalized"):
        np.testing.assert_allclose(m[k].values, np.asarray(sol.observed[k]), rtol=1e-12, atol=1e-14, err_msg=k)
    np.testing.assert_allclose(m.s.values, np.asarray(sol.observed["s"]), rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_modes_sweep_reproduces_eta_c_and_matches_mode_field():
    """THEORY.md 7.4: complete collapse exactly for eta > eta_c = tau²/(4 kappa) (tau -> 1), over alpha_p x eta."""
    sigma2 = 0.5
    ec = float(theory.eta_c(1.0, 1.0 + sigma2))  # 1/6
    etas = np.r_[np.linspace(0.0, 0.9, 5) * ec, np.linspace(1.04, 1.6, 4) * ec]
    ds = sweep("modes", alpha_p=[0.5, 1.0, 5.0], eta=etas, sigma2=sigma2, beta=1.0, n1=8, scale=1.0, seeds=2,
               t1=400.0, dt=0.02, progress=False)
    cf = ds.collapsed.mean("seed")
    assert int((ds.status != 0).sum()) == 0
    assert float(cf.sel(eta=etas[etas < ec]).max()) == 0.0   # at least one mode survives below eta_c
    assert float(cf.sel(eta=etas[etas > ec]).min()) == 1.0   # every mode collapses above
    # the survivors sit at the stable point p*_+ of Eq. 16 with tau -> 1 and s = p*^2 / alpha_p (Eq. 14)
    m = ds.sel(alpha_p=1.0, eta=etas[2], seed=0)
    alive = m.s.values > 1e-4
    p_plus = float(theory.p_star(1.0, 1.0 + sigma2, etas[2])[1])
    np.testing.assert_allclose(m.p.values[alive], p_plus, rtol=1e-6)
    np.testing.assert_allclose(m.s.values[alive], p_plus ** 2 / 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(m.tau_hat), 1.0, rtol=1e-6)


@pytest.mark.slow
def test_failing_member_is_marked_and_others_complete():
    """A huge alpha_p diverges in fixed-step mode: status 'diverged', NaN observables, the rest unaffected."""
    kw = dict(eta=0.05, sigma2=0.5, n1=3, seeds=2, t1=20.0, dt=0.1, progress=False)
    for level, method in (("modes", "rk4"), ("matrix", "euler")):
        ds = sweep(level, alpha_p=[1.0, 1e6, 2.0], method=method, **kw)
        st = ds.status.values
        assert (st[1] == bd.DIVERGED).all() and (st[[0, 2]] == bd.SUCCEEDED).all(), (level, st)
        assert np.isnan(ds.norm_W.values[1]).all() and np.isfinite(ds.norm_W.values[[0, 2]]).all()
        assert summary(ds)["failed"] == 2
    ok = sweep("matrix", alpha_p=[1.0, 2.0], method="euler", **kw)  # the same members without the bad one
    # (equal up to rounding: XLA vectorises a batch of 6 and of 4 members differently)
    np.testing.assert_allclose(ok.norm_W.values, ds.norm_W.values[[0, 2]], rtol=1e-13)


@pytest.mark.slow
def test_widths_points_and_bad_input():
    """Widths run one after another (modes padded with NaN); explicit points; ValueErrors name the parameter."""
    ds = sweep("symmetric", n1=[2, 3], eta=0.01, seeds=2, t1=5.0, dt=0.1, predictor="symmetric", progress=False)
    assert dict(ds.sizes) == {"n1": 2, "seed": 2, "mode": 3}
    assert np.isnan(ds.s.sel(n1=2).values[:, 2]).all() and np.isfinite(ds.s.sel(n1=3).values).all()
    pts = sweep("modes", points={"alpha_p": [1.0, 2.0, 1.0], "eta": [0.0, 0.0, 0.3]}, sigma2=0.5, seeds=1, t1=5.0,
                dt=0.1, progress=False)
    assert pts.status.dims == ("point", "seed") and list(pts.alpha_p.values) == [1.0, 2.0, 1.0]
    for kw, match in [(dict(alpha_p=[1.0, -1.0]), r"alpha_p must be > 0, got -1.0"),
                      (dict(eta=[0.1, 0.1]), "eta values must be distinct"),
                      (dict(n1=0), "n1 must be positive integers"),
                      (dict(seeds=0), "seeds must be a positive count"),
                      (dict(dt=0.0), "dt must be a finite number > 0"),
                      (dict(method="adaptive"), "matrix level only"),
                      (dict(out="x.csv"), "out must end in .nc"),
                      (dict(out="/proc/byoldyn-x/s.nc"), r"out: cannot write in '/proc' \(files cannot be created"),
                      (dict(points={"alpha_p": [1, 2], "eta": [0.1]}), "same number of values")]:
        with pytest.raises(ValueError, match=match):
            sweep("modes", **{"progress": False, **kw})
    with pytest.raises(ValueError, match="level must be one of"):
        sweep("ode")


@pytest.mark.slow
def test_seeds_are_32_bit_and_never_wrap():
    """Seeds [0, 2**32] gave identical members (the seed wrapped); seeds are refused outside
    [0, 2**32), and every seed up to 2**32 - 1 starts from State.random(PRNGKey(seed)) exactly."""
    with pytest.raises(ValueError, match=r"seeds must be < 2\*\*32 \(32-bit PRNG seeds; larger ones would repeat "
                                         r"smaller ones\), got 4294967296"):
        sweep("matrix", seeds=[0, 2 ** 32], progress=False)
    with pytest.raises(ValueError, match="seeds values must be distinct"):
        sweep("matrix", seeds=[5, 5], progress=False)
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"seeds must be a positive count \(at most 2\*\*32\)"):
        sweep("modes", seeds=2 ** 32 + 1, progress=False)
    with pytest.raises(ValueError, match=r"^sweep too large: 4294967296 members \(seeds 4294967296\) need about"):
        sweep("modes", seeds=2 ** 32, progress=False)  # refused from the count: no 2**32-element array is built
    assert time.perf_counter() - t < 1.0
    seeds = [0, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1]
    ds = sweep("modes", n1=3, seeds=seeds, t1=1.0, dt=0.5, n_save=1, progress=False)
    want = [float(jnp.linalg.norm(bd.State.random(jax.random.PRNGKey(s), 3, 3, scale=0.5).W)) for s in seeds]
    np.testing.assert_allclose(ds.norm_W.isel(time=0).values, want, rtol=1e-12)
    assert len(set(np.round(want, 12))) == 4


def test_work_bound_is_checked_from_the_sizes(monkeypatch):
    """What cannot fit is refused before the member table or any state exists, naming the
    parameter, the estimate and the limit (`BYOLDYN_MEMORY_LIMIT` overrides the default fraction of memory)."""
    from byoldyn.sweeps import MEMORY_FRACTION, memory_limit

    monkeypatch.delenv("BYOLDYN_MEMORY_LIMIT", raising=False)
    limit, source = memory_limit()
    assert MEMORY_FRACTION == 0.5 and source.startswith("0.5 of the ") and 0 < limit < float("inf")
    monkeypatch.setenv("BYOLDYN_MEMORY_LIMIT", "1e9")
    assert memory_limit() == (1e9, "BYOLDYN_MEMORY_LIMIT")
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"^n1 = 100000, n2 = 100000 too large at the matrix level: one member needs "
                                         r"about 2.96 TB, above the memory limit 1 GB \(BYOLDYN_MEMORY_LIMIT\)$"):
        sweep("matrix", n1=100000, progress=False)
    with pytest.raises(ValueError, match=r"^sweep too large: 100000000 members \(alpha_p 10000 x eta 10000 x seeds 1\)"
                                         r" need about 23.4 GB of memory, above the memory limit 1 GB"):
        sweep("modes", n1=2, alpha_p=np.linspace(1, 2, 10_000), eta=np.linspace(0, 1, 10_000), progress=False)
    with pytest.raises(ValueError, match=r"^dt = 1e-300 is too small for t1 = 100.0: 1e\+302 steps per save interval"):
        sweep("modes", dt=1e-300, progress=False)
    assert time.perf_counter() - t < 2.0


_KILL_SCRIPT = """
import sys, jax
jax.config.update("jax_enable_x64", True)
from byoldyn.sweeps import sweep
sweep("matrix", alpha_p=[0.5, 2.0], eta=[0.0, 0.02, 0.05, 0.1], n1=4, seeds=4, sigma2=0.5, t1=100.0, dt=0.01,
      chunk=4, out=sys.argv[1], keep_parts=True, progress=False)
"""
_KILL_ARGS = dict(alpha_p=[0.5, 2.0], eta=[0.0, 0.02, 0.05, 0.1], n1=4, seeds=4, sigma2=0.5, t1=100.0, dt=0.01,
                  chunk=4, keep_parts=True, progress=False)


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(tmp_path):
    """SIGKILL mid-sweep; the rerun reuses every finished chunk (counted, files untouched) and equals a clean run."""
    out = tmp_path / "k.nc"
    parts = parts_dir(out)
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(out)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while len(list(parts.glob("chunk-*.nc"))) < 2 and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not out.exists()
    done = {f.name: f.stat().st_mtime_ns for f in parts.glob("chunk-*.nc")}
    assert 2 <= len(done) < 8, len(done)
    for f in parts.glob("chunk-*.nc"):  # every file that looks complete is complete
        with xr.open_dataset(f, engine="h5netcdf") as c:
            assert c.sizes["member"] == 4 and np.isfinite(c.norm_W.values).all()
    with pytest.raises(ValueError, match=r"different sweep configuration \(differs in .*t1\)"):
        sweep("matrix", out=out, **{**_KILL_ARGS, "t1": 101.0})
    resumed = sweep("matrix", out=out, **_KILL_ARGS)
    run = summary(resumed)
    assert run["reused"] == len(done) and run["computed"] == 8 - len(done)
    assert {f: (parts / f).stat().st_mtime_ns for f in done} == done  # finished chunks never rewritten
    clean = sweep("matrix", out=tmp_path / "clean.nc", **_KILL_ARGS)
    assert summary(clean)["computed"] == 8
    xr.testing.assert_identical(_data(resumed), _data(clean))
    xr.testing.assert_identical(_data(xr.open_dataset(out, engine="h5netcdf").load()), _data(clean))
    again = sweep("matrix", out=out, **_KILL_ARGS)  # complete: returned from the file, nothing recomputed
    assert summary(again)["computed"] == 0 and summary(again)["reused"] == 8
    xr.testing.assert_identical(_data(again), _data(clean))


@pytest.mark.slow
def test_sharded_over_four_cpu_devices_equals_one_device():
    """The member axis sharded over 4 forced CPU devices gives bit-identical results to one device."""
    code = textwrap.dedent("""
        import jax, numpy as np
        jax.config.update("jax_enable_x64", True)
        from byoldyn.sweeps import sweep
        assert jax.device_count() == 4
        diffs = []
        for level, kw in (("matrix", dict(method="rk4", n_save=3)), ("modes", dict(method="rk4"))):
            args = dict(alpha_p=[0.5, 1.0, 3.0], eta=[0.0, 0.1], sigma2=0.4, n1=3, seeds=3, t1=3.0, dt=0.05,
                        chunk=7, progress=False, **kw)
            a = sweep(level, **args)
            b = sweep(level, devices=jax.devices()[:1], **args)
            assert a.attrs["config_hash"] == b.attrs["config_hash"]
            assert (a.status.values == b.status.values).all()
            for k in a.data_vars:
                x, y = a[k].values, b[k].values
                same = (x == y) | (np.isnan(x) & np.isnan(y)) if x.dtype.kind == "f" else (x == y)
                diffs.append(int((~same).sum()))
        print(sum(diffs), jax.device_count())
    """)
    env = {**ENV, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["0", "4"]


@pytest.mark.parametrize("text, value", [
    ("0.5", 0.5), ("0.1,0.5,1", [0.1, 0.5, 1.0]), ("0:0.2:3", [0.0, 0.1, 0.2]),
    ("log:0.1:10:3", [0.1, 1.0, 10.0]), ("2:2:1", 2.0),
])
def test_cli_parses_ranges(text, value):
    np.testing.assert_allclose(parse_range(text), value, rtol=1e-12)


@pytest.mark.parametrize("argv, match", [
    (["sweep", "--alpha-p", "1:2"], "not a value, list or range: '1:2'"),
    (["sweep", "--alpha-p", "log:0:1:4"], "needs both ends > 0"),
    (["sweep", "--eta", "0:1:0"], "the count in '0:1:0' must be a positive integer"),
    (["sweep", "--eta", "a,b"], "not a value, list or range"),
    (["sweep", "--alpha-p=-1,2"], "--alpha-p must be > 0, got -1.0"),
    (["sweep", "--n1", "2.5"], "must be positive integers"),
    (["sweep", "--level", "ode"], "invalid choice: 'ode'"),
    (["sweep", "--out", "x.csv"], "--out must end in .nc"),
    (["plot", "missing.nc"], "no such file"),
])
def test_cli_bad_ranges_exit_2(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1, err


@pytest.mark.slow
def test_cli_sweep_resume_and_plot(tmp_path, capsys):
    out = tmp_path / "c.nc"
    argv = ["sweep", "--alpha-p", "log:0.5:2:3", "--eta", "0:0.3:4", "--seeds", "2", "--sigma2", "0.5", "--n1", "3",
            "--t1", "50", "--dt", "0.05", "--chunk", "8", "--x64", "--no-progress", "--resume", "--out", str(out)]
    assert cli_main(argv) == 0
    assert "24 members (alpha_p 3 x eta 4 x seed 2), 0 failed; 3 chunk(s) computed" in capsys.readouterr().out
    ds = xr.open_dataset(out, engine="h5netcdf")
    np.testing.assert_allclose(ds.alpha_p.values, [0.5, 1.0, 2.0])
    np.testing.assert_allclose(ds.eta.values, [0.0, 0.1, 0.2, 0.3])
    assert float(ds.collapsed.sel(eta=0.3).mean()) == 1.0 and float(ds.collapsed.sel(eta=0.0).mean()) == 0.0
    assert cli_main(argv) == 0  # complete: nothing recomputed
    assert "0 chunk(s) computed, 3 reused" in capsys.readouterr().out  # the complete file, returned as is
    assert cli_main(["plot", str(out)]) == 0
    assert (tmp_path / "c.png").stat().st_size > 20_000
    assert cli_main(["plot", str(out), "--var", "s"]) == 2
    assert "per mode" in capsys.readouterr().err


@pytest.mark.slow
def test_directpred_sweeps_at_the_matrix_level():
    """DirectPred / DirectCopy are swept at the matrix level (Wp = g(F̂), THEORY.md 10.2), where the
    fixed-step RK4 program agrees with the adaptive per-member solves (RK4's O(dt⁴) error at dt = 0.02 over
    t1 = 4: < 1e-6 relative, against rtol 1e-10), Wp's observables included (the saved Wp is g(F̂), as
    `simulate` saves it), and differs from the learned Wp (control); the symmetric level, which has no
    F̂-derived Wp, refuses them in one line (the mode level runs them, tests/test_sweep_typed.py)."""
    kw = dict(alpha_p=1.0, eta=[0.0, 0.05], seeds=2, n1=4, sigma2=0.5, t1=4.0, progress=False)
    for name in ("directpred", "directcopy"):
        rk4 = sweep("matrix", predictor=name, dt=0.02, **kw)
        ada = sweep("matrix", predictor=name, method="adaptive", dt=None, rtol=1e-10, atol=1e-12, **kw)
        assert (rk4.status.values == bd.SUCCEEDED).all() and json.loads(rk4.attrs["config"])["predictor"] == name
        for v in ("s", "p", "alignment_weighted", "asymmetry"):
            np.testing.assert_allclose(rk4[v].values, ada[v].values, rtol=1e-6, atol=1e-9, err_msg=v)
        learned = sweep("matrix", dt=0.02, **kw)
        assert np.max(np.abs(learned.s.values - rk4.s.values)) > 1e-3, name
    with pytest.raises(ValueError, match="^predictor='directpred' has no symmetric-level flow"):
        sweep("symmetric", alpha_p=1.0, eta=0.0, seeds=1, t1=1.0, predictor="directpred", progress=False)
