"""`byoldyn train`: one-line errors with exit 2 on bad flags/values/data, a full tiny run with resume,
the --download path, and no flax import until the command runs."""

import subprocess
import sys

import pytest

pytest.importorskip("flax")

from _nets_tiny import tiny_dataset
from PIL import Image

from byoldyn.cli import main as _main


def main(argv):
    return _main(argv, devices=False)

TINY_FLAGS = ["--width", "0.0625", "--depth", "10", "--proj-hidden", "32", "--proj-dim", "16", "--batch-size", "8",
              "--no-progress", "--log-every", "2"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    for split, ds in (("train", tiny_dataset(24, seed=0)), ("test", tiny_dataset(12, seed=1))):
        for i, (x, y) in enumerate(zip(ds.images, ds.labels)):
            d = root / split / ds.classes[y]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x).save(d / f"{i:04d}.png")
    return root


@pytest.mark.parametrize("argv, match", [
    (["train"], "the following arguments are required: --data"),
    (["train", "--data", "D", "--predictor", "deep"], "invalid choice: 'deep'"),
    (["train", "--data", "D", "--epochs", "-1"], "must be a non-negative integer"),
    (["train", "--data", "D", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--data", "D", "--width", "-1"], "width must be > 0"),
    (["train", "--data", "D", "--ema", "1.5"], "ema must be < 1"),
    (["train", "--data", "D", "--no-stop-grad"], "stop_grad must be True"),
    (["train", "--data", "D", "--predictor", "directpred", "--predictor-reset", "390"],
     "--predictor-reset must be None for predictor directpred"),
    (["train", "--data", "D", "--predictor", "identity", "--predictor-reset", "390"],
     "--predictor-reset must be None for predictor identity"),
    (["train", "--data", "D", "--predictor-reset", "0"], "--predictor-reset: must be a positive integer"),
    (["train", "--data", "D", "--head-norm", "gn"], "invalid choice: 'gn'"),
    (["train", "--data", "D", "--head-norm", "none", "--proj-out-bn"], "--proj-out-bn must be False"),
    (["train", "--data", "{tmp}/none"], "missing data folder"),
    (["train", "--data", "{tmp}"], "cannot tell the format"),
])
def test_bad_flags_exit_2(argv, match, capsys, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1


def test_download_bad_checksum_exit_2(tmp_path, capsys):
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/cifar-10-python.tar.gz"
        rc = main(["train", "--data", str(tmp_path), "--download", "--download-url", url, "--download-md5", "0" * 32,
                   "--no-progress"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert rc == 2 and "checksum mismatch for cifar-10-python.tar.gz" in capsys.readouterr().err


@pytest.mark.slow
def test_train_and_resume(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--epochs", "1", "--out", str(out), *TINY_FLAGS]) == 0
    msg = capsys.readouterr().out
    assert "3 steps" in msg and "knn_acc" in msg and (out / "log.nc").exists() and (out / "eval.json").exists()
    assert main(["train", "--data", str(folder), "--epochs", "2", "--out", str(out), "--eval", "none", *TINY_FLAGS]) == 0
    assert "resumed at step 3, 3 steps" in capsys.readouterr().out
    # --epochs 0: the untrained network is evaluated (a baseline); no log is written
    base = tmp_path / "init"
    assert main(["train", "--data", str(folder), "--epochs", "0", "--out", str(base), "--eval", "knn", *TINY_FLAGS]) == 0
    assert "0 steps" in capsys.readouterr().out
    assert (base / "eval.json").exists() and not (base / "log.nc").exists()
    # ... also under a preset that sets --stop-at (cpu-hour: 4,000): still no training step
    assert main(["train", "--data", str(folder), "--epochs", "0", "--preset", "cpu-hour", "--out", str(tmp_path / "p0"),
                 "--eval", "knn", *TINY_FLAGS]) == 0
    assert "0 steps" in capsys.readouterr().out and not (tmp_path / "p0" / "log.nc").exists()


@pytest.mark.slow
def test_cli_module_imports_without_flax():
    code = ("import sys; sys.modules['flax'] = None\n"
            "from byoldyn.cli import parser\n"
            "print(parser().format_help())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout


# ---- one line and the exit status for an unwritable output place or a corrupt input -------------

def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _bad_outs(tmp_path):
    """Output places nobody can write, even root: under a regular file, a regular file, /proc."""
    f = tmp_path / "file"
    f.write_text("x")
    return [(f / "run", f"--out: {str(f)!r} is not a directory"),
            (f, f"--out {str(f)!r} is a file, not a directory"),
            ("/proc/byoldyn-nowhere/run", "--out: cannot write in '/proc' (")]


def test_train_and_compare_refuse_an_unwritable_out_before_any_work(tmp_path, capsys):
    from byoldyn.cli import main as byoldyn

    run = tmp_path / "run"
    run.mkdir()
    (run / "eval.json").write_text('{"knn_acc": 0.5}')
    for out, msg in _bad_outs(tmp_path):
        # --data does not exist: the output place is checked first, before any data is read
        assert byoldyn(["train", "--data", str(tmp_path / "none"), "--out", str(out), "--no-progress"]) == 2
        line = _one_line(capsys)
        assert line.startswith(f"byoldyn: error: {msg}"), line
        assert byoldyn(["compare", str(run), "--out", str(out)]) == 2
        line = _one_line(capsys)
        assert line.startswith(f"byoldyn: error: {msg}"), line
    assert not (tmp_path / "file" / "run").exists() and not (run.parent / "runs.png").exists()


def test_compare_corrupt_inputs_one_line(tmp_path, capsys):
    import json

    import xarray as xr

    from byoldyn.cli import main as byoldyn
    from byoldyn.io import save_netcdf

    cases = []
    a = tmp_path / "missing_vars"
    a.mkdir()
    save_netcdf(xr.Dataset({"epoch": ("step", [0.5, 1.0]), "loss": ("step", [1.0, 0.5])}, coords={"step": [1, 2]},
                           attrs={"config": json.dumps({"predictor": "linear", "ema": 0.9})}), a / "log.nc")
    cases.append((a, f"training log {str(a / 'log.nc')!r} lacks variables z_std, effective_rank, asymmetry, "
                     "commutator_normalized, s, alignment"))
    b = tmp_path / "truncated"
    b.mkdir()
    raw = (a / "log.nc").read_bytes()
    (b / "log.nc").write_bytes(raw[: len(raw) // 3])
    cases.append((b, f"cannot read {str(b / 'log.nc')!r} as netCDF: "))
    c = tmp_path / "bad_eval"
    c.mkdir()
    (c / "eval.json").write_text('{"knn_acc": 0.5')
    cases.append((c, f"cannot read evaluation {str(c / 'eval.json')!r}: Expecting"))
    d = tmp_path / "empty"
    d.mkdir()
    cases.append((d, f"no training log {str(d / 'log.nc')!r} (made by byoldyn train)"))
    for run, msg in cases:
        assert byoldyn(["compare", str(run), "--out", str(tmp_path / "out")]) == 2
        line = _one_line(capsys)
        assert line.startswith(f"byoldyn: error: {msg}"), line
    assert not (tmp_path / "out" / "runs.png").exists()


def test_train_refuses_non_integer_cifar_labels(tmp_path, capsys):
    import pickle

    from test_nets_data import make_cifar

    from byoldyn.cli import main as byoldyn

    d, batches = make_cifar(tmp_path / "data")
    b = {**batches["data_batch_2"], b"labels": [0.7, 1, 2, 3]}  # was read as label 0
    (d / "data_batch_2").write_bytes(pickle.dumps(b, protocol=2))
    assert byoldyn(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert _one_line(capsys) == (f"byoldyn: error: corrupt file {d / 'data_batch_2'}: labels must be 4 integers "
                                 "in [0, 10), got 0.7 (float64)")


@pytest.mark.slow
def test_train_limit_other_data_corrupt_checkpoint_and_log(folder, tmp_path, capsys):
    from byoldyn.cli import main as byoldyn

    out = tmp_path / "run"
    base = ["train", "--data", str(folder), "--out", str(out), "--eval", "none", "--ckpt-every", "1", *TINY_FLAGS]
    # --limit N used to crash for every N != 3 (TypeError "Expected 3 arguments, got N")
    assert byoldyn([*base, "--epochs", "1", "--limit", "16"]) == 0
    assert "2 steps" in capsys.readouterr().out
    # resuming on other data (all 24 images) or with another config: one line, exit 2
    assert byoldyn([*base, "--epochs", "2"]) == 2
    assert _one_line(capsys) == (
        f"byoldyn: error: checkpoint in {out / 'checkpoints'} was made on other training data: "
        f"{str(folder.absolute())!r} (folder, split train, first 16), 16 images of 16x16x3, not "
        f"{str(folder.absolute())!r} (folder, split train), 24 images of 16x16x3; use another --out or --no-resume")
    assert byoldyn([*base, "--epochs", "2", "--limit", "16", "--lr", "0.1"]) == 2
    assert _one_line(capsys).endswith("was made with a different config (lr); use another --out or --no-resume")
    # a corrupt newest checkpoint: said in one line, the previous one is used
    for f in (out / "checkpoints" / "2" / "state" / "ocdbt.process_0" / "d").iterdir():
        f.write_bytes(b"garbage")
    assert byoldyn([*base, "--epochs", "2", "--limit", "16"]) == 0
    cap = capsys.readouterr()
    assert "resumed at step 1, 3 steps" in cap.out
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"byoldyn train: checkpoint 2 in {out / 'checkpoints'} is unreadable")
    assert err[0].endswith("; resuming from step 1")
    # a truncated log: one line, exit 2
    log = out / "log.nc"
    raw = log.read_bytes()
    log.write_bytes(raw[: len(raw) // 2])
    assert byoldyn([*base, "--epochs", "3", "--limit", "16"]) == 2
    assert _one_line(capsys).startswith(f"byoldyn: error: cannot read the training log {str(log)!r} (truncated")
    # no readable checkpoint: one line, exit 2; --no-resume starts afresh
    for s in (3, 4):
        (out / "checkpoints" / str(s) / "meta" / "metadata").write_text("")
    assert byoldyn([*base, "--epochs", "3", "--limit", "16"]) == 2
    assert _one_line(capsys).startswith(f"byoldyn: error: no readable checkpoint in {out / 'checkpoints'}: step 4")
    assert byoldyn([*base, "--epochs", "1", "--limit", "16", "--no-resume"]) == 0
    assert "2 steps" in capsys.readouterr().out and not (out / "checkpoints" / "4").exists()
