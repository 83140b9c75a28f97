"""Running a sweep: the chunk programs (fixed steps through `byoldyn.stepper`, sharded over devices), the
adaptive chunks (`simulate_batch`), and the multi-process protocol under `jax.distributed`: process 0 alone
reads and writes files and decides which chunks are computed; every process follows that decision
(`follow_writer`), gathers each chunk (`to_host`) and waits on process 0's writes (`barrier`)."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ..errors import one_line
from ..model import Data
from ..solution import DIVERGED, SUCCEEDED
from ..stepper import blown, fixed_solve, mask
from ..sweep_levels import OBS, RHS, Observe, initial, synced
from .budget import state_size
from .errors import Refused

__all__ = ["program", "start", "observe", "make_mesh", "global_array", "to_host", "barrier", "follow_writer",
           "run_chunk", "stall_timeout", "watching", "STALL_S"]

_AXIS = "members"

# ---- the watchdog: a chunk that makes no progress fails in one line (exit 1) and can be resumed

STALL_S = 300.0  # `byoldyn sweep --stall-timeout`'s default, in seconds
_WATCH = {"limit": None, "hint": "", "what": None, "since": 0.0, "thread": None}


def stall_timeout(seconds: float | None, hint: str = "") -> None:
    """Arm the watchdog of this process: a chunk during which the process uses no CPU time for `seconds` (a
    deadlock: threads waiting on each other, as in `observe`) ends the process with one line on stderr and exit
    status 1, `hint` appended (how to resume: the finished chunks are on disk). `None` or 0 disarms it. Progress is
    CPU time, not wall time, so a long chunk that computes is never stopped; the waits on other processes (the
    gathers and barriers) are not watched: a stalled process stops itself, and its peers then fail or are stopped
    (`jax.distributed`'s heartbeat, `byoldyn.launch`). Used by `byoldyn sweep`; the Python API never exits."""
    if seconds is not None and not seconds >= 0:
        raise ValueError(f"the stall timeout must be >= 0 seconds, got {seconds!r}")
    _WATCH.update(limit=seconds or None, hint=hint)


@contextlib.contextmanager
def watching(what: str):
    """Watch the block as `what` ("a chunk's integration") when the watchdog is armed (`stall_timeout`)."""
    if _WATCH["limit"] is None:
        yield
        return
    if _WATCH["thread"] is None:
        _WATCH["thread"] = threading.Thread(target=_watch, name="byoldyn-watchdog", daemon=True)
        _WATCH["thread"].start()
    _WATCH.update(what=what, since=time.monotonic())
    try:
        yield
    finally:
        _WATCH["what"] = None


def _watch() -> None:
    """The watchdog thread: progress is at least 1 % of a core between two looks; none for `limit` s is a stall."""
    last, cpu = time.monotonic(), time.process_time()
    moved = last
    while True:
        limit = _WATCH["limit"]
        time.sleep(min(5.0, max(0.05, (limit or 1.0) / 20)))
        now, c, what = time.monotonic(), time.process_time(), _WATCH["what"]
        if limit is None or what is None or c - cpu >= 0.01 * (now - last):
            moved = now
        last, cpu = now, c
        if limit is not None and what is not None and now - max(moved, _WATCH["since"]) >= limit:
            _stalled(what, limit)


def _stalled(what: str, limit: float) -> None:
    who = f"process {jax.process_index()} of {jax.process_count()}: " if jax.process_count() > 1 else ""
    print(f"byoldyn: failed: {who}{what} made no progress for {limit:g} s (the process used no CPU time: a "
          f"deadlock){_WATCH['hint']}", file=sys.stderr, flush=True)
    with contextlib.suppress(Exception):
        from ..io import release_outputs  # the output locks, if this version takes them
        release_outputs()
    os._exit(1)  # the main thread is stuck in XLA: nothing else can end it


def _fixed_program(level, static, method, n_int, n_per, with_path, max_norm, mesh, block=None):
    """The sharded chunk program: fixed-step Euler (one GD step per step) or RK4 (`byoldyn.stepper.fixed_solve`)
    from the states y0, with the states at the n_int save times; a member whose state blows up is frozen at its
    last good state and flagged (`alive` False), as `simulate` in fixed-step mode. At the mode level with RK4 the
    lanes are elementwise and divergence is checked at the saves (a check per step would cost as much as the
    step). Each device integrates its own block of members (`shard_map`): no communication. The observables
    (eigendecompositions, i.e. LAPACK calls) are computed outside, by `observe` (concurrent LAPACK custom calls
    on several host devices were seen to deadlock).

    The program takes typed objects: `program(y0, hyper, sigma2, dyn, dt)` with the batched `Hyper` (one value per
    member in each field), sigma2 (B,) and `dyn`, the array leaves of the `Variant` (a swept predictor parameter,
    one value per member; `static` is the rest of the variant, `eqx.partition`)."""
    rhs = RHS[level]
    check = "save" if level == "modes" and method == "rk4" else "step"
    col = (lambda a: a[:, None]) if level == "modes" else (lambda a: a)  # noqa: E731 - (B,) against (B, modes)

    def program(y0, hyper, sigma2, dyn, dt):
        h, s2, variant = jax.tree.map(col, hyper), col(sigma2), eqx.combine(dyn, static)
        r = fixed_solve(lambda y: rhs(y, h, s2, variant), y0, dt, (n_int, n_per), method=method,
                        max_norm=max_norm, batch_ndim=1, check=check, save=with_path)
        return r.y, r.ys, r.alive

    def blocked(y0, hyper, sigma2, dyn, dt):
        """`program` over blocks of `block` members one after another (`lax.map`; byoldyn.batch.fixed_step_block):
        a block stays in cache for all its steps. The same operations per member, so the same bits."""
        m = jax.tree.leaves(y0)[0].shape[0]
        if block is None or block >= m:
            return program(y0, hyper, sigma2, dyn, dt)
        nb = -(-m // block)
        split = lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], nb * block - m, axis=0)]).reshape(  # noqa: E731
            (nb, block) + a.shape[1:])
        y1, path, alive_t = jax.lax.map(lambda c: program(*c, dt), jax.tree.map(split, (y0, hyper, sigma2, dyn)))
        first = lambda a: a.reshape((nb * block,) + a.shape[2:])[:m]  # noqa: E731
        later = lambda a: jnp.moveaxis(a, 0, 1).reshape((a.shape[1], nb * block) + a.shape[3:])[:, :m]  # noqa: E731
        return jax.tree.map(first, y1), jax.tree.map(later, path), later(alive_t)

    m, mt = P(_AXIS), P(None, _AXIS)
    f = jax.shard_map(blocked, mesh=mesh, in_specs=(m, m, m, m, P()), out_specs=(m, mt, mt), check_vma=False)
    return jax.jit(f)


