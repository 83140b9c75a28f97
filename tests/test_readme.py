"""Execute every ```python block of README.md and of each documentation page (docs/**/*.md) that has one: a page's
blocks in order, in one fresh interpreter per page (as the notebooks are executed: later blocks use the names of
earlier ones), in the default precision a reader has (float32), so that the examples cannot drift from the code
(`sp.compare` once failed and `key` was never defined)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)


def _pages() -> list[str]:
    """Every page with python blocks, a page whose blocks repeat an earlier page's (docs/index.md shows the README's
    first simulation) run once."""
    seen, pages = set(), []
    for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        code = tuple(blocks(p))
        if code and code not in seen:
            seen.add(code)
            pages.append(p.relative_to(ROOT).as_posix())
    return pages


PAGES = _pages()

# runs a page's blocks one after another in one namespace; a failure names its page and block
DRIVER = """
import json, sys
page, ns = sys.argv[2], {"__name__": "__main__"}
for i, block in enumerate(json.load(open(sys.argv[1]))):
    exec(compile(block, f"{page} python block {i + 1}", "exec"), ns)
print("ran", i + 1, "blocks")
"""


def test_pages_have_python_blocks():
    """The README's first simulation, the getting-started example and the sampled level's are among the pages run."""
    assert {"README.md", "docs/getting-started.md", "docs/sampled.md"} <= set(PAGES)
    assert all(b.strip() for p in PAGES for b in blocks(ROOT / p))


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page, tmp_path):
    code = blocks(ROOT / page)
    (tmp_path / "blocks.json").write_text(json.dumps(code))
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_ENABLE_X64", "BYOLDYN_TRACEBACK")}
    r = subprocess.run([sys.executable, "driver.py", "blocks.json", page], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    assert r.stdout.strip().endswith(f"ran {len(code)} blocks")
