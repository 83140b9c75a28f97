"""`benchmarks/device.py --tiny`: the accelerator benchmark runs end to end on a CPU at tiny sizes, every
strategy side by side, and its strategies agree member by member."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_benchmark_tiny(tmp_path):
    out = tmp_path / "device.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device.py"), "--tiny", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    first = r.stdout.splitlines()[0]
    assert first.startswith("# byoldyn device benchmark on cpu (cpu, ") and f"jax {jax.__version__}, float64" in first
    res = json.loads(out.read_text())
    assert res["env"]["platform"] == "cpu" and res["env"]["jax"] == jax.__version__
    mm = res["matmul"]
    assert {(m["n"], m["dtype"]) for m in mm} == {(16, "float32"), (16, "float64"), (32, "float32"), (32, "float64")}
    assert all(m["gflops"] > 0 for m in mm)
    for name, strategies in (("simulate", ["vmap", "map-vmap", "map"]), ("sweep_matrix", ["vmap", "map-vmap", "map"]),
                             ("sweep_modes", ["vmap", "map-vmap", "map"]), ("basin", ["vmap", "map-vmap"])):
        rows = res[name]["rows"]
        assert [x["strategy"] for x in rows] == strategies, (name, rows)
        for x in rows:
            assert x["wall_s"] > 0 and x["members_per_s"] > 0 and not x["extrapolated"], (name, x)
        if name != "sweep_modes":
            assert all(x["gflops"] > 0 and 0 < x["frac_matmul"] for x in rows), name
    sim = res["simulate"]["rows"]
    assert all(x["steps_mismatch"] == 0 and x["max_diff"] <= 1e-13 and x["failed"] == 0 for x in sim)
    assert [x["resolved"] for x in sim] == ["vmap", "map-vmap (block 2)", "map"]
    assert res["simulate"]["auto"] == {"strategy": "map", "block": None}  # CPU: per-member loops
    sm = res["sweep_matrix"]["rows"]
    assert sm[1]["max_diff"] == 0.0 and sm[2]["max_diff"] <= 1e-14  # blocks: bit-identical; a lone member: rounding
    assert all(x["max_diff"] == 0.0 for x in res["basin"]["rows"])
    if "rows" in res["resnet"]:
        assert res["resnet"]["rows"][0]["images_per_s"] > 0
    else:
        assert res["resnet"] == {"skipped": "flax is not importable", "section_s": res["resnet"]["section_s"]}
    md = out.with_suffix(".md").read_text().splitlines()
    assert md[0].startswith("Device: cpu (cpu, ") and md[2].startswith("| benchmark | strategy (resolved) |")
    assert sum(line.startswith("| simulate |") for line in md) == 3
    assert sum(line.startswith("| sweep_matrix |") for line in md) == 3
    assert res["markdown"] == "\n".join(md)
