"""The CLI's one error path (byoldyn.errors): every subcommand with an output place that cannot be written and
with a corrupt input gives exactly one line on stderr and exit 2, before any JAX compile; the error handler's
statuses (1 for a run that started and failed); the three entry points behave the same.

The tests run as root, where chmod 0o555 stops nothing and os.access(W_OK) is True, so the unwritable places
are honest ones: a path under a regular file (NotADirectoryError) and a path under /proc, where not even root
can create a file (checked by the `proc` fixture)."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jax.monitoring
import numpy as np
import pytest

from byoldyn import errors
from byoldyn.cli import main
from byoldyn.errors import RunFailed, as_flags, check_output_dir, check_output_file, one_line, run_command, started

_COMPILES: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: _COMPILES.append(event) if event.endswith("backend_compile_duration") else None)

TINY_NETS = ["--width", "0.0625", "--depth", "10", "--proj-hidden", "32", "--proj-dim", "16", "--batch-size", "8",
             "--no-progress", "--epochs", "0", "--eval", "none"]


@pytest.fixture(scope="module")
def proc():
    """/proc: a directory in which root cannot create a file (skip where it can)."""
    try:
        fd, p = tempfile.mkstemp(dir="/proc")
    except OSError:
        return Path("/proc")
    os.close(fd)
    os.remove(p)
    pytest.skip("files can be created in /proc here")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Valid inputs (so that only the output place is wrong) and corrupt ones."""
    root = tmp_path_factory.mktemp("inputs")
    d = {"root": root, "file": root / "afile"}
    d["file"].write_text("not a directory\n")
    # plot: a real (tiny) sweep file
    d["sweep"] = root / "sweep.nc"
    assert main(["sweep", "--alpha-p", "1,2", "--eta", "0,0.1", "--n1", "2", "--t1", "1", "--dt", "0.5", "--x64",
                 "--no-progress", "--out", str(d["sweep"])]) == 0
    # compare: an untrained-network run (eval.json only); a run whose log.nc is garbage
    d["run"] = root / "init"
    d["run"].mkdir()
    (d["run"] / "eval.json").write_text(json.dumps({"n_train": 24, "n_test": 12, "knn_acc": 0.3, "linear_acc": 0.3,
                                                    "step": 0, "epoch": 0.0}))
    d["bad_run"] = root / "bad_run"
    d["bad_run"].mkdir()
    (d["bad_run"] / "log.nc").write_bytes(np.random.default_rng(0).bytes(4096))
    d["garbage_nc"] = root / "garbage.nc"
    d["garbage_nc"].write_bytes(b"CDF\x01" + np.random.default_rng(1).bytes(2000))
    # train: a tiny image folder; a CIFAR-10 folder of random bytes; an image folder with a truncated PNG
    d["images"] = root / "images"
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL comes with the nets extra
        Image = None
    rng = np.random.default_rng(2)
    for split, n in (("train", 8), ("test", 4)):
        for i in range(n):
            c = d["images"] / split / f"c{i % 2}"
            c.mkdir(parents=True, exist_ok=True)
            if Image is not None:
                Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(c / f"{i}.png")
    d["bad_cifar"] = root / "bad_cifar" / "cifar-10-batches-py"
    d["bad_cifar"].mkdir(parents=True)
    for name in ["batches.meta", "test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]:
        (d["bad_cifar"] / name).write_bytes(rng.bytes(1000))
    d["bad_cifar"] = d["bad_cifar"].parent
    d["bad_png"] = root / "bad_png"
    for split in ("train", "test"):
        c = d["bad_png"] / split / "c0"
        c.mkdir(parents=True)
        (c / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(50))
    return d


def _run(argv, capsys):
    """main(argv) -> (status, the stderr lines); asserts that nothing was compiled and nothing printed on stdout."""
    capsys.readouterr()
    before = len(_COMPILES)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert out == ""
    assert len(_COMPILES) == before, "an XLA compile ran before the error"
    return code, err.splitlines()


# every subcommand, with an output place that cannot be written: (argv, the output flag's value)
_FILE_OUT = {
    "simulate": lambda d, out: ["simulate", "--n1", "2", "--n2", "2", "--t1", "1", "--n-save", "2", "--out", out],
    "train-linear": lambda d, out: ["train-linear", "--n1", "2", "--n2", "2", "--steps", "2", "--n-save", "2",
                                    "--out", out],
    "sweep": lambda d, out: ["sweep", "--n1", "2", "--t1", "1", "--dt", "0.5", "--no-progress", "--out", out],
}
_DIR_OUT = {
    "reproduce": lambda d, out: ["reproduce", "--size", "small", "--only", "fig4_cubic", "--out", out],
    "train": lambda d, out: ["train", "--data", d["images"], *TINY_NETS, "--out", out],
    "compare": lambda d, out: ["compare", d["run"], "--out", out],
}


def test_every_subcommand_is_covered(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    listed = text.split("{", 1)[1].split("}", 1)[0].split(",")
    assert "Exit status: 0 success; 2 bad input" in " ".join(text.split())
    assert sorted(listed) == sorted([*_FILE_OUT, *_DIR_OUT, "plot"])


@pytest.mark.parametrize("command", sorted(_FILE_OUT))
@pytest.mark.parametrize("place", ["under_file", "proc", "directory"])
def test_unwritable_output_file(command, place, inputs, proc, capsys):
    d = inputs
    if place == "under_file":
        out, bad = d["file"] / "x.nc", d["file"]
    elif place == "proc":
        out, bad = proc / "byoldyn-x.nc", proc
    else:
        out = bad = d["root"] / f"dir-{command}.nc"
        out.mkdir(exist_ok=True)
    code, err = _run(_FILE_OUT[command](d, out), capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("byoldyn: error: ") and str(bad) in err[0]
    if command != "sweep":  # the exact lines of errors.check_output_file (sweep's own lines are byoldyn.sweeps')
        expect = {"under_file": f"--out: {str(bad)!r} is not a directory",
                  "proc": f"--out: cannot write in {str(bad)!r} (files cannot be created there)",
                  "directory": f"--out {str(bad)!r} is a directory, not a file"}[place]
        assert err[0] == "byoldyn: error: " + expect


@pytest.mark.parametrize("command", ["simulate", "train-linear"])
def test_png_beside_out_checked_first(command, tmp_path, capsys):
    (tmp_path / "x.png").mkdir()
    code, err = _run(_FILE_OUT[command]({}, tmp_path / "x.nc"), capsys)
    assert code == 2 and err == [f"byoldyn: error: the PNG beside --out {str(tmp_path / 'x.png')!r} is a directory, "
                                 "not a file"]
    assert not (tmp_path / "x.nc").exists()


@pytest.mark.parametrize("command", sorted(_DIR_OUT))
@pytest.mark.parametrize("place", ["a_file", "under_file", "proc"])
def test_unwritable_output_dir(command, place, inputs, proc, capsys):
    d = inputs
    out, bad = {"a_file": (d["file"], d["file"]), "under_file": (d["file"] / "out", d["file"]),
                "proc": (proc / "byoldyn-out", proc)}[place]
    code, err = _run(_DIR_OUT[command](d, out), capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("byoldyn: error: ") and str(bad) in err[0]
    if command == "reproduce":
        expect = {"a_file": f"--out {str(bad)!r} is a file, not a directory",
                  "under_file": f"--out: {str(bad)!r} is not a directory",
                  "proc": f"--out: cannot write in {str(bad)!r} (files cannot be created there)"}[place]
        assert err[0] == "byoldyn: error: " + expect


@pytest.mark.parametrize("place", ["under_file", "proc"])
def test_plot_unwritable_output(place, inputs, proc, capsys):
    out, bad = {"under_file": (inputs["file"] / "x.png", inputs["file"]), "proc": (proc / "x.png", proc)}[place]
    code, err = _run(["plot", inputs["sweep"], "--out", out], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("byoldyn: error: ") and str(bad) in err[0], err


@pytest.mark.parametrize("argv, named", [
    (lambda d: ["plot", d["garbage_nc"]], "garbage_nc"),
    (lambda d: ["compare", d["bad_run"], "--out", d["root"] / "cmp"], "bad_run"),
    (lambda d: ["train", "--data", d["bad_cifar"], *TINY_NETS, "--out", d["root"] / "t1"], "bad_cifar"),
    (lambda d: ["train", "--data", d["bad_png"], *TINY_NETS, "--out", d["root"] / "t2"], "bad_png"),
], ids=["plot-garbage-nc", "compare-garbage-log", "train-garbage-cifar", "train-truncated-png"])
def test_corrupt_input(argv, named, inputs, capsys):
    code, err = _run(argv(inputs), capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("byoldyn: error: ") and str(inputs[named]) in err[0], err


# ---- refusals that name the flag, and sizes that cannot fit, before any compile ----------------

@pytest.mark.parametrize("argv, line", [
    (["simulate", "--n1", "100000", "--n2", "1000"],
     "byoldyn: error: simulate --n1 100000 --n2 1000 --n-save 201 needs about 9.67 GB, above the memory limit 1 GB "
     "(BYOLDYN_MEMORY_LIMIT); use smaller sizes"),
    (["simulate", "--n-save", "100000000"],
     "byoldyn: error: simulate --n1 16 --n2 16 --n-save 100000000 needs about 25.6 GB, above the memory limit 1 GB "
     "(BYOLDYN_MEMORY_LIMIT); use smaller sizes"),
    (["simulate", "--n1", "100000", "--n2", "1000", "--dt", "1"],  # fixed steps: every saved state is kept
     "byoldyn: error: simulate --n1 100000 --n2 1000 --n-save 201 needs about 174 GB, above the memory limit 1 GB "
     "(BYOLDYN_MEMORY_LIMIT); use smaller sizes"),
    (["train-linear", "--batch", "100000000"],
     "byoldyn: error: train-linear --batch 100000000 --n1 16 --n2 16 --n-save 101 needs about 141 GB, above the "
     "memory limit 1 GB (BYOLDYN_MEMORY_LIMIT); use smaller sizes"),
    (["train-linear", "--steps", "100000000", "--n-save", "100000001"],
     "byoldyn: error: train-linear --batch 128 --n1 16 --n2 16 --n-save 100000001 needs about 51.2 GB, above the "
     "memory limit 1 GB (BYOLDYN_MEMORY_LIMIT); use smaller sizes"),
], ids=["simulate-n1", "simulate-n-save", "simulate-dt", "train-linear-batch", "train-linear-n-save"])
def test_sizes_that_cannot_fit_are_refused(argv, line, tmp_path, capsys, monkeypatch):
    """simulate and train-linear estimate their bytes and compare with the memory limit before compiling (these
    ended in RESOURCE_EXHAUSTED); BYOLDYN_MEMORY_LIMIT fixes the limit for the test."""
    monkeypatch.setenv("BYOLDYN_MEMORY_LIMIT", "1e9")
    code, err = _run([*argv, "--out", tmp_path / "x.nc"], capsys)
    assert (code, err) == (2, [line])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv, line", [
    (lambda d: ["train", "--data", d["images"], *TINY_NETS, "--width", "0", "--out", d["root"] / "w0"],
     "byoldyn: error: --width must be > 0, got 0.0"),
    (lambda d: ["train", "--data", d["images"], *TINY_NETS, "--ema", "1", "--out", d["root"] / "e1"],
     "byoldyn: error: --ema must be < 1, got 1.0"),
    (lambda d: ["plot", d["sweep"], "--x", "eta", "--y", "eta", "--out", d["root"] / "p.png"],
     "byoldyn: error: --x and --y must be two different parameters, got eta for both"),
], ids=["train-width", "train-ema", "plot-same-axes"])
def test_refusals_name_the_flag(argv, line, inputs, capsys):
    code, err = _run(argv(inputs), capsys)
    assert (code, err) == (2, [line])


@pytest.mark.slow
def test_train_epochs_0_with_a_batch_larger_than_the_data(inputs, capsys):
    """--epochs 0 trains nothing: a batch larger than the 8 training images is no reason to refuse."""
    out = inputs["root"] / "big-batch"
    argv = ["train", "--data", inputs["images"], *TINY_NETS, "--eval", "knn", "--out", out]
    argv[argv.index("--batch-size") + 1] = "64"
    assert main([str(a) for a in argv]) == 0
    assert json.loads((out / "eval.json").read_text())["step"] == 0
    argv[argv.index("--epochs") + 1] = "1"  # a step needs a full batch: refused, naming it
    assert main([str(a) for a in argv]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == ("byoldyn: error: --batch-size must be at most the 8 training "
                                                        "images, got 64")


def test_plot_seed_axis_label(inputs, tmp_path):
    """plot --x seed: the heatmap averages over nothing but the other swept parameters (not over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xarray as xr

    from byoldyn.figures.sweeps import plot_lines, plot_sweep

    ds = xr.open_dataset(inputs["sweep"], engine="h5netcdf").load()  # alpha_p x eta, one seed
    fig, ax = plt.subplots(1, 2)
    plot_sweep(ds, "collapsed", "seed", "eta", ax=ax[0])
    assert fig.axes[-1].get_ylabel() == "collapse fraction over alpha_p"
    plot_sweep(ds, "collapsed", "alpha_p", "eta", ax=ax[1])
    assert fig.axes[-1].get_ylabel() == "collapse fraction over seeds"
    ax2 = plot_lines(ds, "n_modes", "alpha_p", hue="eta")
    assert ax2.get_ylabel() == "n_modes (mean ± std over seeds)"
    plt.close("all")


# ---- the API's refusals ----------------------------------------------------------------------

def test_api_refusals_name_the_parameter():
    import jax

    import byoldyn as bd

    with pytest.raises(ValueError, match=r"^X must have shape \(\.\.\., n1, n1\) with n1 >= 1, got \(0, 0\)$"):
        bd.Data(X=np.zeros((0, 0)), Xp=np.zeros((0, 0)))
    with pytest.raises(ValueError, match=r"^W must have shape \(\.\.\., n2, n1\) with n1, n2 >= 1, got \(0, 2\)$"):
        bd.State(np.zeros((0, 2)), np.zeros((0, 0)))
    with pytest.raises(ValueError, match=r"^State\.random\(n1 = 1000000, n2 = 1000000\) needs [24]e\+04 GB, more than "
                                         r"the .* GB of memory of the \w+ device$"):
        bd.State.random(jax.random.PRNGKey(0), 10**6, 10**6)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"^scale must be finite"):
            bd.State.random(jax.random.PRNGKey(0), 2, 2, scale=bad)
        with pytest.raises(ValueError, match=r"^wp_scale must be finite"):
            bd.State.random(jax.random.PRNGKey(0), 2, 2, wp_scale=bad)


def _entry_argv(cmd, proc, tmp_path):
    return {"simulate": ["simulate", "--out", str(proc / "x.nc")],
            "sweep": ["sweep", "--out", str(proc / "x.nc")],
            "compare": ["compare", str(tmp_path), "--out", str(proc)]}[cmd]


@pytest.mark.slow
def test_entry_points_behave_the_same(tmp_path, proc):
    """The console script `byoldyn` and `python -m byoldyn.cli` (run at once) print the same one line."""
    import shutil

    byoldyn = [shutil.which("byoldyn")] if shutil.which("byoldyn") else [sys.executable, "-m", "byoldyn.cli"]
    runs = [(byoldyn, "simulate"), ([sys.executable, "-m", "byoldyn.cli"], "sweep"),
            ([sys.executable, "-m", "byoldyn.cli"], "compare")]
    env = {k: v for k, v in os.environ.items() if k != "BYOLDYN_TRACEBACK"}
    procs = [(cmd, subprocess.Popen([*exe, *_entry_argv(cmd, proc, tmp_path)], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)) for exe, cmd in runs]
    expect = {"simulate": f"byoldyn: error: --out: cannot write in {str(proc)!r} (files cannot be created there)"}
    for cmd, p in procs:
        out, err = p.communicate(timeout=300)
        assert (p.returncode, out, len(err.splitlines())) == (2, "", 1), (cmd, err)
        assert err.startswith("byoldyn: error: ") and str(proc) in err
        if cmd in expect:
            assert err.strip() == expect[cmd]


# ---- the handler itself --------------------------------------------------------------------------------


def _status(func, capsys):
    code = run_command(func)
    return code, capsys.readouterr().err.splitlines()


def _raise(e, start=False):
    def f():
        if start:
            started()
        raise e
    return f


@pytest.mark.parametrize("exc, start, code, line", [
    (ValueError("alpha_p must be > 0, got 0.0\nmore detail"), False, 2, "byoldyn: error: alpha_p must be > 0, got 0.0"),
    (ValueError("late bad value"), True, 2, "byoldyn: error: late bad value"),
    (FileNotFoundError(2, "No such file or directory", "x.nc"), False, 2,
     "byoldyn: error: No such file or directory: 'x.nc'"),
    (OSError(28, "No space left on device", "out.nc"), True, 1, "byoldyn: failed: No space left on device: 'out.nc'"),
    (OSError(18, "Invalid cross-device link", "a", None, "b"), False, 2, "byoldyn: error: Invalid cross-device link: 'a' -> 'b'"),
    (RunFailed("simulate diverged after t = 0.2 (2 steps)"), False, 1,
     "byoldyn: failed: simulate diverged after t = 0.2 (2 steps)"),
    (EOFError(), False, 2, "byoldyn: error: EOFError"),
    (KeyError("cos"), False, 2, "byoldyn: error: missing 'cos' (KeyError; BYOLDYN_TRACEBACK=1 shows where)"),
    (TypeError("bad"), False, 2, "byoldyn: error: bad (TypeError; BYOLDYN_TRACEBACK=1 shows where)"),
    (MemoryError(), True, 1, "byoldyn: failed: out of memory"),
    (KeyboardInterrupt(), True, 130, "byoldyn: interrupted"),
    (errors.UsageError("byoldyn simulate: error: unrecognized arguments: --x"), False, 2,
     "byoldyn simulate: error: unrecognized arguments: --x"),
])
def test_run_command_statuses(exc, start, code, line, capsys, monkeypatch):
    monkeypatch.delenv("BYOLDYN_TRACEBACK", raising=False)
    assert _status(_raise(exc, start), capsys) == (code, [line])


def test_run_command_started_is_reset_and_bugs_keep_traceback(capsys, monkeypatch):
    monkeypatch.delenv("BYOLDYN_TRACEBACK", raising=False)
    assert _status(_raise(OSError(28, "No space left on device"), True), capsys)[0] == 1
    assert _status(_raise(OSError(28, "No space left on device")), capsys)[0] == 2  # a new command: not started
    with pytest.raises(AttributeError):
        run_command(_raise(AttributeError("a bug")))
    assert run_command(lambda: None) == 0
    monkeypatch.setenv("BYOLDYN_TRACEBACK", "0")
    assert _status(_raise(ValueError("x")), capsys) == (2, ["byoldyn: error: x"])
    monkeypatch.setenv("BYOLDYN_TRACEBACK", "1")  # the traceback too, before the line; the same exit status
    for exc, code in ((ValueError("x"), 2), (RunFailed("x"), 1), (KeyboardInterrupt(), 130)):
        assert run_command(_raise(exc)) == code
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):") and err.splitlines()[-1].endswith(
            "interrupted" if code == 130 else ": x")
    with pytest.raises(AttributeError):  # a bug keeps its traceback
        run_command(_raise(AttributeError("a bug")))


def test_xla_runtime_error_is_a_failed_run(capsys, monkeypatch):
    monkeypatch.delenv("BYOLDYN_TRACEBACK", raising=False)
    XlaRuntimeError = type("XlaRuntimeError", (RuntimeError,), {})
    e = XlaRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8.00GiB.\nBufferAssignment ...")
    assert _status(_raise(e, True), capsys) == (
        1, ["byoldyn: failed: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8.00GiB."])


def test_one_line():
    assert one_line(ValueError("\n\n  first \nsecond")) == "first"
    assert one_line(ValueError()) == "ValueError"
    assert one_line(PermissionError(13, "Permission denied", Path("/x/y"))) == "Permission denied: '/x/y'"


def test_check_output_places(tmp_path, proc):
    f = tmp_path / "f.nc"
    assert check_output_file(f, suffix=".nc") == f and not list(tmp_path.iterdir())  # the probe left nothing
    assert check_output_file(tmp_path / "new" / "deeper" / "f.nc") == tmp_path / "new" / "deeper" / "f.nc"
    assert not (tmp_path / "new").exists()  # nothing created before the command runs
    with pytest.raises(ValueError, match=r"^--out must end in \.nc, got 'f\.csv'$"):
        check_output_file("f.csv", suffix=".nc")
    with pytest.raises(ValueError, match=r"^--out '/dev/null' is not a regular file$"):
        check_output_file("/dev/null")  # the atomic rename would replace the device
    with pytest.raises(ValueError, match=r"^--out '/proc' is a directory, not a file$"):
        check_output_file(proc)
    with pytest.raises(ValueError, match=r"^--dir: cannot write in '/proc' \(files cannot be created there\)$"):
        check_output_dir(proc / "a" / "b", "--dir")
    f.write_text("x")
    with pytest.raises(ValueError, match=r"is a file, not a directory$"):
        check_output_dir(f)
    with pytest.raises(ValueError, match=r"^--out: '.*f\.nc' is not a directory$"):
        check_output_dir(f / "sub")
    assert check_output_dir(tmp_path / "d") == tmp_path / "d" and not (tmp_path / "d").exists()


def test_as_flags():
    names = {"gamma_a": "--ema", "rtol": "--rtol", "atol": "--atol"}
    with pytest.raises(ValueError, match=r"^--ema must be in \[0, 1\], got 2.0$"):
        with as_flags(names):
            raise ValueError("gamma_a must be in [0, 1], got 2.0")
    with pytest.raises(ValueError, match=r"^--rtol and --atol must be > 0, got rtol=0.0, atol=1e-09$"):
        with as_flags(names):
            raise ValueError("rtol and atol must be > 0, got rtol=0.0, atol=1e-09")
    with pytest.raises(ValueError, match=r"^--rtol, --atol must be > 0 and max_steps >= 1, got 0.0$"):
        with as_flags(names):
            raise ValueError("rtol, atol must be > 0 and max_steps >= 1, got 0.0")
    with pytest.raises(ValueError, match=r"^ts must be finite$"):  # not a flag: left as it is
        with as_flags(names):
            raise ValueError("ts must be finite")
    with pytest.raises(ValueError, match=r"^rtol and ts must be finite$"):  # not every name is a flag: left
        with as_flags(names):
            raise ValueError("rtol and ts must be finite")


def test_read_json_names_the_file(tmp_path):
    p = tmp_path / "eval.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match=r"^cannot read eval file '.*eval\.json': Expecting property name"):
        errors.read_json(p, "eval file")
    with pytest.raises(ValueError, match=r"^cannot read file '.*missing\.json': No such file or directory"):
        errors.read_json(tmp_path / "missing.json")
