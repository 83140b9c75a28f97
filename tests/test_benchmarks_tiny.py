"""Every script in `benchmarks/` runs end to end at a tiny size (`--tiny`), so that none breaks unnoticed
(`bench_simulate.py` once crashed at its float32 `jit(vmap(simulate))` row).

The scripts with a test of their own (more detailed) are named in COVERED; every other script must have an
entry in CHECKS, and a new script fails `test_every_benchmark_is_run` until it has one.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))

# script -> the test file that runs it at a tiny size
COVERED = {"device.py": "test_device_bench.py", "bench_train.py": "test_bench_train.py"}


def _simulate(res):
    rows = res["rows"]
    # the float32 jit(vmap(simulate)) row that once crashed, and every member of every byoldyn row succeeded
    assert rows["byoldyn_vmap_f32"]["dtype"] == "float32" and rows["byoldyn_vmap_f32"]["succeeded"] == 4
    assert all(r["succeeded"] == 4 for k, r in rows.items() if k.startswith("byoldyn"))
    assert all(r["err_vs_ref"]["max"] < 1e-4 for r in rows.values())


def _sweep(res):
    assert [r["processes"] for r in res["processes"]] == [1, 2] and all(r["members"] == 8 for r in res["processes"])
    assert all(t["failed"] == 0 and t["max_rel_diff_norm_W"] < 1e-12 for t in res["throughput"])
    for level in res["strategies"]:
        assert all(r["bit_identical_to_vmap"] for r in level["rows"] if r["strategy"] != "numpy")
    assert res["peak_memory"]["members"] == 8 and res["peak_memory"]["failed"] == 0


def _basin(res):
    rows = res["rows"]
    assert rows["byoldyn_f64"]["collapsed_fraction"] > 0 and rows["byoldyn_f32"]["mismatch_vs_f64"] == 0
    assert rows["numpy_rk4"]["mismatch_vs_f64"] == 0


CHECKS = {"bench_simulate.py": _simulate, "bench_sweep.py": _sweep, "bench_basin.py": _basin}


def test_every_benchmark_is_run():
    assert set(SCRIPTS) == set(CHECKS) | set(COVERED), "add the new benchmark to CHECKS (with --tiny)"
    for script, test in COVERED.items():
        assert script.removesuffix(".py") in (ROOT / "tests" / test).read_text()


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CHECKS))
def test_benchmark_tiny(script, tmp_path):
    out = tmp_path / f"{script}.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--tiny", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    CHECKS[script](json.loads(out.read_text()))
