"""`byoldyn train`: one-line errors with exit 2 on bad flags/values/data, a full tiny run with resume,
the --download path, and no flax import until the command runs."""

import subprocess
import sys

import pytest

pytest.importorskip("flax")

from PIL import Image

from _nets_tiny import tiny_dataset
from byoldyn.nets.cli import main

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


def test_cli_module_imports_without_flax():
    code = ("import sys; sys.modules['flax'] = None\n"
            "import byoldyn.nets.cli as c, argparse\n"
            "from byoldyn.cli import _Parser\n"
            "p = _Parser(prog='byoldyn'); c.add_parsers(p.add_subparsers(parser_class=_Parser))\n"
            "print(p.format_help())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout
