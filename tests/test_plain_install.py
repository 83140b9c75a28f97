"""A plain install (no `nets` extra) runs the main job: the CLI's parser builds, `reproduce` is reachable, and
`byoldyn train` refuses in one line naming the extra (exit 2). The extra is hidden by blocking its imports."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # two subprocesses that import JAX

BLOCK = ("import sys\n"
         "for m in ('flax', 'optax', 'orbax', 'orbax.checkpoint'):\n"
         "    sys.modules[m] = None\n"
         "import importlib.util\n"
         "_find = importlib.util.find_spec\n"
         "importlib.util.find_spec = lambda n, *a: None if n.split('.')[0] in ('flax', 'optax', 'orbax') "
         "else _find(n, *a)\n"
         "from byoldyn.cli import main\n")


def _run(argv):
    code = BLOCK + f"sys.exit(main({argv!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_every_parser_builds_without_the_nets_extra():
    r = _run(["reproduce", "--help"])
    assert r.returncode == 0, r.stderr
    assert "--size" in r.stdout


def test_train_without_the_nets_extra_is_one_line(tmp_path):
    r = _run(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "nets extra" in lines[0] and "flax" in lines[0] and "pip install" in lines[0]
    assert not (tmp_path / "run").exists()
