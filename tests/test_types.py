"""Types: `mypy` with the [tool.mypy] configuration of pyproject.toml (its `files`: the core modules), so the test
command covers it."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_is_clean():
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", "--no-error-summary",
         "--hide-error-context", "--no-pretty"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, f"mypy found type errors (run `mypy` at the repository root):\n{r.stdout}{r.stderr}"
