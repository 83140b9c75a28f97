"""`sweep` under `jax.distributed`: 2 and 4 CPU processes on 127.0.0.1 (byoldyn.launch, a free port each run).

Every result equals the single-process sweep bit for bit (float64); only process 0 writes (manifest, chunks,
result); a process killed by SIGKILL stops the job with one line within a bounded time, and the same command
run again reuses the finished chunks and completes identically.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

import byoldyn as bd
from byoldyn.launch import free_port

ADAPTIVE = dict(method="adaptive", alpha_p=[0.5, 2.0], eta=[0.0, 0.1], n1=4, seeds=3, t1=3.0, n_save=2, chunk=5)
GRID = dict(alpha_p=[0.5, 1.5, 3.0, 4.0], eta=[0.0, 0.1, 0.2], seeds=2, t1=5.0, dt=0.05, sigma2=0.5, chunk=6)
N_CHUNKS = 4  # 24 members in chunks of 6

# A process of the job: joins it from the launcher's environment, records every file the sweep writes
# (`WROTE` log per process), optionally kills itself by SIGKILL after chunk KILL_AFTER (process KILL_ID).
WORKER = r"""
import json, os, signal, sys
import jax
jax.config.update("jax_enable_x64", True)
from byoldyn.launch import initialize_from_env
assert initialize_from_env()
import byoldyn.sweeps as S
from byoldyn.sweeps import api, store  # the file writes (store) and the barriers (api) are spied on where they are called
me = jax.process_index()
log = open(os.path.join(os.environ["WROTE"], f"wrote-{me}.txt"), "w")
def spy(f, name):
    def g(*a, **k):
        path = next(x for x in a if isinstance(x, (str, os.PathLike)))
        log.write(f"{name} {os.path.basename(str(path))}\n"); log.flush()
        return f(*a, **k)
    return g
store.atomic_write = spy(store.atomic_write, "atomic")
kill_id, kill_after = int(os.environ.get("KILL_ID", -1)), os.environ.get("KILL_AFTER")
barrier = api.barrier
def b(name):
    barrier(name)
    if me == kill_id and name == f"chunk {kill_after}":
        os.kill(os.getpid(), signal.SIGKILL)
api.barrier = b
grid = json.loads(sys.argv[2])
try:
    ds = S.sweep("modes", **grid, out=sys.argv[1], progress=False)
except __import__("byoldyn.errors").errors.RunFailed as e:  # as byoldyn sweep does: one line, then out (jax.distributed's shutdown would abort)
    print(f"worker: failed: {e}", file=sys.stderr, flush=True)
    os._exit(1)
if os.environ.get("EXTRA"):  # the matrix level with adaptive solves (simulate_batch) in the same job
    S.sweep("matrix", **json.loads(os.environ["EXTRA"]), out=sys.argv[1].replace(".nc", "-adaptive.nc"), progress=False)
