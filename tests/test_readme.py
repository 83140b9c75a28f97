"""Execute every ```python block of README.md, in order, in one fresh interpreter (as the notebooks are executed:
later blocks use the names of earlier ones), in the default precision a reader has (float32), so that the README's
examples cannot drift from the code (`sp.compare` once failed and `key` was never defined)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)

# runs the blocks one after another in one namespace; a failure names its block
DRIVER = """
import json, sys
ns = {"__name__": "__main__"}
for i, block in enumerate(json.load(open(sys.argv[1]))):
    exec(compile(block, f"README.md python block {i + 1}", "exec"), ns)
print("ran", i + 1, "blocks")
"""


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2 and all(b.strip() for b in BLOCKS)


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path):
    (tmp_path / "blocks.json").write_text(json.dumps(BLOCKS))
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_ENABLE_X64", "BYOLDYN_TRACEBACK")}
    r = subprocess.run([sys.executable, "driver.py", "blocks.json"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    assert r.stdout.strip().endswith(f"ran {len(BLOCKS)} blocks")
