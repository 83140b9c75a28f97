"""`python -m byoldyn.launch -n N -- COMMAND ...`: N local processes of one `jax.distributed` job.

For a test, or one big machine: starts N copies of COMMAND with the environment `initialize_from_env` reads
(`BYOLDYN_COORDINATOR` = 127.0.0.1:PORT on a free port, `BYOLDYN_NUM_PROCESSES`, `BYOLDYN_PROCESS_ID`,
`BYOLDYN_HEARTBEAT_S`) and, unless `XLA_FLAGS` already says, `cores // N` XLA CPU devices each; waits for them;
on the first failure it stops the others (SIGTERM, then SIGKILL) and prints one line naming the process, with the
exit status of that process (1 if it was killed by a signal); a process stopped (SIGSTOP) or killed by a signal is
named before one that failed because it could no longer reach it. `--timeout S` bounds the whole run (exit 124).
SIGTERM, SIGINT and SIGHUP sent to the launcher are forwarded to every process (each in its own session) as
SIGTERM, and those still running after a grace period (`--grace S`, default 5 s) are killed (SIGKILL); the launcher
exits with 128 + the signal.
The workers are never left behind: they are stopped whenever the launcher returns, and a worker that joins the job
(`initialize_from_env`) is killed by the kernel if the launcher itself dies. N is at most what the machine can
hold (`max_processes`: 4 per core, 512 MiB of free memory each), checked before any process starts.

`byoldyn sweep ... --processes N` is the same launcher around `byoldyn sweep`. Started again with the same
command, a sweep resumes: finished chunks (written by process 0) are not recomputed.

On a cluster, run one process per host with `BYOLDYN_DISTRIBUTED=1`: `initialize_from_env` then calls
`jax.distributed.initialize()` with no arguments, which reads SLURM's or Open MPI's environment (or
`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`); see the SLURM example in docs/sweeps.md.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

__all__ = ["initialize_from_env", "free_port", "launch", "main", "child_env", "sweep_processes", "max_processes",
           "check_processes"]

ENV_COORDINATOR = "BYOLDYN_COORDINATOR"
ENV_NUM = "BYOLDYN_NUM_PROCESSES"
ENV_ID = "BYOLDYN_PROCESS_ID"
ENV_HEARTBEAT = "BYOLDYN_HEARTBEAT_S"
ENV_DISTRIBUTED = "BYOLDYN_DISTRIBUTED"
ENV_LAUNCHER = "BYOLDYN_LAUNCHER_PID"
HEARTBEAT_S = 10  # a process that stops answering for this long is dead for the others (jax.distributed)
GRACE_S = 5.0  # after SIGTERM, the seconds a process has to exit before SIGKILL
PER_CORE = 4  # processes per core at most (each a JAX runtime with its threads)
PROCESS_MEMORY = 512 * 2**20  # bytes of free memory each process needs at least (a JAX CPU runtime and a chunk)


def max_processes() -> int:
    """The most local processes this machine can hold: `PER_CORE` per core, and `PROCESS_MEMORY` of the memory
    available now (Linux `MemAvailable`; not counted where unknown) each; at least 1."""
    n = PER_CORE * _cores()
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
        n = min(n, avail // PROCESS_MEMORY)
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return max(1, n)


def check_processes(n: int, flag: str = "-n/--processes") -> None:
    """`ValueError` naming `flag` unless 1 <= n <= `max_processes()` (before any process is started)."""
    if n < 1:
        raise ValueError(f"{flag} must be >= 1, got {n}")
    cap = max_processes()
    if n > cap:
        raise ValueError(f"{flag} {n} is more than this machine can hold (at most {cap}: {PER_CORE} per core on "
                         f"{_cores()} core(s), {PROCESS_MEMORY >> 20} MiB of free memory each)")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _die_with_launcher() -> None:
    """Linux: have the kernel kill this process (SIGKILL) when the launcher that started it dies, even by SIGKILL
    (`prctl(PR_SET_PDEATHSIG)`); elsewhere nothing. Exits at once if the launcher is already gone."""
    want = os.environ.get(ENV_LAUNCHER, "")
    if not want.isdigit() or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(want):  # the launcher died before the prctl
        os._exit(1)


def _env_int(name: str, lo: int) -> int:
    text = os.environ.get(name, "").strip()
    try:
        v = int(text)
    except ValueError:
        v = lo - 1
    if v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {text!r}")
    return v


def initialize_from_env() -> bool:
    """Join the `jax.distributed` job the environment describes (call before any JAX computation); True if joined.

    `BYOLDYN_NUM_PROCESSES` set (by `byoldyn.launch`): `jax.distributed.initialize(BYOLDYN_COORDINATOR,
    num_processes, BYOLDYN_PROCESS_ID)` with heartbeat and shutdown timeouts of `BYOLDYN_HEARTBEAT_S` seconds
    (default 10), so that the others stop within about that time when one process dies.
    `BYOLDYN_DISTRIBUTED=1`: `jax.distributed.initialize()` reading the cluster's environment (SLURM, Open MPI).
    Otherwise nothing: one process. A bad value raises `ValueError` naming the variable.
    """
    import jax

    if os.environ.get(ENV_NUM):
        n = _env_int(ENV_NUM, 1)
        i = _env_int(ENV_ID, 0)
        if i >= n:
            raise ValueError(f"{ENV_ID} must be < {ENV_NUM} = {n}, got {i}")
        addr = os.environ.get(ENV_COORDINATOR, "").strip()
        if ":" not in addr:
            raise ValueError(f"{ENV_COORDINATOR} must be HOST:PORT, got {addr!r}")
        hb = _env_int(ENV_HEARTBEAT, 1) if os.environ.get(ENV_HEARTBEAT) else HEARTBEAT_S
        if n == 1:
            return False
        _die_with_launcher()
        jax.distributed.initialize(coordinator_address=addr, num_processes=n, process_id=i,
                                   heartbeat_timeout_seconds=hb, shutdown_timeout_seconds=hb,
                                   initialization_timeout=max(60, 3 * hb))
        if os.environ.get(ENV_LAUNCHER) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the launcher's stop ends it at once (jax.distributed
            # installs a preemption notifier that only logs SIGTERM, and a worker stuck in XLA runs no Python)
        return True
    flag = os.environ.get(ENV_DISTRIBUTED, "").strip().lower()
    if flag in ("", "0", "no", "false"):
        return False
    if flag not in ("1", "yes", "true", "auto"):
        raise ValueError(f"{ENV_DISTRIBUTED} must be 1 or 0, got {flag!r}")
    jax.distributed.initialize()
    return True


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (bound to port 0, then released): two launches at once do not clash."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(i: int, n: int, port: int, env: dict | None = None, heartbeat: int = HEARTBEAT_S) -> dict:
    """The environment of process i of n (a copy of `env`, default `os.environ`)."""
    e = dict(os.environ if env is None else env)
    e.pop(ENV_DISTRIBUTED, None)
    e.update({ENV_COORDINATOR: f"127.0.0.1:{port}", ENV_NUM: str(n), ENV_ID: str(i), ENV_HEARTBEAT: str(heartbeat),
              ENV_LAUNCHER: str(os.getpid())})
    if "xla_force_host_platform_device_count" not in e.get("XLA_FLAGS", ""):  # share the cores, do not oversubscribe
        cores = max(1, (os.cpu_count() or 1) // n)
        e["XLA_FLAGS"] = f"{e.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={cores}".strip()
    return e


def _why(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _stopped(p) -> bool:
    """Whether the running process `p` is stopped (SIGSTOP, SIGTSTP: state T in /proc; False where unknown)."""
    try:
        with open(f"/proc/{p.pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def _signal(procs, sig) -> None:
    for p in procs:
        if p.poll() is None:
            for s in (sig, signal.SIGCONT):  # SIGCONT: a stopped process acts on the signal
                try:
                    os.killpg(p.pid, s)
                except OSError:
                    pass


def _stop(procs, sig=signal.SIGTERM, grace: float = GRACE_S) -> None:
    """Send `sig` to every process group still running, then SIGKILL those still running after `grace` s."""
    _signal(procs, sig)
    end = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()


def _pump(stream) -> None:
    """Copy a child's stdout to ours, without gloo's connection lines (`[Gloo] Rank i is connected to ...`)."""
    for line in iter(stream.readline, b""):
        if not line.startswith(b"[Gloo] "):
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
    stream.close()


LAG_S = 0.5  # how long a child's stderr line is held before it is copied (see `_pump_err`)


def _pump_err(stream, i: int, refused: dict, procs: list, refusal: int | None) -> None:
    """Copy process `i`'s stderr (i > 0) to ours, each line `LAG_S` s after it was written, and drop it if by then
    another process has refused its input (exited with `refusal`; `refused["by"]` once `_wait` has seen it): a peer
    that loses the refusing process (the host of the coordination service) logs the loss, noise after the one-line
    refusal. The loss is logged after that exit, so the exit is checked here directly, not only through `_wait`'s
    50 ms loop (which a loaded machine can delay past the lag)."""

    def dropped() -> bool:
        if refused["by"] not in (None, i):
            return True
        if refusal is None:
            return False
        for _ in range(2):  # poll() answers None while another thread holds the process's wait lock: ask twice
            if any(j != i and (p.poll() if p.returncode is None else p.returncode) == refusal
                   for j, p in enumerate(list(procs))):
                return True
            time.sleep(0.01)
        return False

    lines: queue.Queue = queue.Queue()

    def read():
        for line in iter(stream.readline, b""):
            lines.put((time.monotonic(), line))
        lines.put(None)
        stream.close()

    threading.Thread(target=read, daemon=True).start()
    while (item := lines.get()) is not None:
        t, line = item
        time.sleep(max(0.0, t + LAG_S - time.monotonic()))
        if not dropped():
            sys.stderr.buffer.write(line)
            sys.stderr.buffer.flush()


class _Signalled(Exception):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def launch(cmd: list[str], n: int, *, timeout: float | None = None, heartbeat: int = HEARTBEAT_S,
           port: int | None = None, prog: str = "byoldyn.launch", env: dict | None = None,
           refusal: int | None = None, grace: float = GRACE_S) -> int:
    """Run `cmd` as processes 0..n-1 of one job on this machine; the exit status (0 when all succeed).

    The first process to fail stops the others; one line on stderr says which and how; its status is returned
    (1 if it was killed by a signal). A process found stopped, then one killed by a signal (SIGABRT last: the abort
    of a process that lost another), is named before one that exited. Past `timeout` seconds all are stopped and
    124 is returned. SIGTERM, SIGINT or SIGHUP to this process (from the main thread) stops all (SIGTERM, then
    SIGKILL after `grace` s), and 128 + the signal is returned. `refusal`: a status by which a process refuses
    its input having said so in one line (byoldyn's 2): the others are given `grace` s to exit by themselves and
    no line is added. No process outlives this call.
    """
    if n < 1:
        raise ValueError(f"the number of processes must be >= 1, got {n}")
    if not grace > 0:
        raise ValueError(f"the grace period must be > 0 s, got {grace}")
    if not cmd:
        raise ValueError("no command to launch (give it after --)")
    port = free_port() if port is None else port
    procs, pumps = [], []
    refused: dict = {"by": None}
    old = {}
    if threading.current_thread() is threading.main_thread():
        def forward(signum, frame):
            for sig in _FORWARDED:  # once: the processes are being stopped
                signal.signal(sig, signal.SIG_IGN)
            raise _Signalled(signum)

        old = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        try:
            for i in range(n):
                # process 0's stderr stays ours (its progress bar on a terminal); the others' is copied by `_pump_err`
                procs.append(subprocess.Popen(cmd, env=child_env(i, n, port, env, heartbeat), start_new_session=True,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE if i else None))
                pumps.append(threading.Thread(target=_pump, args=(procs[-1].stdout,), daemon=True))
                if i:
                    pumps.append(threading.Thread(target=_pump_err, args=(procs[-1].stderr, i, refused, procs, refusal),
                                                  daemon=True))
                for t in pumps[-2 if i else -1:]:
                    t.start()
        except OSError as e:
            _stop(procs, grace=grace)
            print(f"{prog}: cannot start {cmd[0]!r}: {e.strerror or e}", file=sys.stderr)
            return 2
        end = None if timeout is None else time.monotonic() + timeout
        return _wait(procs, n, end, timeout, prog, refusal, refused, grace)
    except _Signalled as e:  # each process is stopped by SIGTERM, whatever the signal: a quiet end, no traceback
        _stop(procs, grace=grace)
        print(f"{prog}: got {signal.Signals(e.signum).name}; stopped all {n} processes", file=sys.stderr)
        return 128 + e.signum
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
        _stop(procs, grace=grace)  # none is left running, whatever ended the wait
        for t in pumps:  # the children are done: their last lines are forwarded before we return
            t.join(timeout=5.0)


def _culprit(procs, codes) -> tuple[int, int | None]:
    """The process to name for a failure: one stopped, else one killed by a signal (SIGABRT after the others: a
    process aborts when it loses another), else the first that exited non-zero; `(index, status)`, status None
    for a stopped process."""
    for i, p in enumerate(procs):
        if codes[i] is None and _stopped(p):
            return i, None
    bad = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
    return min(bad, key=lambda ic: (ic[1] >= 0, ic[1] == -signal.SIGABRT, ic[0]))


def _wait(procs, n, end, timeout, prog, refusal=None, refused=None, grace: float = GRACE_S) -> int:
    try:
        while True:
            codes = [p.poll() for p in procs]
            if any(c not in (None, 0) for c in codes):
                i, c = _culprit(procs, codes)
                if c is not None and c == refusal:  # the process said why in one line; the others say the same
                    if refused is not None:
                        refused["by"] = i  # their later lines (a lost peer's logs) are dropped
                    _settle(procs, grace)
                    return c
                _stop(procs, grace=grace)
                how = "was stopped (SIGSTOP) and no longer answers" if c is None else _why(c)
                print(f"{prog}: process {i} of {n} {how}; stopped the other processes (run the same command "
                      "again to resume)", file=sys.stderr)
                return 1 if c is None or c < 0 else c
            if all(c == 0 for c in codes):
                return 0
            if end is not None and time.monotonic() > end:
                _stop(procs, grace=grace)
                print(f"{prog}: timed out after {timeout:g} s; stopped all {n} processes", file=sys.stderr)
                return 124
            time.sleep(0.05)
    except KeyboardInterrupt:  # SIGINT where no handler was installed (not the main thread)
        _stop(procs, signal.SIGINT, grace)
        print(f"{prog}: interrupted; stopped all {n} processes", file=sys.stderr)
        return 130


def _settle(procs, grace: float = GRACE_S) -> None:
    """Give the processes `grace` s to exit by themselves, then stop the rest."""
    end = time.monotonic() + grace
    while time.monotonic() < end and any(p.poll() is None for p in procs):
        time.sleep(0.05)
    _stop(procs, grace=grace)


def sweep_processes(n: int, argv: list[str] | None = None) -> int:
    """`byoldyn sweep ... --processes N`: this command line (`argv`, default `sys.argv[1:]`) as N processes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "sweep" not in argv:
        raise ValueError(f"--processes: the byoldyn command line is unknown here (got {argv[:3]!r}); run "
                         "python -m byoldyn.launch -n N -- byoldyn sweep ...")
    code = "import sys; from byoldyn.cli import main; sys.exit(main())"
    env = dict(os.environ)  # byoldyn.cli gave this process one device per core: the children share the cores
    own = f"--xla_force_host_platform_device_count={os.cpu_count() or 1}"
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if f != own)
    return launch([sys.executable, "-c", code, *argv], n, prog="byoldyn sweep", env=env, refusal=2)


