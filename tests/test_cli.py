"""The `byoldyn` command: a small real run, and one-line errors with exit status 2."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from byoldyn.cli import main


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
        (["simulate", "--alpha-p", "0"], "alpha_p must be > 0, got 0.0"),
        (["simulate", "--eta", "-1"], "eta must be >= 0, got -1.0"),
        (["simulate", "--sigma2", "x"], "not a number: 'x'"),
        (["simulate", "--n1", "0"], "must be a positive integer, got 0"),
        (["simulate", "--bogus"], "unrecognized arguments: --bogus"),
        (["simulate", "--predictor", "mlp"], "invalid choice: 'mlp'"),
        (["simulate", "--out", "x.csv"], "--out must end in .nc"),
        ([], "the following arguments are required: command"),
    ],
)
def test_bad_input_one_line_exit_2(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_console_script_exit_status():
    r = subprocess.run([sys.executable, "-m", "byoldyn.cli", "simulate", "--beta", "-3"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "byoldyn: error: beta must be >= 0, got -3.0"
    r = subprocess.run([sys.executable, "-m", "byoldyn.cli", "simulate", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for flag in ("--alpha-p", "--eta", "--eta-p", "--beta", "--sigma2", "--n1", "--n2", "--t1", "--seed",
                 "--no-ema", "--no-stop-grad", "--predictor", "--dt", "--out"):
        assert flag in r.stdout
