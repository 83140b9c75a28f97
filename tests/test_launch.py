"""`byoldyn.launch` and `byoldyn sweep --processes`, `--stall-timeout`: signals reach the
workers and none outlives the launcher; `-n` is capped by the machine; a stopped process is the one named; a
refusal is one line; a stalled chunk fails in one line, exit 1, and the run resumes; two matrix sweeps at once
finish (the jaxlib LAPACK thread-pool deadlock)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from byoldyn.launch import PER_CORE, check_processes, max_processes


def _env():  # without the XLA_FLAGS an in-process byoldyn.cli.main of another test may have set
    return {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "BYOLDYN_NUM_PROCESSES")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_processes_are_capped_by_the_machine():
    cap = max_processes()
    assert 1 <= cap <= PER_CORE * len(os.sched_getaffinity(0))
    check_processes(cap)
    with pytest.raises(ValueError, match=rf"^--processes {cap + 1} is more than this machine can hold \(at most {cap}: "):
        check_processes(cap + 1, "--processes")
    with pytest.raises(ValueError, match=r"^-n/--processes must be >= 1, got 0$"):
        check_processes(0)


# children that record their pid, ignore SIGTERM (as a worker stuck in XLA does) and sleep
IGNORE_TERM = ("import os, signal, sys, time; open(os.path.join(sys.argv[1], os.environ['BYOLDYN_PROCESS_ID']), 'w')"
               ".write(str(os.getpid())); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_are_forwarded_and_no_worker_outlives_the_launcher(tmp_path, sig):
    p = subprocess.Popen([sys.executable, "-m", "byoldyn.launch", "-n", "2", "--grace", "1", "--", sys.executable,
                          "-c", IGNORE_TERM, str(tmp_path)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    end = time.monotonic() + 60
    while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(0.2)
    pids = [int((tmp_path / str(i)).read_text()) for i in range(2)]
    t = time.monotonic()
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + sig
    # the workers ignore SIGTERM: the grace period given (1 s), then SIGKILL; the default (5 s) would fail the bound
    assert 1 <= time.monotonic() - t < 4.5
    assert err.splitlines() == [f"byoldyn.launch: got {signal.Signals(sig).name}; stopped all 2 processes"]
    assert not any(_alive(q) for q in pids)


@pytest.mark.slow
def test_a_stopped_process_is_named_not_the_one_that_aborted():
    """Process 1 stops itself (SIGSTOP); process 0, which can no longer reach it, aborts (as jax.distributed's
    C++ check does): the launcher names process 1."""
    code = ("import os, signal, time; i = int(os.environ['BYOLDYN_PROCESS_ID']); "
            "os.kill(os.getpid(), signal.SIGSTOP) if i == 1 else (time.sleep(1.0), os.abort())")
    r = subprocess.run([sys.executable, "-m", "byoldyn.launch", "-n", "2", "--", sys.executable, "-c", code],
                       env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["byoldyn.launch: process 1 of 2 was stopped (SIGSTOP) and no longer answers; "
                                     "stopped the other processes (run the same command again to resume)"]


@pytest.mark.slow
def test_abort_is_named_after_a_process_killed_by_another_signal():
    code = ("import os, signal, time; i = int(os.environ['BYOLDYN_PROCESS_ID']); "
            "os.kill(os.getpid(), signal.SIGKILL) if i == 1 else (time.sleep(0.5), os.abort())")
    r = subprocess.run([sys.executable, "-m", "byoldyn.launch", "-n", "2", "--", sys.executable, "-c", code],
                       env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "process 1 of 2 was killed by SIGKILL" in r.stderr.splitlines()[-1]


# ---- byoldyn sweep (JAX in the children: slow)

SWEEP = ["byoldyn", "sweep", "--level", "modes", "--alpha-p", "0.5,1.5,3", "--eta", "0,0.1", "--seeds", "2", "--t1",
         "2", "--dt", "0.05", "--chunk", "4", "--x64", "--no-progress"]  # 12 members, 3 chunks


@pytest.mark.slow
def test_sweep_processes_cap_is_one_line_before_any_process(tmp_path):
    r = subprocess.run([*SWEEP, "--out", str(tmp_path / "s.nc"), "--processes", "100000"], env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1 and "--processes 100000 is more than this machine can hold" in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_multiprocess_refusal_is_one_line(tmp_path):
    """A refusal of process 0 (another configuration's chunks, --resume) under --processes 2: one line, exit 2."""
    out = tmp_path / "s.nc"
    r = subprocess.run([*SWEEP, "--out", str(out), "--keep-parts"], env=_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    out.unlink()
    r = subprocess.run([*SWEEP[:7], "0,0.2", *SWEEP[8:], "--out", str(out), "--resume", "--processes", "2"],
                       env=dict(_env(), BYOLDYN_HEARTBEAT_S="5"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("byoldyn: error: resume: ") and "different sweep configuration" in lines[0]


# `byoldyn sweep` whose chunk STALL_AT (0-based) stalls: the process sleeps (no CPU time), as a deadlocked XLA does
STALLING = r"""
import os, sys, time
import byoldyn.sweeps.run as R
calls, start = [0], R.start
def stalling(*a, **k):
    calls[0] += 1
    if calls[0] == int(os.environ["STALL_AT"]) + 1:
        time.sleep(3600)
    return start(*a, **k)
R.start = stalling
from byoldyn.cli import main
sys.exit(main())
"""


@pytest.mark.slow
def test_a_stalled_chunk_fails_in_one_line_and_the_run_resumes(tmp_path):
    out = tmp_path / "w.nc"
    args = [*SWEEP[2:], "--out", str(out)]
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", STALLING, "sweep", *args, "--stall-timeout", "3"],
                       env=dict(_env(), STALL_AT="1"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"byoldyn: failed: a chunk's start made no progress for 3 s (the process used no CPU time: a deadlock); the "
        f"finished chunks are kept in {tmp_path / 'w.parts'}: run the same command with --resume to continue"]
    assert time.monotonic() - t < 120
    assert not out.exists()
    assert sorted(f.name for f in (tmp_path / "w.parts").glob("chunk-*.nc")) == ["chunk-00000.nc"]
    r = subprocess.run([*SWEEP, "--out", str(out), "--resume"], env=_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "2 chunk(s) computed, 1 reused" in r.stdout
    r = subprocess.run([*SWEEP, "--out", str(tmp_path / "fresh.nc")], env=_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    with xr.open_dataset(out, engine="h5netcdf") as a, xr.open_dataset(tmp_path / "fresh.nc", engine="h5netcdf") as b:
        for k in b.data_vars:
            np.testing.assert_array_equal(a[k].values, b[k].values, strict=True)


MATRIX = ["byoldyn", "sweep", "--level", "matrix", "--n1", "12", "--alpha-p", "0.5:4:4", "--eta", "0:0.2:4", "--seeds",
          "4", "--t1", "2", "--dt", "0.05", "--n-save", "5", "--chunk", "32", "--x64", "--no-progress",
          "--stall-timeout", "60"]  # 64 members, 2 chunks; the observables: batched eigh of 12 x 12 matrices


@pytest.mark.slow
def test_two_matrix_sweeps_at_once_finish(tmp_path):
    """Two matrix-level sweeps at once (batched eigh on several host devices once hung), three times; none hangs
    (the watchdog would fail it in one line after 60 s without CPU time, the subprocess timeout bounds the rest)
    and both agree bit for bit."""
    for rep in range(3):
        outs = [tmp_path / f"r{rep}-{i}.nc" for i in range(2)]
        procs = [subprocess.Popen([*MATRIX, "--out", str(o)], env=_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for o in outs]
        try:
            for p in procs:
                _, err = p.communicate(timeout=400)
                assert p.returncode == 0, err
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        with xr.open_dataset(outs[0], engine="h5netcdf") as a, xr.open_dataset(outs[1], engine="h5netcdf") as b:
            assert json.loads(a.attrs["run"])["members"] == 64
            for k in a.data_vars:
                np.testing.assert_array_equal(a[k].values, b[k].values, strict=True)


# process 0 refuses (one line, status 2); process 1 then logs the loss of its peer, as jax.distributed's client does
REFUSE_THEN_NOISE = r"""
import os, sys, time
from pathlib import Path
from byoldyn.launch import ENV_ID
pid = Path(sys.argv[1])
if os.environ[ENV_ID] == "0":
    pid.write_text(str(os.getpid()))
    print("byoldyn: error: refused", file=sys.stderr, flush=True)
    sys.exit(2)
while not pid.exists() or pid.read_text() == "":
    time.sleep(0.01)
status = Path("/proc", pid.read_text(), "status")
while status.exists() and "State:\tZ" not in status.read_text():  # the noise follows the refusing process's exit
    time.sleep(0.01)
print("E1205 coordination_service_agent.cc:289] Polled an error from coordination service", file=sys.stderr, flush=True)
time.sleep(30)
"""


@pytest.mark.slow
def test_after_a_refusal_the_peers_logs_are_dropped(tmp_path):
    script = tmp_path / "w.py"
    script.write_text(REFUSE_THEN_NOISE)
    r = subprocess.run([sys.executable, "-c", "import sys; from byoldyn.launch import launch; "
                        f"sys.exit(launch([sys.executable, {str(script)!r}, {str(tmp_path / 'pid')!r}], 2, "
                        "refusal=2))"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["byoldyn: error: refused"], r.stderr