def main(argv: list[str] | None = None) -> int:
    """`python -m byoldyn.launch -n N [--timeout S] [--heartbeat S] [--grace S] -- COMMAND ...`."""
    p = argparse.ArgumentParser(prog="python -m byoldyn.launch",
                                description="Run COMMAND as N local processes of one jax.distributed job "
                                "(byoldyn.launch.initialize_from_env joins it; `byoldyn sweep` does).")
    p.add_argument("-n", "--processes", type=int, required=True, help="number of processes (>= 1)")
    p.add_argument("--timeout", type=float, default=None, help="stop all after this many seconds (exit 124)")
    p.add_argument("--heartbeat", type=int, default=HEARTBEAT_S,
                   help=f"seconds after which a silent process counts as dead (default {HEARTBEAT_S})")
    p.add_argument("--grace", type=float, default=GRACE_S,
                   help=f"seconds a stopped process has to exit after SIGTERM, before SIGKILL (default {GRACE_S:g})")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    a = p.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    try:
        check_processes(a.processes)
    except ValueError as e:
        p.error(str(e))
    if a.heartbeat < 1:
        p.error(f"--heartbeat must be >= 1, got {a.heartbeat}")
    if a.timeout is not None and not a.timeout > 0:
        p.error(f"--timeout must be > 0, got {a.timeout}")
    if not a.grace > 0:
        p.error(f"--grace must be > 0, got {a.grace}")
    if not cmd:
        p.error("no command: give it after --")
    return launch(cmd, a.processes, timeout=a.timeout, heartbeat=a.heartbeat, grace=a.grace)


if __name__ == "__main__":
    sys.exit(main())
