"""A full disk is one line that says what was kept (never HDF5's segfault), the sweep's disk
estimate counts each file's overhead, an edited chunk is recomputed on resume (sha256 in the manifest), and a second
run on the same output is refused while the first holds its lock."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

import byoldyn.io as bio
from byoldyn.cli import main
from byoldyn.io import atomic_write, lock_output, lock_path, netcdf_bytes, release_outputs, save_netcdf
from byoldyn.sweeps import budget, parts_dir, summary, sweep

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
SMALL = dict(alpha_p=[0.5, 1.0, 2.0, 4.0], eta=[0.0, 0.1], seeds=2, n1=3, t1=2.0, dt=0.5, chunk=4, progress=False)


def _data(ds):
    ds = ds.copy()
    ds.attrs = {k: v for k, v in ds.attrs.items() if k != "run"}
    return ds


def _full_after(monkeypatch, budget_bytes):
    """Every atomic write fails with ENOSPC once `budget_bytes` bytes have been written (a disk that fills)."""
    left = [budget_bytes]
    real = bio.write_all

    def write(fd, data):
        n = memoryview(data).nbytes
        if n > left[0]:
            real(fd, memoryview(data).cast("B")[:left[0]])
            left[0] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        left[0] -= n
        real(fd, data)

    monkeypatch.setattr(bio, "write_all", write)


# ---- item 2: a full disk ---------------------------------------------------------------------------------------

def test_atomic_write_on_a_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    f = tmp_path / "r.nc"
    ds = xr.Dataset({"x": ("i", np.arange(1000.0))})
    save_netcdf(ds, f)
    before = f.read_bytes()
    _full_after(monkeypatch, 100)
    with pytest.raises(OSError) as e:
        save_netcdf(ds * 2, f)
    n = len(netcdf_bytes(ds * 2))
    assert e.value.errno == errno.ENOSPC
    assert str(e.value.strerror) == (f"No space left on device while writing {str(f)!r} ({n / 1e3:.3g} kB); "
                                     "the previous file is kept unchanged")
    assert f.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["r.nc"]  # no temporary left
    with pytest.raises(OSError, match=r"^\[Errno 28\] No space left on device while writing .*\(1.01 kB\); nothing "
                                      r"was written there$"):
        atomic_write(tmp_path / "new.txt", "x" * 1010)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.nc"]


def test_netcdf_is_serialized_in_memory():
    """HDF5 writes no file (the segfault came from its finalizers on a half-written file): the bytes round-trip."""
    import io

    ds = xr.Dataset({"x": ("i", np.arange(5.0))}, attrs={"a": "b"})
    raw = netcdf_bytes(ds)
    with xr.open_dataset(io.BytesIO(bytes(raw)), engine="h5netcdf") as back:
        xr.testing.assert_identical(back.load(), ds)


@pytest.mark.slow
def test_simulate_on_a_full_disk_is_one_line_exit_1(tmp_path, monkeypatch, capsys):
    out = tmp_path / "s.nc"
    argv = ["simulate", "--n1", "3", "--n2", "3", "--t1", "1", "--dt", "0.1", "--n-save", "11", "--x64",
            "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    nc = out.stat().st_size
    out.unlink()
    out.with_suffix(".png").unlink()
    capsys.readouterr()
    _full_after(monkeypatch, 1000)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == (f"byoldyn: failed: No space left on device while writing {str(out)!r} ({nc / 1e3:.3g} kB); nothing "
                   "was written there\n")
    assert list(tmp_path.iterdir()) == []
    # the result fits, its figure does not: the line says that the result was written
    monkeypatch.undo()
    _full_after(monkeypatch, nc + 10)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"byoldyn: failed: No space left on device while writing "
                                                   f"{str(out.with_suffix('.png'))!r} (")
    assert err.endswith(f"; nothing was written there; the result {out} was written\n") and out.stat().st_size == nc
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.nc"]


def _can_mount_tmpfs(d) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(d)], capture_output=True)
    return r.returncode == 0


@pytest.mark.slow
def test_simulate_on_a_real_200k_tmpfs_no_segfault(tmp_path):
    """A nearly full disk: a 200 kB tmpfs (root only; skipped where mount is not permitted)."""
    d = tmp_path / "full"
    d.mkdir()
    if not _can_mount_tmpfs(d):
        pytest.skip("cannot mount a tmpfs here")
    try:
        r = subprocess.run(["byoldyn", "simulate", "--n1", "8", "--n2", "8", "--t1", "10", "--n-save", "2000",
                            "--no-progress", "--out", str(d / "s.nc")], capture_output=True, text=True, env=ENV)
        assert r.returncode == 1, r.stderr[-3000:]
        assert r.stderr.count("\n") == 1 and "No space left on device while writing" in r.stderr, r.stderr[-3000:]
        assert list(d.iterdir()) == []
    finally:
        subprocess.run(["umount", str(d)])


@pytest.mark.slow
def test_sweep_on_a_full_disk_keeps_the_finished_chunks_and_resumes(tmp_path, monkeypatch):
    clean = sweep("modes", out=tmp_path / "clean.nc", **SMALL)
    sizes = []  # the writes of a sweep: the manifest, then (the manifest, chunk k) per chunk, then the result
    real = bio.write_all
    monkeypatch.setattr(bio, "write_all", lambda fd, data: (sizes.append(memoryview(data).nbytes), real(fd, data)))
    sweep("modes", out=tmp_path / "probe.nc", **SMALL)
    monkeypatch.undo()
    assert len(sizes) == 1 + 2 * 4 + 1
    out = tmp_path / "w.nc"
    _full_after(monkeypatch, sum(sizes[:5]) + 10)  # the disk fills after chunk 1
    with pytest.raises(OSError) as e:
        sweep("modes", out=out, **SMALL)
    parts = parts_dir(out)
    assert e.value.errno == errno.ENOSPC
    assert str(e.value.strerror) == (
        f"No space left on device while writing {str(parts / 'manifest.json')!r} ({sizes[5] / 1e3:.3g} kB); the "
        f"previous file is kept unchanged; 2 finished chunk file(s) are kept in {parts}: free disk space and run the "
        "same sweep again with resume (byoldyn sweep --resume) to continue")
    assert sorted(p.name for p in parts.iterdir()) == ["chunk-00000.nc", "chunk-00001.nc", "manifest.json"]
    monkeypatch.undo()
    resumed = sweep("modes", out=out, **SMALL)
    assert (summary(resumed)["reused"], summary(resumed)["computed"]) == (2, 2)
    xr.testing.assert_identical(_data(resumed), _data(clean))


def test_disk_estimate_counts_the_overhead_of_every_file(tmp_path, monkeypatch):
    """A chunk file's overhead (measured on an in-memory chunk) is that of a real chunk file; the estimate counts it
    for every chunk, so that a sweep of many small chunks is refused up front, not half-way (about 12 kB each)."""
    from byoldyn.sweeps.store import schema, write_chunk

    parts = tmp_path / "p"
    parts.mkdir()
    (parts / "manifest.json").write_text("{}")
    res = {name: np.ones((3, *sizes), dtype) for name, (_, sizes, dtype) in schema("modes", None, 2, np.float64).items()}
    write_chunk(parts, 0, 0, res, "h" * 16, "modes", False)
    data = sum(v.nbytes for v in res.values()) + 3 * 8  # the variables and the member coordinate
    overhead = budget.file_overhead("modes", False, 8)
    assert 10_000 < overhead < 20_000
    assert abs((parts / "chunk-00000.nc").stat().st_size - data - overhead) < 200
    # 64 chunks of 2 members: the data alone is about 10 kB, the files about 64 x 12 kB
    free = [400_000]
    monkeypatch.setattr(budget.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - free[0], free[0]))
    with pytest.raises(ValueError, match=r"^out: the result and its 64 chunk file\(s\) need about 8\d\d kB on disk, "
                                         r"only 400 kB free in "):
        sweep("modes", alpha_p=np.linspace(1, 2, 64), seeds=2, n1=2, chunk=2, out=tmp_path / "s.nc", progress=False)
    assert not (tmp_path / "s.nc").exists() and not parts_dir(tmp_path / "s.nc").exists()


# ---- item 6: an edited chunk ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_an_edited_chunk_is_recomputed_not_reused(tmp_path, capsys):
    out = tmp_path / "e.nc"
    clean = sweep("modes", out=out, keep_parts=True, **SMALL)
    parts = parts_dir(out)
    sums = json.loads((parts / "manifest.json").read_text())["sha256"]
    assert sorted(sums) == [f"chunk-{k:05d}.nc" for k in range(4)]
    import hashlib
    assert all(hashlib.sha256((parts / k).read_bytes()).hexdigest() == v for k, v in sums.items())
    # chunk 1 edited with its schema intact (the values changed), chunk 2's checksum removed from the manifest
    ds = xr.load_dataset(parts / "chunk-00001.nc", engine="h5netcdf")
    ds["norm_W"] = ds.norm_W + 1.0
    save_netcdf(ds, parts / "chunk-00001.nc")
    manifest = json.loads((parts / "manifest.json").read_text())
    del manifest["sha256"]["chunk-00002.nc"]
    (parts / "manifest.json").write_text(json.dumps(manifest))
    out.unlink()
    capsys.readouterr()
    again = sweep("modes", out=out, keep_parts=True, **{**SMALL, "progress": True})
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("sweep: ") and "recomputing" in x]
    assert err == [f"sweep: {parts / 'chunk-00001.nc'} does not match its sha256 in the manifest (edited or damaged); "
                   "recomputing it", f"sweep: {parts / 'chunk-00002.nc'} has no sha256 in the manifest; recomputing it"]
    run = summary(again)
    assert (run["reused"], run["computed"], run["invalid"]) == (2, 2, ["chunk-00001.nc", "chunk-00002.nc"])
    xr.testing.assert_identical(_data(again), _data(clean))


# ---- item 7: one run per output ------------------------------------------------------------------------------------

# byoldyn/io.py alone (standard library only): a fast start, without importing the package (JAX)
_IO = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("bio", {bio.__file__!r})
bio = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bio)
"""
_HOLD = _IO + """
import time
bio.lock_output(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


def _holder(path):
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert p.stdout.readline() == "locked\n"
    return p


def test_lock_is_exclusive_released_and_freed_by_a_crash(tmp_path):
    out = tmp_path / "o.nc"
    p = _holder(out)
    try:
        with pytest.raises(ValueError, match=rf"^--out {str(out)!r} is in use by another byoldyn run \(pid {p.pid}\); "
                                             r"wait for it to finish or use another --out$"):
            lock_output(out)
    finally:
        p.send_signal(signal.SIGKILL)  # a crash: the kernel drops the lock
        p.wait()
    lock_output(out)
    lock_output(out)  # again in the same process: held already
    assert lock_path(out) == tmp_path / ".o.nc.lock" and lock_path(out).read_text() == f"{os.getpid()}\n"
    # a child of the holder (byoldyn.launch's workers) may write; another process may not
    try_lock = _IO + "bio.lock_output(sys.argv[1]); print('ok')"
    child = subprocess.run([sys.executable, "-c", try_lock, str(out)], capture_output=True, text=True, env=ENV)
    assert child.stdout == "ok\n", child.stderr
    via = "import subprocess, sys; sys.exit(subprocess.run([sys.executable, '-c', *sys.argv[1:]]).returncode)"
    grandchild = subprocess.run([sys.executable, "-c", via, try_lock, str(out)], capture_output=True, text=True, env=ENV)
    assert grandchild.returncode == 1 and "is in use by another byoldyn run" in grandchild.stderr
    release_outputs()
    assert not lock_path(out).exists()


@pytest.mark.parametrize("argv", [
    ["simulate", "--n1", "2", "--n2", "2", "--t1", "1", "--n-save", "2"],
    ["train-linear", "--n1", "2", "--n2", "2", "--steps", "2", "--n-save", "2"],
    ["sweep", "--n1", "2", "--t1", "1"],
    pytest.param(["train", "--data", "{tmp}/none"], marks=pytest.mark.slow),  # imports flax
], ids=["simulate", "train-linear", "sweep", "train"])
def test_a_second_run_on_the_same_out_is_refused(argv, tmp_path, capsys):
    if argv[0] == "train":
        pytest.importorskip("flax")
    out = tmp_path / ("run" if argv[0] == "train" else "o.nc")
    p = _holder(out)
    try:
        t = time.perf_counter()
        code = main([a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--out", str(out), "--no-progress"])
        cap = capsys.readouterr()
        assert code == 2 and cap.out == "" and cap.err == (
            f"byoldyn: error: --out {str(out.absolute())!r} is in use by another byoldyn run (pid {p.pid}); wait for "
            "it to finish or use another --out\n")
        assert time.perf_counter() - t < 5 and not out.exists()
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert not bio.held_outputs()  # the command released what it took


# ---- item 8 (part): a corrupt checkpoint is one line, not hundreds ------------------------------------------------

# tensorstore reads awaited in an event loop that is closed while they are pending, as orbax does when one read of a
# checkpoint fails: each pending read prints a 6-line "RuntimeError: Event loop is closed" traceback when it completes
_PENDING_READS = """
import asyncio, sys, time
import numpy as np, tensorstore as ts
stores = []
for i in range(30):
    t = ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": f"{sys.argv[1]}/{i}"}}, create=True,
                dtype=ts.float32, shape=[400, 400], chunk_layout=ts.ChunkLayout(read_chunk_shape=[50, 50])).result()
    t.write(np.ones((400, 400), np.float32)).result()
    stores.append(t)
