"""Lint: `ruff check` with the [tool.ruff] configuration of pyproject.toml, so the test command covers it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff():
    exe = shutil.which("ruff")
    if exe:
        return [exe]
    try:
        import ruff  # noqa: F401  (the wheel ships the binary; `python -m ruff` finds it)
    except ImportError:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    return [sys.executable, "-m", "ruff"]


def test_ruff_check_is_clean():
    r = subprocess.run(
        [*_ruff(), "check", "--no-cache", "--output-format", "concise", "byoldyn", "tests", "benchmarks", "docs"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, f"ruff check found violations (fix them, or `ruff check --fix`):\n{r.stdout}{r.stderr}"
