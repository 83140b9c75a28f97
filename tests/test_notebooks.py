"""Execute every notebooks/*.ipynb top to bottom in its small size (BYOLDYN_NOTEBOOK_SIZE=small).

Each notebook asserts its theorem in its own cells, so a broken claim fails here. The notebooks
are executed in memory (nothing is written back) with the kernel of the running Python. Their
run times are printed (target: under 60 s each on 2 CPU cores), not asserted: speed is measured,
never a test.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 300  # per cell; a hang fails instead of blocking CI


def test_notebooks_exist():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_small(path, monkeypatch):
    monkeypatch.setenv("BYOLDYN_NOTEBOOK_SIZE", "small")  # inherited by the kernel process
    nb = nbformat.read(path, as_version=4)
    # the kernel must be this interpreter: jupyter_client launches the "python3" spec of ipykernel
    # with sys.executable; check it from inside the kernel
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import sys, os\nassert sys.executable == {sys.executable!r}, sys.executable\n"
        "assert os.environ['BYOLDYN_NOTEBOOK_SIZE'] == 'small'"))
    client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - t0
    print(f"{path.name}: {elapsed:.1f} s")