print(json.dumps({"process": me, "count": jax.process_count(), "run": json.loads(ds.attrs["run"])}))
"""


@pytest.fixture(scope="module")
def reference():
    return bd.sweep("modes", **GRID, progress=False)


def _launch(n, out, wrote, timeout=240, **env):
    wrote.mkdir(exist_ok=True)
    e = dict(os.environ, WROTE=str(wrote), **{k: str(v) for k, v in env.items()})
    e.pop("BYOLDYN_NUM_PROCESSES", None)
    cmd = [sys.executable, "-m", "byoldyn.launch", "-n", str(n), "--heartbeat", "5", "--timeout", str(timeout),
           "--", sys.executable, "-c", WORKER, str(out), json.dumps(GRID)]
    t = time.monotonic()
    r = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=timeout + 30)
    return r, time.monotonic() - t


def _equal(path, ref):
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds.attrs["config_hash"] == ref.attrs["config_hash"]
        assert set(ds.data_vars) == set(ref.data_vars)
        for k in ref.data_vars:
            assert ds[k].dtype == ref[k].dtype == (np.int8 if k == "status" else np.float64)
            np.testing.assert_array_equal(ds[k].values, ref[k].values, strict=True)  # bit for bit (NaN = NaN)
        return json.loads(ds.attrs["run"])


def _writes(wrote, i):
    return (wrote / f"wrote-{i}.txt").read_text().split("\n")[:-1]


@pytest.mark.slow
def test_two_processes_equal_one_and_only_process_0_writes(tmp_path, reference):
    out = tmp_path / "mh.nc"
    r, _ = _launch(2, out, tmp_path / "w")
    assert r.returncode == 0, r.stderr[-2000:]
    run = _equal(out, reference)
    assert (run["processes"], run["computed"], run["reused"]) == (2, N_CHUNKS, 0)
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert sorted(x["process"] for x in lines) == [0, 1] and all(x["count"] == 2 for x in lines)
    assert not any(x.startswith("[Gloo]") for x in r.stdout.splitlines())  # the launcher drops gloo's lines
    assert _writes(tmp_path / "w", 1) == []  # process 1 writes nothing
    chunks = [w for k in range(N_CHUNKS) for w in ("atomic manifest.json", f"atomic chunk-{k:05d}.nc")]  # its sha256 first
    assert _writes(tmp_path / "w", 0) == ["atomic manifest.json"] + chunks + ["atomic mh.nc"]
    assert not (tmp_path / "mh.parts").exists()


@pytest.mark.slow
def test_four_processes_cli_equal_one(tmp_path, reference):
    """`byoldyn sweep --processes 4`: one summary line, the file equal to the single-process sweep."""
    out = tmp_path / "c4.nc"
    cmd = ["byoldyn", "sweep", "--level", "modes", "--alpha-p", "0.5,1.5,3,4", "--eta", "0:0.2:3", "--seeds", "2",
           "--t1", "5", "--dt", "0.05", "--sigma2", "0.5", "--beta", "1", "--chunk", "6", "--x64",
           "--no-progress", "--out", str(out),
           "--processes", "4"]
    e = dict(os.environ, BYOLDYN_HEARTBEAT_S="5")
    r = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == [f"24 members (alpha_p 4 x eta 3 x seed 2), 0 failed; 4 chunk(s) computed, 0 reused; "
                                     f"wall {_equal(out, reference)['wall_s']:.1f} s; wrote {out}"]
    assert _equal(out, reference)["processes"] == 4


@pytest.mark.slow
def test_sigkill_stops_the_job_in_one_line_and_the_rerun_resumes(tmp_path, reference):
    out = tmp_path / "k.nc"
    r, wall = _launch(2, out, tmp_path / "w1", KILL_ID=1, KILL_AFTER=1)
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == ("byoldyn.launch: process 1 of 2 was killed by SIGKILL; stopped the other "
                                         "processes (run the same command again to resume)")
    assert wall < 120
    assert not out.exists()
    assert sorted(f.name for f in (tmp_path / "k.parts").glob("chunk-*.nc")) == ["chunk-00000.nc", "chunk-00001.nc"]
    r, _ = _launch(2, out, tmp_path / "w2", EXTRA=json.dumps(ADAPTIVE))
    assert r.returncode == 0, r.stderr[-2000:]
    run = _equal(out, reference)
    assert (run["computed"], run["reused"]) == (2, 2)  # the finished chunks are not recomputed
    assert _writes(tmp_path / "w2", 1) == []
    run = _equal(tmp_path / "k-adaptive.nc", bd.sweep("matrix", **ADAPTIVE, progress=False))
    assert (run["processes"], run["computed"]) == (2, 3)


@pytest.mark.slow
def test_without_the_launcher_a_dead_process_stops_the_others(tmp_path):
    """Bare `jax.distributed` processes (no launcher to stop them): the survivor exits non-zero within a bounded
    time (the heartbeat timeout), it does not hang."""
    port = free_port()
    (tmp_path / "w").mkdir()
    procs = []
    for i in range(2):
        e = dict(os.environ, WROTE=str(tmp_path / "w"), BYOLDYN_COORDINATOR=f"127.0.0.1:{port}",
                 BYOLDYN_NUM_PROCESSES="2", BYOLDYN_PROCESS_ID=str(i), BYOLDYN_HEARTBEAT_S="3", KILL_ID="1",
                 KILL_AFTER="0", XLA_FLAGS="--xla_force_host_platform_device_count=1")
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "b.nc"), json.dumps(GRID)], env=e,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    try:
        assert procs[1].wait(timeout=180) == -signal.SIGKILL
        t = time.monotonic()
        assert procs[0].wait(timeout=90) == 1 and time.monotonic() - t < 90
        last = procs[0].stderr.read().decode().splitlines()[-1]
        assert last.startswith("worker: failed: process 0 of 2: ")  # the one line of byoldyn.sweep's RunFailed
        assert " failed, another process has died or stopped (" in last
        assert last.endswith("); run the same command again to resume")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert not (tmp_path / "b.nc").exists()
    assert (tmp_path / "b.parts" / "chunk-00000.nc").exists()


# ---- the launcher alone (no JAX in the children: fast)


def _run_launch(*args, timeout=60):
    # without the XLA_FLAGS that an in-process `byoldyn.cli.main` of another test may have set
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return subprocess.run([sys.executable, "-m", "byoldyn.launch", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.slow
def test_launcher_environment_and_first_failure():
    """Each child gets its id, the count and one coordinator; the first failure's status is returned, the
    sleeping sibling is stopped, and one line names the process."""
    code = ("import os, sys, time; i = int(os.environ['BYOLDYN_PROCESS_ID']); "
            "print(i, os.environ['BYOLDYN_NUM_PROCESSES'], os.environ['BYOLDYN_COORDINATOR'].split(':')[0], "
            "os.environ['XLA_FLAGS'], flush=True); time.sleep(2) if i == 1 else None; sys.exit(3 if i == 1 else 0)"
            " if i < 2 else time.sleep(60)")
    t = time.monotonic()
    r = _run_launch("-n", "3", "--", sys.executable, "-c", code)
    assert time.monotonic() - t < 30  # process 2 (sleeping 60 s) was stopped
    assert r.returncode == 3
    assert r.stderr.splitlines() == ["byoldyn.launch: process 1 of 3 exited with status 3; stopped the other "
                                     "processes (run the same command again to resume)"]
    cores = max(1, (os.cpu_count() or 1) // 3)
    assert sorted(r.stdout.splitlines()) == [f"{i} 3 127.0.0.1 --xla_force_host_platform_device_count={cores}"
                                             for i in range(3)]


def test_launcher_timeout_and_bad_input(capsys):
    from byoldyn.launch import main

    assert main(["-n", "2", "--timeout", "1", "--", sys.executable, "-c", "import time; time.sleep(60)"]) == 124
    assert capsys.readouterr().err.splitlines() == ["byoldyn.launch: timed out after 1 s; stopped all 2 processes"]
    for argv, msg in ((["-n", "0", "--", "true"], "-n/--processes must be >= 1, got 0"),
                      (["-n", "2"], "no command: give it after --"),
                      (["-n", "2", "--timeout", "0", "--", "true"], "--timeout must be > 0, got 0.0"),
                      (["-n", "2", "--grace", "-1", "--", "true"], "--grace must be > 0, got -1.0")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and capsys.readouterr().err.splitlines()[-1].endswith(msg)
    assert main(["-n", "2", "--", "/nonexistent/byoldyn-child"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "byoldyn.launch: cannot start '/nonexistent/byoldyn-child': No such file or directory"]


def test_free_ports_differ_and_env_is_validated(monkeypatch):
    from byoldyn.launch import initialize_from_env

    assert len({free_port() for _ in range(5)}) > 1
    monkeypatch.setenv("BYOLDYN_NUM_PROCESSES", "2")
    monkeypatch.setenv("BYOLDYN_PROCESS_ID", "2")
    monkeypatch.setenv("BYOLDYN_COORDINATOR", "127.0.0.1:1")
    with pytest.raises(ValueError, match=r"^BYOLDYN_PROCESS_ID must be < BYOLDYN_NUM_PROCESSES = 2, got 2$"):
        initialize_from_env()
    monkeypatch.setenv("BYOLDYN_PROCESS_ID", "x")
    with pytest.raises(ValueError, match=r"^BYOLDYN_PROCESS_ID must be an integer >= 0, got 'x'$"):
        initialize_from_env()
    monkeypatch.delenv("BYOLDYN_NUM_PROCESSES")
    monkeypatch.setenv("BYOLDYN_DISTRIBUTED", "maybe")
    with pytest.raises(ValueError, match=r"^BYOLDYN_DISTRIBUTED must be 1 or 0, got 'maybe'$"):
        initialize_from_env()
    monkeypatch.setenv("BYOLDYN_DISTRIBUTED", "0")
    assert initialize_from_env() is False


@pytest.mark.slow
def test_sweep_processes_flag_is_validated(tmp_path):
    r = subprocess.run(["byoldyn", "sweep", "--processes", "0", "--out", str(tmp_path / "x.nc")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--processes" in r.stderr
    assert list(tmp_path.iterdir()) == []