if sys.argv[2] == "contained":
    from byoldyn.nets.checkpoint import contain_orbax_noise
    contain_orbax_noise()
async def fail():
    await asyncio.sleep(0.001)
    raise ValueError("corrupt")
async def main():
    await asyncio.gather(fail(), *[s.read() for s in stores])
loop = asyncio.new_event_loop()
try:
    loop.run_until_complete(main())
except ValueError:
    print("the read failed", file=sys.stderr)
finally:
    loop.close()
time.sleep(2)  # the pending reads complete
"""


@pytest.mark.slow
def test_pending_reads_after_a_failed_restore_print_nothing(tmp_path):
    pytest.importorskip("tensorstore")
    runs = {how: subprocess.run([sys.executable, "-c", _PENDING_READS, str(tmp_path / how), how], capture_output=True,
                                text=True, env=ENV, timeout=120) for how in ("raw", "contained")}
    raw = runs["raw"].stderr.splitlines()
    assert raw.count("RuntimeError: Event loop is closed") >= 10 and len(raw) > 60  # the flood, reproduced
    assert runs["contained"].stderr == "the read failed\n"


_ABANDONED_READ = """
import gc, sys, types
if sys.argv[1] == "contained":
    from byoldyn.nets.checkpoint import contain_orbax_noise
    contain_orbax_noise()