@eqx.filter_jit
def start(level, variant, seeds, scale, n1, n2):
    """The starts of the members `seeds` (`sweep_levels.initial`) under `variant`."""
    return initial(level, variant, seeds, scale, n1, n2, scale.dtype)


@eqx.filter_jit
def observe(level, y, ok, threshold, serial=False, sigma2=None, variant=None):
    """The observables of the members `y` (leading member axis), NaN where not `ok`; with an F̂-derived predictor
    in `variant`, of the states `synced` first (Wp = g(F̂), p_j = g(s_j, max s); `sigma2` and the variant's array
    leaves carry the member axis).

    `serial`: one member at a time (`lax.map`), so that every eigendecomposition is of one matrix. On CPU, jaxlib
    0.10's batched LAPACK kernels (`lapack_dsyevd_ffi`) split a batch into tasks on XLA's intra-op thread pool and
    block until they finish (`ParallelBatchMap`, `BlockingCounter::Wait`); when as many batched calls run at once
    as the pool has threads (two host devices, or two independent eigh in one program, on 2 cores), every worker
    waits for tasks that no worker is free to run: the sweep hangs at 0 % CPU (reproduced: 4 of 4 runs
    of two concurrent batched eigh on 2 devices hung, 2 of 4 with `--xla_cpu_multi_thread_eigen=false`, 0 of 4
    with one matrix per call). A batch of one never leaves the calling thread. Same values per member."""
    direct = variant is not None and variant.predictor.direct
    dyn, static = eqx.partition(variant, eqx.is_array) if direct else (None, None)

    def measure(y, ok, s2, dyn):
        if direct:
            y = synced(level, y, s2, eqx.combine(dyn, static))
        return mask(OBS[level](y, threshold), ok)

    s2 = sigma2 if direct else None
    if not serial:
        return measure(y, ok, s2, dyn)
    one = lambda m: jax.tree.map(lambda a: a[None], m)  # noqa: E731
    return jax.lax.map(lambda m: jax.tree.map(lambda a: a[0], measure(*one(m))), (y, ok, s2, dyn))


