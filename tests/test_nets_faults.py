"""Fault injection for `byoldyn train`: SIGKILL at a random step after the first checkpoint, resume, and the
log (every record) and the final parameters equal those of an uninterrupted run, bit for bit.

The runs are subprocesses (float32, as a user runs them) sharing a persistent XLA compilation cache, so only
the first compiles. XLA on CPU is deterministic here: the resumed run restores the exact float32 state and
repeats the same compiled program, hence the comparisons are exact (`np.array_equal`), not to a tolerance.
"""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("flax")

from _nets_tiny import tiny_dataset
from PIL import Image

FLAGS = ["--width", "0.0625", "--depth", "10", "--proj-hidden", "32", "--proj-dim", "16", "--batch-size", "8",
         "--no-progress", "--eval", "none", "--epochs", "4", "--log-every", "3", "--ckpt-every", "2"]
TOTAL = 12  # 24 images, batch 8: 3 steps an epoch; records at 3, 6, 9, 12 and checkpoints at 2, 4, ..., 12


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    for i, (x, y) in enumerate(zip(*(lambda d: (d.images, d.labels))(tiny_dataset(24, seed=0)))):
        (root / "train" / f"c{y}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(x).save(root / "train" / f"c{y}" / f"{i:04d}.png")
    return root


def _env():
    """The suite's compilation cache (tests/conftest.py), so that these runs share programs with the suite's other
    `byoldyn train` processes."""
    env = dict(os.environ, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
               JAX_PLATFORMS="cpu")
    env.pop("BYOLDYN_TRACEBACK", None)
    return env


def _start(folder, out, env):
    cmd = [sys.executable, "-m", "byoldyn.cli", "train", "--data", str(folder), "--out", str(out), *FLAGS]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _checkpoints(out):
    d = out / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def _kill_after(p, out, target: int, fraction: float, timeout=600):
    """SIGKILL `p` a `fraction` of one checkpoint interval after its checkpoint `target` appears.

    The interval is measured in this run (from the checkpoints before `target`), so the kill lands at a
    random phase of the steps after `target`: inside a step, a log write or a checkpoint write.
    **Returns:** (whether `p` was still running when killed, the delay in seconds).
    """
    t0, seen = time.monotonic(), {}
    while p.poll() is None:
        for c in _checkpoints(out):
            seen.setdefault(c, time.monotonic())
        if target in seen or any(c > target for c in seen):
            break
        if time.monotonic() - t0 > timeout:
            break
        time.sleep(0.01)
    times = sorted(seen.values())
    gap = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 0.5
    delay = fraction * gap
    time.sleep(delay)
    alive = p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    return alive, delay


def _state(out, step):
    import orbax.checkpoint as ocp

    with ocp.PyTreeCheckpointer() as c:
        return c.restore(out / "checkpoints" / str(step) / "state")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Sharding info not provided")
def test_sigkill_at_a_random_step_then_resume_equals_uninterrupted(folder, tmp_path):
    import jax
    import xarray as xr

    env = _env()
    ref = tmp_path / "ref"
    p = _start(folder, ref, env)  # compiles, and fills the cache for the two runs below
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert f"{TOTAL} steps" in out

    seed = int.from_bytes(os.urandom(4), "little")
    rnd = random.Random(seed)
    # the kill lands at most 0.9 of a (mean) interval after checkpoint `target` <= TOTAL - 4, two intervals before
    # the last checkpoint: with target = TOTAL - 2, a last interval shorter than 0.9 of the mean (a machine whose
    # load drops) lets the run write its last checkpoint, or finish, before the kill, and the test fail
    target, fraction = rnd.randrange(2, TOTAL - 3, 2), rnd.uniform(0.0, 0.9)
    run = tmp_path / "run"
    p = _start(folder, run, env)
    alive, delay = _kill_after(p, run, target, fraction)
    killed_at = _checkpoints(run)
    why = (f"seed {seed}: SIGKILL {delay:.2f} s ({fraction:.2f} of a checkpoint interval) after checkpoint {target}; "
           f"checkpoints then {killed_at}")
    print(why)
    assert alive and p.returncode == -signal.SIGKILL, why
    assert killed_at and killed_at[-1] < TOTAL, why

    p = _start(folder, run, env)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, f"{why}: {err}"
    assert f"resumed at step {killed_at[-1]}, {TOTAL - killed_at[-1]} steps" in out, f"{why}: {out}"

    with xr.open_dataset(ref / "log.nc", engine="h5netcdf") as a, xr.open_dataset(run / "log.nc", engine="h5netcdf") as b:
        a, b = a.load(), b.load()
    assert list(a.step.values) == list(b.step.values) == [3, 6, 9, 12], why
    assert sorted(a.data_vars) == sorted(b.data_vars) and a.attrs == b.attrs, why
    for k in a.data_vars:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=f"{k}; {why}")
    sa, sb = _state(ref, TOTAL), _state(run, TOTAL)
    la, lb = jax.tree.leaves(sa), jax.tree.leaves(sb)
    assert jax.tree.structure(sa) == jax.tree.structure(sb) and len(la) > 10, why
    assert all(np.array_equal(x, y) for x, y in zip(la, lb)), why