@types.coroutine
def pending():
    yield
async def read():  # orbax's _read_array_index_and_device_put: `except BaseException` re-raised as another error
    try:
        await pending()
    except BaseException as e:
        raise Exception("Encountered error while reading array index") from e
co = read()
co.send(None)  # suspended at its await, as a pending read is when orbax's loop is given up
del co
gc.collect()
print("done", file=sys.stderr)
"""


@pytest.mark.slow
def test_an_abandoned_read_prints_nothing():
    """A pending read collected after a failed restore printed "Exception ignored in: <coroutine ...>" and a
    tensorstore spec dump (60 lines, seen once in a full run); contained, nothing."""
    runs = {how: subprocess.run([sys.executable, "-c", _ABANDONED_READ, how], capture_output=True, text=True,
                                env=ENV, timeout=60) for how in ("raw", "contained")}
    assert "Exception ignored in: <coroutine object read" in runs["raw"].stderr  # the noise, reproduced
    assert runs["contained"].stderr == "done\n"


_CORRUPT = """
import sys
import jax.numpy as jnp, numpy as np
sys.path.insert(0, sys.argv[2])
from _nets_tiny import TINY
from byoldyn.nets.checkpoint import Checkpoints
from byoldyn.nets.trainer import _restore
out = __import__("pathlib").Path(sys.argv[1])
tree = {f"a{i:03d}": jnp.asarray(np.random.default_rng(i).standard_normal(20_000), jnp.float32) for i in range(120)}
data = {"n": 1, "shape": [16, 16, 3], "fingerprint": "f"}
ck = Checkpoints(out / "checkpoints")
for step in (1, 2):
    ck.save(step, tree, {"config": TINY.to_dict(), "data": data, "step": step})
