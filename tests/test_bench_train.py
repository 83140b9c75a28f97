"""`benchmarks/bench_train.py` at tiny size on the CPU: one row per predictor with step time and memory
(the full-scale `--preset paper-cifar10` runs the same code at width 1)."""

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("flax")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_train_tiny(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "benchmarks" / "bench_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "train.json"
    # the flags of tests/_nets_tiny.TINY: the compiled step is shared with the other nets tests
    res = bench.main(["--width", "0.0625", "--depth", "10", "--proj", "32", "16", "--batch", "8", "--size", "16",
                      "--steps", "2", "--predictors", "linear", "--no-torch", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    assert (res["depth"], res["dtype"], res["width"], res["proj"]) == (10, "float32", 0.0625, [32, 16])
    (row,) = res["rows"]
    assert "predictor=linear" in row["impl"] and "cpu" in row["impl"] and len(row["steps"]) == 2
    assert row["step_s"] > 0 and row["memory_bytes"] > 2**20 and row["memory"] == "host peak RSS"
    assert row["images_per_s"] == pytest.approx(8 / row["step_s"])
