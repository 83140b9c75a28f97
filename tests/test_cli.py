"""The `byoldyn` command: a small real run; one-line errors naming the flag, exit status 2; a diverging run
writes its result and exits 1 with one line (never int() of a NaN)."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from byoldyn.cli import main


@pytest.mark.slow
def test_simulate_writes_netcdf_and_png(tmp_path, capsys):
    out = tmp_path / "run.nc"
    code = main(["simulate", "--n1", "4", "--n2", "3", "--t1", "20", "--n-save", "11", "--eta", "0.05",
                 "--sigma2", "0.3", "--x64", "--out", str(out)])
    assert code == 0
    assert "succeeded" in capsys.readouterr().out
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert ds.sizes["time"] == 11 and ds.sizes["mode"] == 3
    assert ds.attrs["status"] == "succeeded"
    np.testing.assert_allclose(ds.time.values[-1], 20.0)
    assert float(ds.theorem1_residual.max()) < 1e-6
    assert '"eta": 0.05' in ds.attrs["config"]
    assert (tmp_path / "run.png").stat().st_size > 10_000
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes left no temporaries


@pytest.mark.parametrize(
    "argv, match",
    [
        (["simulate", "--alpha-p", "0"], "byoldyn: error: --alpha-p must be > 0, got 0.0"),
        (["simulate", "--eta", "-1"], "byoldyn: error: --eta must be >= 0, got -1.0"),
        (["simulate", "--rtol", "0"], "byoldyn: error: --rtol and --atol must be > 0, got rtol=0.0, atol=1e-09"),
        (["simulate", "--seed", "4294967296"], "argument --seed: must be an integer in [0, 2**32 - 1], got 4294967296"),
        (["simulate", "--seed", "-1"], "argument --seed: must be an integer in [0, 2**32 - 1], got -1"),
        (["simulate", "--n-save", "1"], "argument --n-save: must be an integer >= 2 (the saves include t = 0 and t1)"),
        (["simulate", "--dt", "0.3", "--t1", "1", "--n-save", "2"],
         "byoldyn: error: --dt must divide the save interval --t1/(--n-save - 1) = 1, got --dt 0.3"),
        (["train-linear", "--ema", "2"], "byoldyn: error: --ema must be in [0, 1], got 2.0"),
        (["train-linear", "--wd-p", "-1"], "byoldyn: error: --wd-p must be in [0, inf], got -1.0"),
        (["train-linear", "--seed", "99999999999999999999999"], "argument --seed: must be an integer in [0, 2**32 - 1]"),
        (["train-linear", "--steps", "10", "--n-save", "3"], "byoldyn: error: --n-save must divide --steps = 10, got 3"),
        (["simulate", "--sigma2", "x"], "not a number: 'x'"),
        (["simulate", "--n1", "0"], "must be a positive integer, got 0"),
        (["simulate", "--bogus"], "unrecognized arguments: --bogus"),
        (["simulate", "--predictor", "mlp"], "invalid choice: 'mlp'"),
        (["simulate", "--out", "x.csv"], "--out must end in .nc"),
        ([], "the following arguments are required: command"),
    ],
)
def test_bad_input_one_line_exit_2(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing is written, even by mistake, into the repository
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


@pytest.mark.slow
def test_console_script_exit_status():
    r = subprocess.run([sys.executable, "-m", "byoldyn.cli", "simulate", "--beta", "-3"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "byoldyn: error: --beta must be >= 0, got -3.0"
    r = subprocess.run([sys.executable, "-m", "byoldyn.cli", "simulate", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for flag in ("--alpha-p", "--eta", "--eta-p", "--beta", "--sigma2", "--n1", "--n2", "--t1", "--seed",
                 "--no-ema", "--no-stop-grad", "--predictor", "--dt", "--out"):
        assert flag in r.stdout


@pytest.mark.parametrize("argv, line", [
    # the reproduction commands of issue 15 item 2, at a smaller size (same divergence after 2 steps)
    (["simulate", "--alpha-p", "400", "--scale", "1", "--dt", "0.1", "--t1", "1", "--n-save", "11", "--n1", "3",
      "--n2", "3", "--x64"],
     "byoldyn: failed: simulate diverged after t = 0.2 (2 steps); last finite save t = 0.2: |W| = "),
    (["train-linear", "--steps", "20", "--n-save", "10", "--n1", "3", "--n2", "3", "--lr", "50", "--batch", "8",
      "--x64"],
     "byoldyn: failed: train-linear diverged after step 2 (t = 100); last finite save step 2: |W| = "),
])
@pytest.mark.slow
def test_divergence_writes_result_and_exits_1(argv, line, tmp_path, capsys):
    out = tmp_path / "div.nc"
    assert main([*argv, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert captured.out == "" and len(err) == 1, err
    assert err[0].startswith(line) and err[0].endswith(f", modes = 3; wrote {out} and {tmp_path / 'div.png'}")
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert ds.attrs["status"] == "diverged" and ds.attrs["num_steps"] == 2
    t_stop = 0.2 if argv[0] == "simulate" else 100.0
    np.testing.assert_allclose(ds.attrs["t_final"], t_stop)
    w = ds.norm_W.values
    good = ds.time.values <= t_stop + 1e-9
    assert np.isfinite(w[good]).all() and np.isnan(w[~good]).all() and (~good).any()
    assert float(err[0].split("|W| = ")[1].split(",")[0]) == pytest.approx(w[good][-1], rel=1e-3)
    assert (tmp_path / "div.png").stat().st_size > 10_000


def test_output_checked_before_computing(tmp_path, capsys, monkeypatch):
    """simulate / train-linear / reproduce refuse an unwritable OUT before they compute anything."""
    import byoldyn
    import byoldyn.figures
    import byoldyn.sampled

    def boom(*a, **k):
        raise AssertionError("computed before checking --out")

    for mod, name in ((byoldyn, "simulate"), (byoldyn.sampled, "train"), (byoldyn.figures, "reproduce")):
        monkeypatch.setattr(mod, name, boom)
    f = tmp_path / "f"
    f.write_text("")
    for argv in (["simulate", "--out", f"{f}/x.nc"], ["train-linear", "--out", f"{f}/x.nc"],
                 ["reproduce", "--out", str(f)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(f) in err


@pytest.mark.slow
def test_io_fault_after_computing_is_a_failed_run(tmp_path, capsys, monkeypatch):
    """An OSError once the computation started (here: the disk fills while the result is written) exits 1."""
    import errno

    import byoldyn.io

    def full(ds, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(byoldyn.io, "save_netcdf", full)
    out = tmp_path / "run.nc"
    argv = ["simulate", "--alpha-p", "4", "--scale", "1", "--dt", "0.1", "--t1", "1", "--n-save", "11", "--n1", "3",
            "--n2", "3", "--x64"]  # the program of the divergence test (compiled once)
    assert main([*argv, "--out", str(out)]) == 1
    assert capsys.readouterr().err == f"byoldyn: failed: No space left on device: {str(out)!r}\n"
    assert not out.exists()