ck.close()
bad = out / "checkpoints" / "2"
(bad / "_CHECKPOINT_METADATA").write_text("garbage")
for f in (bad / "state" / "ocdbt.process_0" / "d").iterdir():
    f.write_bytes(b"garbage")
ck = Checkpoints(out / "checkpoints")
state, meta = _restore(ck, tree, TINY, data, out)
ck.close()
assert meta["step"] == 1 and np.array_equal(state["a007"], tree["a007"])
"""


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_one_line_on_stderr(tmp_path):
    pytest.importorskip("orbax.checkpoint")
    r = subprocess.run([sys.executable, "-c", _CORRUPT, str(tmp_path), os.path.dirname(__file__)], capture_output=True,
                       text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr[-3000:]
    assert lines[0].startswith(f"byoldyn train: checkpoint 2 in {tmp_path / 'checkpoints'} is unreadable (")
    assert lines[0].endswith(f"moved to {tmp_path / 'checkpoints.bad' / '2'}; resuming from step 1")


_SAVE_FULL = """
import sys
import jax.numpy as jnp, numpy as np
from byoldyn.nets.checkpoint import Checkpoints
tree = {f"a{i:03d}": jnp.asarray(np.random.default_rng(i).standard_normal(1000), jnp.float32) for i in range(100)}
ck = Checkpoints(sys.argv[1])
try:
    ck.save(1, tree, {"step": 1})
except OSError as e:
    print(e.strerror, file=sys.stderr)
ck.close()
"""


@pytest.mark.slow
def test_a_checkpoint_on_a_full_disk_is_one_line(tmp_path):
    """`byoldyn train` on a full disk printed about 150 lines of orbax / asyncio errors (exit 2): now one OSError
    line (exit 1 from the CLI), the partial checkpoint removed."""
    pytest.importorskip("orbax.checkpoint")
    d = tmp_path / "full"
    d.mkdir()
    if not _can_mount_tmpfs(d):
        pytest.skip("cannot mount a tmpfs here")
    try:
        r = subprocess.run([sys.executable, "-c", _SAVE_FULL, str(d / "ck")], capture_output=True, text=True, env=ENV,
                           timeout=300)
        assert r.stderr == (f"No space left on device while saving checkpoint 1 in {d / 'ck'}; no checkpoint is "
                            "kept\n"), r.stderr[-3000:]
        assert [p.name for p in (d / "ck").iterdir()] == []
    finally:
        subprocess.run(["umount", str(d)])
