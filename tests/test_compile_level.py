"""The tests compile at XLA:CPU's LLVM optimisation level 1 (tests/conftest.py), users at XLA's default, 2: the
float64 dynamics must be the same bits at both, or the suite would not be testing what users run."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import byoldyn as bd
import byoldyn.sampled as sp


def _results() -> dict:
    """A small adaptive simulate (diffrax), fixed-step RK4 sweeps at the matrix and mode levels, and sampled SGD."""
    out = {}
    s0 = bd.State.random(jax.random.PRNGKey(0), 6, 6)
    sol = bd.simulate(s0, bd.Hyper(eta=0.01), bd.Data.isotropic(6), 10.0, ts=jnp.linspace(0.0, 10.0, 4))
    out["simulate_W"] = np.asarray(sol.states.W)
    for level in ("matrix", "modes"):
        ds = bd.sweep(level, alpha_p=[0.5, 2.0], eta=[0.0, 0.05], seeds=2, t1=4.0, n1=6, progress=False)
        out |= {f"{level}_{k}": v.values for k, v in ds.data_vars.items() if np.issubdtype(v.dtype, np.floating)}
    run = sp.train(bd.State.random(jax.random.PRNGKey(1), 6, 6), sp.SGD(lr=0.05), sp.Source.isotropic(6, 1.0),
                   jax.random.PRNGKey(2), 40, setup=sp.Setup(loss="cosine", views="symmetric"), save_every=10)
    out["sampled_W"] = np.asarray(run.states.W)
    return out


@pytest.mark.slow
def test_float64_results_are_the_same_bits_at_xla_default_level(tmp_path):
    if "--xla_backend_optimization_level=1" not in os.environ["XLA_FLAGS"]:
        pytest.skip("XLA_FLAGS names another level for this run: there is no second level to compare")
    here = _results()
    code = ("import sys; import jax; jax.config.update('jax_enable_x64', True); sys.path.insert(0, sys.argv[1]); "
            "import numpy as np; from test_compile_level import _results; np.savez(sys.argv[2], **_results())")
    env = {**os.environ, "XLA_FLAGS": "--xla_backend_optimization_level=2", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path / "o2.npz")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    default = np.load(tmp_path / "o2.npz")
    assert sorted(default.files) == sorted(here) and len(here) >= 10
    differ = [k for k in here if not np.array_equal(here[k], default[k], equal_nan=True)]
    assert differ == []