def _observe(level, y, ok, threshold, device, sigma2=None, variant=None):
    """`observe` on `device` of members with any leading axes (time, member): flattened into one member axis, one
    member at a time on CPU (see `observe`), the whole batch elsewhere. `sigma2` and the variant's array leaves
    (one per member, the last leading axis) are repeated over the others."""
    lead = ok.shape
    flat = jax.tree.map(lambda a: np.reshape(a, (-1,) + a.shape[len(lead):]), y)
    each = lambda a: np.reshape(np.broadcast_to(np.asarray(a), lead), -1)  # noqa: E731
    if variant is not None:
        variant = jax.tree.map(lambda a: each(a) if eqx.is_array(a) else a, variant)
        sigma2 = each(sigma2)
    serial = device.platform == "cpu" and level != "modes"  # the mode level has no eigendecomposition
    with jax.default_device(device):
        out = observe(level, flat, np.reshape(ok, -1), threshold, serial, sigma2, variant)
    return {k: np.reshape(np.asarray(v), lead + v.shape[1:]) for k, v in out.items()}


@functools.lru_cache(maxsize=64)
def program(level, static, method, n_int, n_per, with_path, max_norm, mesh, block=None):
    """The compiled chunk program of these options (`_fixed_program`), built once per key (`static`: the
    variant without its array leaves, hashable)."""
    return _fixed_program(level, static, method, n_int, n_per, with_path, max_norm, mesh, block)


def make_mesh(devices):
    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh((len(devices),), (_AXIS,), devices=devices)


