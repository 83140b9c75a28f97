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
        (["simulate", "--n-save", "1"], "argument --n-save: must be an integer >= 2 (the saved times include both ends)"),
        (["sweep", "--n-save", "1"], "argument --n-save: must be an integer >= 2 (the saved times include both ends)"),
        (["train-linear", "--n-save", "1"],
         "argument --n-save: must be an integer >= 2 (the saved times include both ends)"),
        (["simulate", "--dt", "0.3", "--t1", "1", "--n-save", "2"],
         "byoldyn: error: --dt must divide the save interval --t1/(--n-save - 1) = 1, got --dt 0.3"),
        (["train-linear", "--ema", "2"], "byoldyn: error: --ema must be in [0, 1], got 2.0"),
        (["train-linear", "--wd-p", "-1"], "byoldyn: error: --wd-p must be in [0, inf], got -1.0"),
        (["train-linear", "--seed", "99999999999999999999999"], "argument --seed: must be an integer in [0, 2**32 - 1]"),
        (["train-linear", "--steps", "10", "--n-save", "4"],
         "byoldyn: error: --n-save - 1 must divide --steps = 10: the saves are evenly spaced steps, got --n-save 4"),
        # tracebacks before
        (["simulate", "--dt", "0"], "byoldyn: error: --dt must be a finite number > 0, got 0"),
        (["simulate", "--dt", "nan"], "byoldyn: error: --dt must be a finite number > 0, got nan"),
        (["train-linear", "--steps", "3000000000"],
         "argument --steps: must be an integer in [1, 2147483647] (the int32 step counter), got 3000000000"),
        # messages that name the flag
        (["simulate", "--scale", "nan"], "byoldyn: error: --scale must be finite, got nan"),
        (["train-linear", "--scale", "inf"], "byoldyn: error: --scale must be finite, got inf"),
        (["sweep", "--level", "matrix", "--method", "adaptive", "--rtol", "0", "--n1", "2", "--t1", "1"],
         "byoldyn: error: --rtol, --atol must be > 0 and max_steps >= 1, got 0.0, 1e-09, 100000"),
        # no abbreviations (the CLI's vocabulary): --sig is not --sigma2, --see not --seeds
        (["simulate", "--sig", "2"], "unrecognized arguments: --sig 2"),
        (["sweep", "--see", "2"], "unrecognized arguments: --see 2"),
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
    # a diverging run (train-linear --lr 50's divergence), at a smaller size (same divergence after 2 steps)
    (["simulate", "--alpha-p", "400", "--scale", "1", "--dt", "0.1", "--t1", "1", "--n-save", "11", "--n1", "3",
      "--n2", "3", "--x64"],
     "byoldyn: failed: simulate diverged after t = 0.2 (2 steps); last finite save t = 0.2: |W| = "),
    (["train-linear", "--steps", "20", "--n-save", "11", "--n1", "3", "--n2", "3", "--lr", "50", "--batch", "8",
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


# ---- the CLI's vocabulary: one meaning, one default, every default shown, no abbreviations ----------

def _subparsers() -> dict:
    """Every subcommand's parser, by name."""
    from byoldyn.cli import add_commands
    from byoldyn.cli.common import Parser

    sub = Parser(prog="byoldyn").add_subparsers(dest="command", parser_class=Parser)
    add_commands(sub)
    return dict(sub.choices)


def test_every_help_shows_its_default():
    """Each option's help states its default (or what None means), switches and required options aside."""
    from byoldyn.cli.common import help_with_default

    for name, p in _subparsers().items():
        assert p.allow_abbrev is False, name
        text = p.format_help()
        assert "UNSET" not in text and "default None" not in text, name
        for action in p._actions:
            h = help_with_default(action)
            if h == "==SUPPRESS==" or not action.option_strings or action.required or action.nargs == 0:
                continue
            assert "default" in h, f"{name} {action.option_strings}: {h!r}"


def test_defaults_shown_are_the_parsed_ones():
    """What the help says is what the parser uses: `(default X)` appended from the action's own default."""
    from byoldyn.cli.common import DEFAULTS

    parsers = _subparsers()
    sim, sw = parsers["simulate"], parsers["sweep"]
    for k, v in DEFAULTS.items():  # one set of defaults for the flow's flags
        assert sim.get_default(k) == sw.get_default(k) == v, k
    text = " ".join(sim.format_help().split())
    assert "weight decay eta >= 0 of W (default 0.01)" in text
    assert "EMA rate beta >= 0 of the target Wa (default 0.5)" in text
    assert "final time in flow units (default 200)" in text
    text = " ".join(parsers["train-linear"].format_help().split())
    assert "one-view or symmetric two-view loss (default one)" in text  # --views showed none before
    text = " ".join(parsers["train"].format_help().split())
    assert "(1,1,1,1) (default 18)" in text and "K = --total-steps (default constant)" in text


def test_n_save_means_saved_times_including_both_ends():
    """`--n-save N`: N saved times including both ends, in every command (said in each help)."""
    for name, p in _subparsers().items():
        action = next((a for a in p._actions if "--n-save" in a.option_strings), None)
        if action is not None:
            assert "including both ends" in action.help, name
            assert action.type("2") == 2
            with pytest.raises(Exception, match="integer >= 2"):
                action.type("1")


@pytest.mark.slow
def test_n_save_gives_n_times_everywhere(tmp_path, capsys):
    """The same --n-save 3 gives three saves, the first and the last at the ends, in simulate, sweep and
    train-linear."""
    small = ["--n1", "2", "--n2", "2", "--x64", "--no-progress", "--n-save", "3"]
    assert main(["simulate", *small, "--t1", "2", "--out", str(tmp_path / "s.nc")]) == 0
    assert main(["sweep", *small, "--t1", "2", "--dt", "0.5", "--out", str(tmp_path / "w.nc")]) == 0
    assert main(["train-linear", *small, "--steps", "4", "--out", str(tmp_path / "t.nc")]) == 0
    capsys.readouterr()
    with xr.open_dataset(tmp_path / "s.nc", engine="h5netcdf") as ds:
        np.testing.assert_allclose(ds.time.values, [0.0, 1.0, 2.0])
    with xr.open_dataset(tmp_path / "w.nc", engine="h5netcdf") as ds:
        np.testing.assert_allclose(ds.time.values, [0.0, 1.0, 2.0])
    with xr.open_dataset(tmp_path / "t.nc", engine="h5netcdf") as ds:
        assert list(ds.step.values) == [0, 2, 4]


def test_progress_rule(monkeypatch):
    """One rule for every command: --progress / --no-progress, else a bar only on a terminal."""
    import argparse

    from byoldyn.cli.common import progress

    parsers = _subparsers()
    for name in ("simulate", "train-linear", "sweep", "train", "reproduce"):
        p = parsers[name]
        assert p.get_default("progress") is None, name
        extra = ["--data", "d"] if name == "train" else []
        assert p.parse_args([*extra, "--no-progress"]).progress is False
        assert p.parse_args([*extra, "--progress"]).progress is True
    for tty in (False, True):
        monkeypatch.setattr("sys.stderr.isatty", lambda tty=tty: tty)
        assert progress(argparse.Namespace(progress=None)) is tty
        assert progress(argparse.Namespace(progress=True)) is True
        assert progress(argparse.Namespace(progress=False)) is False


@pytest.mark.slow
def test_traceback_keeps_the_exit_status():
    """BYOLDYN_TRACEBACK=1 adds the traceback and keeps exit 2 (it was 1)."""
    import os

    env = {**os.environ, "BYOLDYN_TRACEBACK": "1"}
    r = subprocess.run([sys.executable, "-m", "byoldyn.cli", "simulate", "--eta", "-1"], capture_output=True,
                       text=True, env=env)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and err[0] == "Traceback (most recent call last):"
    assert err[-1] == "byoldyn: error: --eta must be >= 0, got -1.0"