def global_array(x: np.ndarray, mesh):
    """A host array as a global array sharded over the member axis (every process passes the same array)."""
    sharding = NamedSharding(mesh, P(_AXIS, *([None] * (x.ndim - 1))))
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def to_host(tree):
    """Global arrays as numpy arrays on this process: `device_get`, or with several processes (`jax.distributed`)
    the gather of every process's shards (`multihost_utils.process_allgather`, a collective: every process calls it
    at the same point)."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils
    try:
        return multihost_utils.process_allgather(tree, tiled=True)
    except Exception as e:  # noqa: BLE001 - a collective that fails: another process died
        raise _lost("gathering a chunk", e) from None


def _lost(what: str, e: BaseException):
    """The `RunFailed` of a collective that failed (a process of the job died or stopped): one line."""
    from ..errors import RunFailed

    return RunFailed(f"process {jax.process_index()} of {jax.process_count()}: {what} failed, another process has "
                     f"died or stopped ({one_line(e)[:200]}); run the same command again to resume")


def _local_device(mesh):
    """The first device of `mesh` that this process can address (with `jax.distributed`, device 0 of the mesh
    belongs to process 0): where the starts and the observables are computed, from host arrays."""
    me = jax.process_index()
    return next(d for d in mesh.devices.flat if d.process_index == me)


def barrier(name: str) -> None:
    """Every process waits here until all have reached `name` (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        try:
            multihost_utils.sync_global_devices(f"byoldyn.sweep:{name}")
        except Exception as e:  # noqa: BLE001 - see _lost
            raise _lost(f"waiting on {name}", e) from None


_MSG_BYTES = 2048


def _from_writer(code: int, flags: np.ndarray, message: str = "") -> tuple[int, np.ndarray, str]:
    """Process 0's decision `(code, flags, message)` on every process (`broadcast_one_to_all`; the others pass
    placeholders of the same shapes). With one process, the arguments as they are."""
    if jax.process_count() == 1:
        return code, flags, message
    from jax.experimental import multihost_utils
    msg = np.zeros(_MSG_BYTES, np.uint8)
    raw = message.encode()[:_MSG_BYTES]
    msg[:len(raw)] = np.frombuffer(raw, np.uint8)
    try:
        got = multihost_utils.broadcast_one_to_all({"code": np.asarray([code], np.int32),
                                                    "flags": flags.astype(np.int32), "msg": msg})
    except Exception as e:  # noqa: BLE001 - see _lost
        raise _lost("receiving process 0's plan", e) from None
    text = np.asarray(got["msg"], np.uint8).tobytes().rstrip(b"\0").decode(errors="replace")
    return int(np.asarray(got["code"])[0]), np.asarray(got["flags"]).astype(flags.dtype), text


def follow_writer(prepare, is_writer: bool, n_chunks: int, out, read_done) -> tuple:
    """Several processes: process 0 runs `prepare` (the file bookkeeping) and every process gets its decision;
    `read_done() -> (ds, why)` reads the complete result on the others.

    **Returns:** `(ds, None)` when `out` is already complete (the other processes read it: `out` must be on a
    filesystem every process shares), else `(None, todo)`, the same chunk mask on every process. A refusal or error
    on process 0 is raised there and, as one line, on the others (a `Refused` with the same text, else `RunFailed`).
    """
    from ..errors import RunFailed

    err, done, todo = None, None, np.zeros(n_chunks, bool)
    if is_writer:
        try:
            done, todo = prepare()
        except Exception as e:  # noqa: BLE001 - re-raised below, after the others have been told
            err = e
    todo = np.zeros(n_chunks, bool) if todo is None else todo
    code = 3 if done is not None else 0 if err is None else 1 if isinstance(err, Refused) else 2
    text = "" if err is None else f"{err}\x1f{err.cli}" if isinstance(err, Refused) else one_line(err)
    code, todo, text = _from_writer(code, todo, text)
    if err is not None:
        raise err
    if code == 1:
        msg, _, cli = text.partition("\x1f")
        raise Refused(msg, cli=cli or msg)
    if code == 2:
        raise RunFailed(f"sweep stopped on process 0: {text}")
    if code == 3 and not is_writer:
        done, why = read_done()
        if done is None:
            raise RunFailed(f"{out} is complete on process 0 but {why} on process {jax.process_index()}: put out on "
                            "a filesystem every process shares")
    return done, todo.astype(bool)


def run_chunk(plan, c, mesh, strategy: str = "auto", block=None) -> dict:
    """Integrate the members of the chunk `c` (a `plan.Members`: seeds, scales, the batched `Hyper`, sigma2 and
    the `Variant` with its swept predictor parameters, one width, padded to the devices) under `plan` (a
    `plan.Plan`: its typed `scheme`, `level`, `threshold`, `max_norm`); numpy results with a leading member axis
    for the `c.size` real members. `strategy`, `block`: how each device batches its members (`byoldyn.batch`);
    the results do not depend on it."""
    B, n1, n2, sc, level = c.size, c.n1, c.n2, plan.scheme, plan.options.level
    dtype = jnp.result_type(float)
    o = plan.options
    with_path = o.n_save is not None
    seeds = jnp.asarray(c.seed.astype(np.uint32))
    if sc.method == "adaptive":
        from ..batch import simulate_batch
        s0 = initial("matrix", c.variant, seeds, jnp.asarray(c.scale, dtype), n1, n2, dtype)
        ts = np.linspace(0.0, sc.t1, o.n_save + 1) if with_path else np.asarray([sc.t1])
        with watching("a chunk's integration"):  # this process's shards; the gather below waits for the others
            sol = jax.block_until_ready(simulate_batch(
                s0, c.hyper, Data.isotropic(n1, c.sigma2), sc.t1, ts=jnp.asarray(ts, dtype), variant=c.variant,
                rtol=sc.rtol, atol=sc.atol, max_steps=sc.max_steps, max_norm=plan.max_norm,
                observe=Observe(plan.threshold), devices=mesh.devices.ravel().tolist(), strategy=strategy,
                block=block))
        obs = to_host(sol.observed)
        status = np.asarray(to_host(sol.status))[:B].astype(np.int8)
        path = {k: np.asarray(v)[:B] for k, v in obs.items()}  # (B, T, ...)
        final = {k: v[:, -1] for k, v in path.items()}
        return _pack(final, path if with_path else None, status)
    from ..batch import fixed_step_block
    npdt = np.dtype(dtype)
    pad_to = len(c.seed)
    blk = fixed_step_block(strategy, mesh.devices.ravel()[0].platform, pad_to // mesh.devices.size,
                           state_size(level, n1, n2) * npdt.itemsize * (8 if sc.method == "rk4" else 4), block)
    dyn, static = eqx.partition(c.variant, eqx.is_array)
    if level == "matrix" and static.predictor.direct and mesh.devices.size > 1 and \
            mesh.devices.ravel()[0].platform == "cpu":
        blk = 1  # g(F̂) takes an eigh per step: one matrix per LAPACK call on several host devices (see `observe`)
    prog = program(level, static, sc.method, sc.n_int, sc.n_per, with_path, plan.max_norm, mesh, blk)
    one = _local_device(mesh)
    with watching("a chunk's start"), jax.default_device(one):  # starts and observables on one device (see observe)
        y0 = start(level, c.variant, seeds, jnp.asarray(c.scale, dtype), n1, n2)
        y0 = jax.tree.map(np.asarray, y0)  # every process computes the same starts: the same host arrays
        alive0 = ~np.asarray(blown(y0, plan.max_norm, 1))[:B]
    put = lambda t: jax.tree.map(lambda a: global_array(np.asarray(a, npdt), mesh), t)  # noqa: E731
    with watching("a chunk's integration"):  # this process's shards (no communication); to_host gathers them
        y1, path, alive_t = jax.block_until_ready(
            prog(put(y0), put(c.hyper), put(c.sigma2), put(dyn), jnp.asarray(sc.dt_eff, dtype)))
    y1, path, alive_t = to_host((y1, path, alive_t))
    alive_t = np.asarray(alive_t)[:, :B]
    cut = lambda t: jax.tree.map(lambda a: np.asarray(a)[:B], t)  # noqa: E731
    members = (np.asarray(c.sigma2)[:B], jax.tree.map(lambda a: np.asarray(a)[:B] if eqx.is_array(a) else a,
                                                      c.variant))
    with watching("a chunk's observables"):
        final = _observe(level, cut(y1), alive_t[-1], plan.threshold, one, *members)
        if with_path:
            states = jax.tree.map(lambda a0, a: np.concatenate([a0[None], a]), cut(y0),
                                  jax.tree.map(lambda a: np.asarray(a)[:, :B], path))
            ok = np.concatenate([alive0[None], alive_t])
            path = _observe(level, states, ok, plan.threshold, one, *members)
    status = np.where(alive_t[-1], SUCCEEDED, DIVERGED).astype(np.int8)
    path = {k: np.moveaxis(v, 0, 1) for k, v in path.items()} if with_path else None
    return _pack(final, path, status)


def _pack(final, path, status) -> dict:
    res = {"status": status}
    src = final if path is None else path
    for k, v in src.items():
        res[k] = np.asarray(v)
    return res
