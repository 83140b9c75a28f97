"""`sweep`: hyperparameter sweeps at scale: chunked, sharded over devices, resumable, labelled.

A sweep is the Cartesian grid (or an explicit list) of any of alpha_p, eta, eta_p, beta, sigma2,
the widths n1/n2 and the initialisation scale, times a set of seeds, at one level of the model
ladder (THEORY.md sections 1, 5, 7):

- `"modes"`: the decoupled per-mode system (Eqs. 11-13) in the finite scalar form (w, w_p, w_a)
  of `flows.modes.mode_field` (THEORY.md section 7.1), one lane per mode and member;
- `"symmetric"`: the (Wp, F, tau) flow, Eq. 7 (`predictor="symmetric"`) or Eq. 62 (`"learned"`),
  with tau evolved by Assumption 1 (THEORY.md section 5);
- `"matrix"`: the full Lemma 1 flow (Eqs. 2-4) and its variants.

Every member starts from `State.random(PRNGKey(seed), n1, n2, scale=scale)` with Wa(0) = 0 (the
paper's tau(0) = 0), so a seed means the same start at every hyperparameter and at every level:
the symmetric level takes F = W Wᵀ and Wp, the mode level the eigenvalues s_j of F and
p_j = u_jᵀ sym(Wp) u_j on its eigenvectors (the aligned projection of the same start).

Members are integrated in chunks of bounded size; a chunk is one XLA program whose member axis
is sharded over all JAX devices (`jax.make_mesh` + `NamedSharding`), with the fixed-step Euler
(= full-batch gradient descent) or RK4 scheme, or (matrix level) the adaptive per-member solves
of `simulate_batch`. Only observables are kept, never trajectories. With `out=`, every finished
chunk is written atomically to `OUT.parts/chunk-NNNNN.nc` beside a manifest with the
configuration hash, so a killed sweep started again with the same arguments recomputes only the
missing chunks and then writes `OUT` atomically. The levels' fields, observables and starts are in
`byoldyn.sweep_levels`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.sharding import NamedSharding, PartitionSpec as P

from .errors import check_output_dir, check_output_file, one_line, read_json
from .flows.matrix import check_variant
from .integrate import DIVERGED, STATUS_NAMES, SUCCEEDED
from .io import atomic_write, save_netcdf
from .model import Data, Hyper
from .stepper import blown, fixed_solve, mask
from .sweep_levels import OBS, OBSERVABLES, RHS, Observe, initial, per_mode

__all__ = ["sweep", "LEVELS", "METHODS", "PARAMS", "OBSERVABLES", "parts_dir", "config_hash", "memory_limit",
           "MEMORY_FRACTION", "SEED_LIMIT"]

LEVELS = ("modes", "symmetric", "matrix")
METHODS = ("rk4", "euler", "adaptive")
PARAMS = ("n1", "n2", "alpha_p", "eta", "eta_p", "beta", "sigma2", "scale")  # canonical dimension order
_INT_PARAMS = ("n1", "n2")
_SIGN = {"alpha_p": "+", "eta": "0+", "eta_p": "0+", "beta": "0+", "sigma2": "0+", "scale": "0+"}
_AXIS = "members"



# ---------------------------------------------------------------------------------------------
# validation and the member table


def _values(name: str, v, distinct: bool = True) -> tuple[np.ndarray, bool]:
    """`(values, swept)`: a scalar (not swept) or a non-empty 1-D sequence of distinct values."""
    is_int = name in _INT_PARAMS or name == "seeds"
    if isinstance(v, (str, bytes)) or isinstance(v, bool):
        raise ValueError(f"{name} must be a number or a 1-D sequence of numbers, got {v!r}")
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a 1-D sequence of numbers, got {v!r}") from None
    swept = a.ndim == 1
    if a.ndim > 1 or a.size == 0:
        raise ValueError(f"{name} must be a number or a non-empty 1-D sequence, got shape {a.shape}")
    a = a.reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {v!r}")
    if is_int:
        if np.any(a != np.round(a)) or np.any(a < (0 if name == "seeds" else 1)):
            kind = "non-negative integers" if name == "seeds" else "positive integers"
            raise ValueError(f"{name} must be {kind}, got {v!r}")
        a = a.astype(np.int64)
    sign = _SIGN.get(name)
    if sign == "+" and np.any(a <= 0):
        raise ValueError(f"{name} must be > 0, got {a[a <= 0][0].item()!r}")
    if sign == "0+" and np.any(a < 0):
        raise ValueError(f"{name} must be >= 0, got {a[a < 0][0].item()!r}")
    if distinct and swept and len(np.unique(a)) != len(a):
        raise ValueError(f"{name} values must be distinct, got {v!r}")
    return a, swept


SEED_LIMIT = 2 ** 32  # seeds are 32-bit: PRNGKey(seed) for 0 <= seed < 2**32 (larger ones would wrap)


class Refused(ValueError):
    """A refusal whose advice differs on the command line: `str(e)` names Python arguments (`resume=False`),
    `e.cli` the `byoldyn sweep` flags (`--resume`)."""

    def __init__(self, message: str, cli: str | None = None):
        super().__init__(message)
        self.cli = cli or message


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _seeds(seeds) -> int | np.ndarray:
    """A count k (seeds 0..k-1, returned as the count so that a huge one costs nothing before the size check)
    or the validated array of distinct seeds in [0, 2**32)."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if not 1 <= seeds <= SEED_LIMIT:
            raise ValueError(f"seeds must be a positive count (at most 2**32) or a sequence of seeds, got {seeds!r}")
        return int(seeds)
    a, swept = _values("seeds", seeds)
    if np.any(a >= SEED_LIMIT):
        raise ValueError(f"seeds must be < 2**32 (32-bit PRNG seeds; larger ones would repeat smaller ones), "
                         f"got {a[a >= SEED_LIMIT][0].item()!r}")
    return a


def _axes(params: dict, points) -> dict:
    """The validated values of every parameter (small arrays: no member table yet).

    **Returns:** a dict with `vals` (name -> 1-D array), `swept` (grid dimensions, in `PARAMS` order),
    `tied` (eta_p / n2 when tied), `points` (the names given in `points`) and `n` (members per seed).
    """
    tied = {k for k in ("eta_p", "n2") if params[k] is None}
    vals, swept = {}, []
    for k in PARAMS:
        if k in tied:
            continue
        a, s = _values(k, params[k])
        vals[k] = a
        if s:
            swept.append(k)
    if points is None:
        return {"vals": vals, "swept": swept, "tied": tied, "points": [],
                "n": math.prod(len(vals[k]) for k in swept)}
    if swept:
        raise ValueError(f"with points, the other parameters must be scalars; {swept[0]} is a sequence")
    if not isinstance(points, dict) or not points:
        raise ValueError(f"points must be a non-empty dict of parameter name -> 1-D sequence, got {points!r}")
    lens = set()
    for k, v in points.items():
        if k not in PARAMS:
            raise ValueError(f"points: unknown parameter {k!r}; choose from {', '.join(PARAMS)}")
        a = np.atleast_1d(_values(k, v, distinct=False)[0])
        lens.add(len(a))
        vals[k] = a
    if len(lens) != 1:
        raise ValueError(f"points: every parameter needs the same number of values, got lengths {sorted(lens)}")
    return {"vals": vals, "swept": [], "tied": tied - set(points), "points": list(points), "n": lens.pop()}


def _plan(axes: dict, seeds: np.ndarray):
    """The flat member table and the labelled grid it reshapes to (after `_check_work`: this allocates).

    **Returns:** `(table, dims, coords, fixed, point_coords, tied)`: `table` maps every parameter to a (M,)
    array (M = members, seed fastest); `dims` the grid dimensions (ending in "seed"); `coords` the dimension
    coordinates; `fixed` the parameters that are not swept (scalars), with eta_p / n2 absent when tied.
    """
    vals, swept, tied, points = axes["vals"], axes["swept"], set(axes["tied"]), axes["points"]
    S = len(seeds)
    if points:
        npts = axes["n"]
        table = {k: np.repeat(np.broadcast_to(vals[k], (npts,)) if k in points else np.full(npts, vals[k][0]), S)
                 for k in vals}
        dims = ["point", "seed"]
        coords = {"point": np.arange(npts), "seed": seeds}
        fixed = {k: vals[k][0].item() for k in vals if k not in points}
        point_coords = {k: np.asarray(vals[k]) for k in points}
    else:
        shape = [len(vals[k]) for k in swept] + [S]
        idx = np.indices(shape).reshape(len(shape), -1)
        table = {}
        for k in vals:
            table[k] = vals[k][idx[swept.index(k)]] if k in swept else np.full(idx.shape[1], vals[k][0])
        dims = swept + ["seed"]
        coords = {k: vals[k] for k in swept} | {"seed": seeds}
        fixed = {k: vals[k][0].item() for k in vals if k not in swept}
        point_coords = {}
    M = len(table["n1"])
    table["seed"] = np.tile(seeds, M // S)
    if "eta_p" in tied:
        table["eta_p"] = table["eta"]
    if "n2" in tied:
        table["n2"] = table["n1"]
    return table, dims, coords, fixed, point_coords, sorted(tied)


# ---------------------------------------------------------------------------------------------
# the bound on work: memory (and disk) estimated from the sizes, before anything big is allocated

MEMORY_FRACTION = 0.5  # of the available memory (host; and of each accelerator's) that one sweep may plan to use
_STAGES = {"euler": 4, "rk4": 8, "adaptive": 12}  # live copies of the state while one step of the scheme runs
_MAX_STEPS = 2 ** 31 - 1  # fixed steps per save interval: the trip count of one int32 loop


def _bytes(b: float) -> str:
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= f:
            return f"{b / f:.3g} {unit}"
    return f"{int(b)} B"


def _available_memory() -> int | None:
    """Available host memory in bytes (psutil if installed, else /proc/meminfo, else sysconf), None if unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil is optional
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit() -> tuple[float, str]:
    """The bytes one sweep may plan to hold in host memory, and where that number comes from.

    `BYOLDYN_MEMORY_LIMIT` (a number of bytes, e.g. `4e9`) when set (tests, shared machines), else
    `MEMORY_FRACTION` of the available memory (inf if that is unknown).
    """
    env = os.environ.get("BYOLDYN_MEMORY_LIMIT", "").strip()
    if env:
        try:
            v = float(env)
        except ValueError:
            v = float("nan")
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"BYOLDYN_MEMORY_LIMIT must be a number of bytes > 0, got {env!r}")
        return v, "BYOLDYN_MEMORY_LIMIT"
    avail = _available_memory()
    if avail is None:
        return float("inf"), "available memory unknown"
    return MEMORY_FRACTION * avail, f"{MEMORY_FRACTION:g} of the {_bytes(avail)} available; BYOLDYN_MEMORY_LIMIT overrides"


def _device_limit(devices) -> float:
    """`MEMORY_FRACTION` of the smallest accelerator memory (`bytes_limit`), inf where devices do not say (CPU)."""
    lims = []
    for d in devices:
        try:
            st = d.memory_stats()
        except Exception:  # noqa: BLE001 - not every backend implements it
            st = None
        if st and st.get("bytes_limit"):
            lims.append(float(st["bytes_limit"]))
    return MEMORY_FRACTION * min(lims) if lims else float("inf")


def _footprint(level: str, method: str, n1: int, n2: int, n_time: int, with_path: bool, itemsize: int):
    """Bytes per member: `(run, start, result)`.

    `run`: the chunk program's peak (the scheme's stages, the saved states and their host copies, the
    observables with their eigendecompositions); `start`: `State.random` and the reduction to the level;
    `result`: the observables kept for the whole sweep (per-mode ones at n2 modes).
    """
    state = {"modes": 3 * n2, "symmetric": 2 * n2 * n2 + 1, "matrix": 2 * n2 * n1 + n2 * n2}[level]
    n_obs = sum(n2 if pm else 1 for _, pm, _ in OBSERVABLES[level])
    work = 0 if level == "modes" else 4 * n2 * n2  # F, its eigenvectors and products, per observed state
    if method == "adaptive":
        run = state * _STAGES[method] + n_time * 2 * n_obs + work
    else:
        saved = 3 * n_time if with_path else 3  # device path, host copy, states with the start
        run = state * (_STAGES[method] + saved) + n_time * (n_obs + work)
    start = 2 * n2 * n1 + 6 * n2 * n2
    return run * itemsize, start * itemsize, n_time * n_obs * itemsize + 1


def _check_work(level, method, axes, n_seeds, n_save, chunk, ndev, out, itemsize, devices):
    """Refuse (one `Refused` line naming the parameter, the estimate and the limit) a sweep that cannot fit
    in memory (results, member table and the largest chunk) or whose result cannot fit on disk; checked
    from the sizes alone, before the member table or any state exists."""
    vals, swept = axes["vals"], axes["swept"]
    M = axes["n"] * n_seeds
    n1 = int(vals["n1"].max())
    n2 = n1 if "n2" not in vals else int(vals["n2"].max())
    with_path = n_save is not None
    n_time = 1 if n_save is None else n_save + 1
    run, start, result = _footprint(level, method, n1, n2, n_time, with_path, itemsize)
    B = -(-min(chunk, M) // ndev) * ndev  # the largest chunk program, padded to the devices
    per_member = max(run, start)
    table = 8 * (len(PARAMS) + 3 + len(swept))  # the member table and its grid indices
    results = M * (2 * result + table)  # the results, and the copy written or returned
    limit, source = memory_limit()
    dev = _device_limit(devices)
    lim = f"above the memory limit {_bytes(limit)} ({source})"
    dlim = f"above the accelerator limit {_bytes(dev)} ({MEMORY_FRACTION:g} of the smallest device's memory)"

    def refuse(msg):  # msg(f): the text with parameter names f(name): Python names here, flags for the CLI
        raise Refused(msg(lambda k: k), cli=msg(_flag))

    def widths(f):
        return f"{f('n1')} = {n1}, {f('n2')} = {n2}"

    if per_member > limit or per_member > dev:
        refuse(lambda f: f"{widths(f)} too large at the {level} level: one member needs about "
               f"{_bytes(per_member)}, {lim if per_member > limit else dlim}")
    if results + B * per_member > limit or max(-(-B // ndev) * run, B * start) > dev:
        if results + min(ndev, M) * per_member <= limit and max(run, min(ndev, M) * start) <= dev:
            most = int(min((limit - results) // per_member, dev // start, dev // run * ndev))
            over = lim if results + B * per_member > limit else dlim
            refuse(lambda f: f"{f('chunk')} = {B}: a chunk of {B} members ({widths(f)}) needs about "
                   f"{_bytes(B * per_member)}, {over}; use a chunk of at most {most} members")
        counts = [(k, len(vals[k])) for k in swept] + ([("points", axes["n"])] if axes["points"] else [])
        counts.append(("seeds", n_seeds))

        def sizes(f):
            return " x ".join(f"{f(k)} {n}" for k, n in counts)

        refuse(lambda f: f"sweep too large: {M} members ({sizes(f)}) need about "
               f"{_bytes(results + min(ndev, M) * per_member)} of memory"
               + (f" with {f('n_save')} = {n_save}" if with_path else "") + f", {lim}; sweep fewer values")
    if out is not None:
        p = Path(out).absolute().parent
        while not p.exists() and p.parent != p:
            p = p.parent
        try:
            free = shutil.disk_usage(p).free
        except OSError:
            free = None
        need = 2 * M * result  # the chunk files and the result, both present until the end
        if free is not None and need > free:
            refuse(lambda f: f"{f('out')}: the result and its chunk files need about {_bytes(need)} on disk, "
                   f"only {_bytes(free)} free in {str(p)!r}")
    return M


def _chunks(table, chunk: int) -> list[tuple[int, int]]:
    """Member ranges [start, stop): at most `chunk` members, never spanning two widths (n1, n2)."""
    w = table["n1"] * 1_000_003 + table["n2"]
    cuts = np.r_[0, np.flatnonzero(np.diff(w)) + 1, len(w)]
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):  # a few width groups: not a hot path
        out += [(int(s), int(min(s + chunk, b))) for s in range(int(a), int(b), chunk)]
    return out


def _auto_chunk(level: str, n1: int, n2: int, method: str, n_save: int | None = None) -> int:
    """A power of two of members whose state (times the saves, if any) is about 32 MB."""
    if level == "modes":
        per = 3 * n2 * 8
    elif level == "symmetric":
        per = (2 * n2 * n2 + 1) * 8
    else:
        per = (2 * n2 * n1 + n2 * n2) * 8
    target = 8 << 20 if method == "adaptive" else 32 << 20
    per *= 1 if n_save is None else n_save + 1
    return int(2 ** max(4, min(16, math.floor(math.log2(max(target // per, 1))))))


def config_hash(config: dict) -> str:
    """sha256 of the canonical JSON of a sweep configuration (the resume key)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parts_dir(out) -> Path:
    """The sidecar directory of the chunk files of `out`: `OUT.parts` (the suffix replaced)."""
    out = Path(out)
    return out.with_suffix(".parts")


# ---------------------------------------------------------------------------------------------
# the chunk programs


def _fixed_program(level, flags, method, n_int, n_per, with_path, max_norm, mesh, block=None):
    """The sharded chunk program: fixed-step Euler (one GD step per step) or RK4 (`byoldyn.stepper.fixed_solve`)
    from the states y0, with the states at the n_int save times; a member whose state blows up is frozen at its
    last good state and flagged (`alive` False), as `simulate` in fixed-step mode. At the mode level with RK4 the
    lanes are elementwise and divergence is checked at the saves (a check per step would cost as much as the
    step). Each device integrates its own block of members (`shard_map`): no communication. The observables
    (eigendecompositions, i.e. LAPACK calls) are computed outside, by `_observe` (concurrent LAPACK custom calls
    on several host devices were seen to deadlock)."""
    rhs = RHS[level]
    check = "save" if level == "modes" and method == "rk4" else "step"

    def program(y0, alpha_p, eta, eta_p, beta, sigma2, dt):
        col = (lambda a: a[:, None]) if level == "modes" else (lambda a: a)
        hyper = Hyper(col(alpha_p), col(eta), col(beta), col(eta_p))
        s2 = col(sigma2)
        r = fixed_solve(lambda y: rhs(y, hyper, s2, flags), y0, dt, (n_int, n_per), method=method,
                        max_norm=max_norm, batch_ndim=1, check=check, save=with_path)
        return r.y, r.ys, r.alive

    def blocked(y0, *args):
        """`program` over blocks of `block` members one after another (`lax.map`; byoldyn.batch.fixed_step_block):
        a block stays in cache for all its steps. The same operations per member, so the same bits."""
        m = jax.tree.leaves(y0)[0].shape[0]
        if block is None or block >= m:
            return program(y0, *args)
        nb = -(-m // block)
        split = lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], nb * block - m, axis=0)]).reshape(  # noqa: E731
            (nb, block) + a.shape[1:])
        y1, path, alive_t = jax.lax.map(lambda c: program(*c, args[-1]),
                                        (jax.tree.map(split, y0),) + tuple(split(a) for a in args[:-1]))
        first = lambda a: a.reshape((nb * block,) + a.shape[2:])[:m]  # noqa: E731
        later = lambda a: jnp.moveaxis(a, 0, 1).reshape((a.shape[1], nb * block) + a.shape[3:])[:, :m]  # noqa: E731
        return jax.tree.map(first, y1), jax.tree.map(later, path), later(alive_t)

    m, mt = P(_AXIS), P(None, _AXIS)
    f = jax.shard_map(blocked, mesh=mesh, in_specs=(m,) * 6 + (P(),), out_specs=(m, mt, mt), check_vma=False)
    return jax.jit(f)


@jax.jit(static_argnames=("level", "flags", "n1", "n2"))
def _start(level, flags, seeds, scale, n1, n2):
    return initial(level, flags, seeds, scale, n1, n2, scale.dtype)


@jax.jit(static_argnames=("level", "threshold"))
def _observe(level, y, ok, threshold):
    return mask(OBS[level](y, threshold), ok)


_PROGRAMS: dict = {}


def _program(*key):
    if key not in _PROGRAMS:
        _PROGRAMS[key] = _fixed_program(*key)
    return _PROGRAMS[key]


def _mesh(devices):
    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh((len(devices),), (_AXIS,), devices=devices)


def _global(x: np.ndarray, mesh):
    """A host array as a global array sharded over the member axis (every process passes the same array)."""
    sharding = NamedSharding(mesh, P(_AXIS, *([None] * (x.ndim - 1))))
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _host(tree):
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
    from .errors import RunFailed

    return RunFailed(f"process {jax.process_index()} of {jax.process_count()}: {what} failed, another process has "
                     f"died or stopped ({one_line(e)[:200]}); run the same command again to resume")


def _local_device(mesh):
    """The first device of `mesh` that this process can address (with `jax.distributed`, device 0 of the mesh
    belongs to process 0): where the starts and the observables are computed, from host arrays."""
    me = jax.process_index()
    return next(d for d in mesh.devices.flat if d.process_index == me)


def _barrier(name: str) -> None:
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


def _follow_writer(prepare, is_writer: bool, n_chunks: int, out, h, level, n_save, n_modes, dtype, dims, sizes):
    """Several processes: process 0 runs `prepare` (the file bookkeeping) and every process gets its decision.

    **Returns:** `(ds, None)` when `out` is already complete (the other processes read it: `out` must be on a
    filesystem every process shares), else `(None, todo)`, the same chunk mask on every process. A refusal or error
    on process 0 is raised there and, as one line, on the others (a `Refused` with the same text, else `RunFailed`).
    """
    from .errors import RunFailed

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
        done, why = _read_complete(Path(out), h, _schema(level, n_save, n_modes, dtype), dims, sizes)
        if done is None:
            raise RunFailed(f"{out} is complete on process 0 but {why} on process {jax.process_index()}: put out on "
                            "a filesystem every process shares")
    return done, todo.astype(bool)


def _run_chunk(cfg, rows: dict, n1: int, n2: int, mesh, pad_to: int, strategy: str = "auto", block=None) -> dict:
    """Integrate the members `rows` (dict of (B,) arrays) of one width; numpy results with a leading member axis.
    `strategy`, `block`: how each device batches its members (`byoldyn.batch`); the results do not depend on it."""
    B = len(rows["seed"])
    dtype = jnp.result_type(float)
    npdt = np.dtype(dtype)
    pad = pad_to - B
    take = np.r_[np.arange(B), np.full(pad, B - 1)]  # repeat the last member to fill the program's shape
    cols = {k: np.asarray(rows[k])[take] for k in ("seed", "scale", "alpha_p", "eta", "eta_p", "beta", "sigma2")}
    flags = (cfg["ema"], cfg["stop_grad"], cfg["predictor"])
    with_path = cfg["n_save"] is not None
    if cfg["method"] == "adaptive":
        from .batch import simulate_batch
        s0 = initial("matrix", flags, jnp.asarray(cols["seed"].astype(np.uint32)), jnp.asarray(cols["scale"], dtype), n1, n2, dtype)
        ts = np.linspace(0.0, cfg["t1"], cfg["n_save"] + 1) if with_path else np.asarray([cfg["t1"]])
        sol = simulate_batch(
            s0, Hyper(cols["alpha_p"].astype(npdt), cols["eta"].astype(npdt), cols["beta"].astype(npdt),
                      cols["eta_p"].astype(npdt)),
            Data.isotropic(n1, cols["sigma2"].astype(npdt)), cfg["t1"], ts=jnp.asarray(ts, dtype),
            ema=cfg["ema"], stop_grad=cfg["stop_grad"], predictor=cfg["predictor"], rtol=cfg["rtol"],
            atol=cfg["atol"], max_steps=cfg["max_steps"], max_norm=cfg["max_norm"],
            observe=Observe(cfg["threshold"]), devices=mesh.devices.ravel().tolist(), strategy=strategy, block=block)
        obs = _host(sol.observed)
        status = np.asarray(_host(sol.status))[:B].astype(np.int8)
        path = {k: np.asarray(v)[:B] for k, v in obs.items()}  # (B, T, ...)
        final = {k: v[:, -1] for k, v in path.items()}
        return _pack(final, path if with_path else None, status)
    from .batch import fixed_step_block
    state_bytes = {"modes": 3 * n2, "symmetric": 2 * n2 * n2 + 1, "matrix": 2 * n2 * n1 + n2 * n2}[cfg["level"]]
    blk = fixed_step_block(strategy, mesh.devices.ravel()[0].platform, pad_to // mesh.devices.size,
                           state_bytes * npdt.itemsize * (8 if cfg["method"] == "rk4" else 4), block)
    prog = _program(cfg["level"], flags, cfg["method"], cfg["n_int"], cfg["n_per"], with_path, cfg["max_norm"], mesh,
                    blk)
    one = _local_device(mesh)
    with jax.default_device(one):  # initial states and observables on one device (LAPACK: see _fixed_program)
        y0 = _start(cfg["level"], flags, jnp.asarray(cols["seed"].astype(np.uint32)), jnp.asarray(cols["scale"], dtype), n1, n2)
        y0 = jax.tree.map(np.asarray, y0)  # every process computes the same starts: the same host arrays
        alive0 = ~np.asarray(blown(y0, cfg["max_norm"], 1))[:B]
    args = [_global(cols[k].astype(npdt), mesh) for k in ("alpha_p", "eta", "eta_p", "beta", "sigma2")]
    y1, path, alive_t = prog(jax.tree.map(lambda a: _global(a, mesh), y0), *args, jnp.asarray(cfg["dt_eff"], dtype))
    y1, path, alive_t = _host((y1, path, alive_t))
    alive_t = np.asarray(alive_t)[:, :B]
    cut = lambda t: jax.tree.map(lambda a: np.asarray(a)[:B], t)  # noqa: E731
    with jax.default_device(one):
        final = _observe(cfg["level"], cut(y1), alive_t[-1], cfg["threshold"])
        if with_path:
            states = jax.tree.map(lambda a0, a: np.concatenate([a0[None], a]), cut(y0),
                                  jax.tree.map(lambda a: np.asarray(a)[:, :B], path))
            ok = np.concatenate([alive0[None], alive_t])
            path = jax.vmap(lambda y, k: _observe(cfg["level"], y, k, cfg["threshold"]))(states, ok)
    status = np.where(alive_t[-1], SUCCEEDED, DIVERGED).astype(np.int8)
    final = {k: np.asarray(v) for k, v in final.items()}
    path = {k: np.moveaxis(np.asarray(v), 0, 1) for k, v in path.items()} if with_path else None
    return _pack(final, path, status)


def _pack(final, path, status) -> dict:
    res = {"status": status}
    src = final if path is None else path
    for k, v in src.items():
        res[k] = np.asarray(v)
    return res


# ---------------------------------------------------------------------------------------------
# chunk files


def _chunk_name(k: int) -> str:
    return f"chunk-{k:05d}.nc"


def _dims(level: str, name: str, with_time: bool) -> list[str]:
    """The trailing dimensions of an observable (after the member or grid dimensions)."""
    if name == "status":
        return []
    return (["time"] if with_time else []) + (["mode"] if per_mode(level, name) else [])


def _write_chunk(path: Path, k: int, start: int, res: dict, h: str, level: str, with_time: bool) -> None:
    data = {name: (["member"] + _dims(level, name, with_time), v) for name, v in res.items()}
    ds = xr.Dataset(data, coords={"member": np.arange(start, start + len(res["status"]))},
                    attrs={"config_hash": h, "chunk": k})
    save_netcdf(ds, path / _chunk_name(k))


def _schema(level: str, n_save: int | None, n2: int, dtype) -> dict:
    """The variables of a chunk of width n2: name -> (trailing dims, trailing sizes, dtype)."""
    T = None if n_save is None else n_save + 1
    out = {"status": ((), (), np.dtype(np.int8))}
    for name, pm, _ in OBSERVABLES[level]:
        d = _dims(level, name, n_save is not None)
        out[name] = (tuple(d), tuple(T if x == "time" else n2 for x in d), np.dtype(dtype))
    return out


def _check_vars(ds: xr.Dataset, schema: dict, lead: tuple, lead_sizes: tuple) -> str | None:
    """Why `ds` does not hold exactly the variables of `schema` after the leading dims (None: it does)."""
    names = set(ds.data_vars)
    if names != set(schema):
        missing, extra = sorted(set(schema) - names), sorted(names - set(schema))
        return (f"missing variable {missing[0]!r}" if missing else f"unexpected variable {extra[0]!r}")
    for name, (dims, sizes, dtype) in schema.items():
        v = ds[name]
        if v.dims != lead + dims or v.shape != lead_sizes + sizes:
            return f"variable {name!r} has dims {dict(zip(v.dims, v.shape))}, expected {dict(zip(lead + dims, lead_sizes + sizes))}"
        if v.dtype != dtype:
            return f"variable {name!r} has dtype {v.dtype}, expected {dtype}"
    return None


def _read_chunk(path: Path, k: int, h: str, start: int, stop: int, schema: dict) -> tuple[dict | None, str | None]:
    """`(results, None)` for a chunk file of this configuration that matches `schema` exactly, else
    `(None, why)`; why is None when there is no file (nothing to warn about)."""
    f = path / _chunk_name(k)
    if not f.exists():
        return None, None
    try:
        with xr.open_dataset(f, engine="h5netcdf") as ds:
            if ds.attrs.get("config_hash") != h or int(ds.attrs.get("chunk", -1)) != k:
                return None, "is from another configuration"
            if "member" not in ds.coords or not np.array_equal(ds.member.values, np.arange(start, stop)):
                return None, f"does not hold members {start}-{stop - 1}"
            why = _check_vars(ds, schema, ("member",), (stop - start,))
            if why:
                return None, why
            res = {name: ds[name].values for name in schema}
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        return None, f"is unreadable ({one_line(e)})"
    if not np.all((res["status"] >= 0) & (res["status"] < len(STATUS_NAMES))):
        return None, "has an invalid status value"
    return res, None


def _read_complete(out: Path, h: str, schema: dict, dims: list, sizes: tuple) -> tuple[xr.Dataset | None, str]:
    """A complete result `out` of this configuration, loaded and checked against the schema: `(ds, "")`;
    else `(None, why)` with why "other" (a readable sweep of another configuration: never overwritten on resume)
    or the reason it is damaged (then it is recomputed)."""
    try:
        with xr.open_dataset(out, engine="h5netcdf") as old:
            got = old.attrs.get("config_hash")
            if got != h:
                if got is None or "run" not in old.attrs:
                    return None, "other: holds no byoldyn sweep"
                return None, f"other: holds a sweep with a different configuration (config_hash {got!r}, this one {h!r})"
            why = _check_vars(old, schema, tuple(dims), sizes)
            if why:
                return None, why
            ds = old.load()
            json.loads(ds.attrs["run"])
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        return None, f"unreadable ({one_line(e)})"
    return ds, ""


def _read_manifest(manifest: Path, progress: bool) -> dict | None:
    """The manifest of `OUT.parts/`, or None (with a message) when it is corrupt: it is then rebuilt (every chunk
    is still checked against the configuration hash and the schema on its own)."""
    try:
        old = read_json(manifest, "sweep manifest")
        if not isinstance(old, dict) or not isinstance(old.get("config", {}), dict):
            raise ValueError(f"sweep manifest {str(manifest)!r} is not a JSON object with a config")
        return old
    except ValueError as e:
        if progress:
            print(f"sweep: {e}; rebuilding it", file=sys.stderr)
        return None


# ---------------------------------------------------------------------------------------------
# the public function


def sweep(
    level: str = "modes",
    *,
    alpha_p=1.0,
    eta=0.0,
    eta_p=None,
    beta=1.0,
    sigma2=0.0,
    n1=8,
    n2=None,
    scale=0.5,
    seeds=1,
    points: dict | None = None,
    ema: bool = True,
    stop_grad: bool = True,
    predictor: str = "learned",
    t1: float = 100.0,
    dt: float | None = 0.05,
    method: str = "rk4",
    n_save: int | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 100_000,
    threshold: float = 1e-4,
    max_norm: float = 1e8,
    chunk: int | None = None,
    out=None,
    resume: bool = True,
    keep_parts: bool = False,
    progress: bool = True,
    devices=None,
    strategy: str = "auto",
    block: int | None = None,
) -> xr.Dataset:
    """Integrate every member of a hyperparameter grid and return their observables, labelled.

    Members: the Cartesian product of the swept parameters (those given as 1-D sequences) times
    `seeds`, or with `points` an explicit list. Each starts from `State.random(PRNGKey(seed), n1, n2,
    scale=scale)` with Wa(0) = 0 (tau(0) = 0, THEORY.md section 5), reduced to the `level`
    (see the module docstring), and is integrated on isotropic data X = I, X' = sigma2 I (Assumption 2).

    **Arguments:**

    - `level`: `"modes"` (Eqs. 11-13 per mode, THEORY.md section 7.1), `"symmetric"` (Eq. 7, or
      Eq. 62 with `predictor="learned"`; section 5) or `"matrix"` (Lemma 1, Eqs. 2-4; section 2).
    - `alpha_p`, `eta`, `eta_p`, `beta`, `sigma2`, `scale`: a number (fixed) or a 1-D sequence of
      distinct values (swept, one dimension each). `eta_p=None` ties eta_p to eta (Lemma 1).
    - `n1`, `n2`: widths, an integer or a sequence (each width is its own compiled program, run one
      after another); `n2=None` ties n2 to n1. At the mode level there are n2 modes.
    - `seeds`: a count k (seeds 0..k-1) or a sequence of distinct integers in [0, 2**32) (32-bit PRNG
      seeds: larger ones would repeat smaller ones); always a dimension.
    - `points`: instead of a grid, a dict name -> 1-D sequence of equal lengths (dimension `point`);
      the other parameters must then be numbers.
    - `ema`, `stop_grad`, `predictor`: the variant, as in `simulate` (`stop_grad=False` needs
      `ema=False` and is not defined at the symmetric level).
    - `t1`: final time (flow units, section 1). `method`: `"rk4"` or `"euler"` (fixed steps of about
      `dt`: t1 / (intervals * ceil(t1 / (dt * intervals))); with Euler one step is one full-batch GD
      step) or `"adaptive"` (matrix level only: Tsit5 per member via `simulate_batch`, `rtol`, `atol`,
      `max_steps`).
    - `n_save`: None records the final values only; an integer records observables at the n_save + 1
      times linspace(0, t1, n_save + 1) (a `time` dimension).
    - `threshold`: a mode counts as alive if s_j > threshold; `max_norm`: a member whose state exceeds it
      (or turns non-finite) stops and is marked `diverged`.
    - `chunk`: members per program (default: about 32 MB of state per chunk). Part of the resume key.
    - `out`: a `.nc` path: chunks go to `OUT.parts/` as they finish and the result to `out` (atomic
      writes). `resume=True` reuses finished chunks of the same configuration (a different one raises
      `ValueError`) and returns an existing complete `out` of the same configuration as is;
      `resume=False` discards them and starts afresh. `keep_parts` keeps `OUT.parts/` at the end.
    - `progress`: a progress bar over chunks (with ETA) and a summary line on stderr.
    - `devices`: the devices the member axis is sharded over (default all of `jax.devices()`).
    - `strategy`, `block`: how each device batches its members (`byoldyn.batch`): fixed steps in blocks of
      `block` members that stay in cache (`"auto"` on a CPU), all at once (`"vmap"`, `"auto"` on a GPU/TPU) or
      one by one (`"map"`); adaptive solves as `simulate_batch(strategy=...)`. Not part of the resume key:
      the results are the same (fixed steps: bit for bit, except that a lone member's products use XLA's
      unbatched matmul kernel, so `"map"` may differ in the last bits).

    Before any work, `out` must be a writable `.nc` path, and the estimated memory (the results, the
    member table and the largest chunk's states, stages, saves and observables; `memory_limit()`:
    `MEMORY_FRACTION` of the available memory, or `BYOLDYN_MEMORY_LIMIT` bytes) and disk space must fit:
    otherwise a `ValueError` names the parameter (widths, `chunk`, the swept values), the estimate and
    the limit. On resume, a chunk file that does not match the configuration hash and the expected
    variables, dims, sizes and dtypes, a damaged `out`, or a corrupt manifest is recomputed (rebuilt),
    with a line on stderr (with `progress`) and the names in `run["invalid"]`.

    **Returns:** an `xarray.Dataset` with one dimension per swept parameter (or `point`), `seed`,
    then `time` (with `n_save`) and `mode` for per-mode observables; data variables: the level's
    observables (`OBSERVABLES[level]`; failed members are NaN) and `status` (0 succeeded, 1 diverged,
    2 max_steps, 3 failed); attributes: `config` (JSON), `config_hash`, `run` (JSON: members, failed,
    chunks computed and reused, damaged files recomputed, wall time, devices).
    """
    t_start = time.perf_counter()
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_variant(ema, stop_grad, predictor)
    if level == "symmetric" and not stop_grad:
        raise ValueError("stop_grad=False is not defined at the symmetric level (the reduced flows assume stop-gradient)")
    if method == "adaptive" and level != "matrix":
        raise ValueError(f"method='adaptive' is available at the matrix level only, got level={level!r}")
    if not (np.isfinite(t1) and t1 > 0):
        raise ValueError(f"t1 must be a finite number > 0, got {t1!r}")
    if method != "adaptive" and (dt is None or not (np.isfinite(dt) and dt > 0)):
        raise ValueError(f"dt must be a finite number > 0 for method={method!r}, got {dt!r}")
    if n_save is not None and (isinstance(n_save, bool) or not isinstance(n_save, (int, np.integer)) or n_save < 1):
        raise ValueError(f"n_save must be None or a positive integer, got {n_save!r}")
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a finite number > 0, got {threshold!r}")
    if not (max_norm > 0):
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    if method == "adaptive" and not (rtol > 0 and atol > 0 and int(max_steps) >= 1):
        raise ValueError(f"rtol, atol must be > 0 and max_steps >= 1, got {rtol!r}, {atol!r}, {max_steps!r}")
    from .batch import fixed_step_block
    fixed_step_block(strategy, "cpu", 1, 1, block)  # ValueError for a bad strategy or block
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1):
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    if out is not None and Path(out).suffix != ".nc":
        raise ValueError(f"out must end in .nc, got {str(out)!r}")
    if out is not None:  # before any work: a directory, a read-only place, a chunk directory that is a file
        out = check_output_file(out, "out", ".nc")
        check_output_dir(parts_dir(out), "out: the chunk directory")
    seeds = _seeds(seeds)
    params = dict(n1=n1, n2=n2, alpha_p=alpha_p, eta=eta, eta_p=eta_p, beta=beta, sigma2=sigma2, scale=scale)
    axes = _axes(params, points)
    w1max = int(axes["vals"]["n1"].max())
    w2max = int(axes["vals"]["n2"].max()) if "n2" in axes["vals"] else w1max
    if chunk is None:
        chunk = _auto_chunk(level, w1max, w2max, method, n_save)
    n_int = 1 if n_save is None else int(n_save)
    n_per = None
    if method != "adaptive":
        with np.errstate(over="ignore"):
            steps = max(1.0, float(np.ceil(float(t1) / float(dt) / n_int)))
        if not steps <= _MAX_STEPS:
            raise ValueError(f"dt = {dt!r} is too small for t1 = {t1!r}: {steps:.3g} steps per save interval, more "
                             f"than {_MAX_STEPS}; use a larger dt or a larger n_save")
        n_per = int(steps)
    dt_eff = None if method == "adaptive" else t1 / (n_int * n_per)
    dtype = str(np.dtype(jnp.result_type(float)))
    mesh = _mesh(devices)
    ndev = mesh.devices.size
    M = _check_work(level, method, axes, seeds if isinstance(seeds, int) else len(seeds), n_save, chunk, ndev,
                    out, np.dtype(dtype).itemsize, mesh.devices.ravel().tolist())
    if isinstance(seeds, int):
        seeds = np.arange(seeds, dtype=np.int64)
    table, dims, coords, fixed, point_coords, tied = _plan(axes, seeds)

    from . import __version__
    config = {
        "level": level, "method": method, "t1": float(t1), "dt": None if dt is None else float(dt),
        "dt_eff": dt_eff, "n_int": n_int, "n_per": n_per, "n_save": None if n_save is None else int(n_save),
        "ema": bool(ema), "stop_grad": bool(stop_grad), "predictor": predictor,
        "rtol": float(rtol), "atol": float(atol), "max_steps": int(max_steps),
        "threshold": float(threshold), "max_norm": float(max_norm), "chunk": int(chunk), "dtype": dtype,
        "dims": dims, "fixed": fixed, "tied": {k: ("eta" if k == "eta_p" else "n1") for k in tied},
        "grid": {k: np.asarray(v).tolist() for k, v in coords.items()},
        "points": {k: v.tolist() for k, v in point_coords.items()} or None,
        "data": "isotropic: X = I, X' = sigma2 I (Assumption 2)",
        "init": "State.random(PRNGKey(seed), n1, n2, scale) with Wa(0) = 0",
        "version": __version__,
    }
    h = config_hash(config)
    ranges = _chunks(table, chunk)

    # ---- resume bookkeeping: process 0 alone reads and writes the files; with several processes (jax.distributed)
    # it decides which chunks are computed and the others follow that decision: one writer, one chunk sequence
    schema = {w: _schema(level, n_save, w, dtype) for w in np.unique(table["n2"]).tolist()}
    n_modes_max = int(table["n2"].max())
    invalid: list[str] = []  # chunk files (or the result) found damaged and recomputed
    parts = None if out is None else parts_dir(out)
    is_writer = jax.process_index() == 0
    results: dict[str, np.ndarray] = {}

    def store(res, a, b):  # into full (M, ...) arrays; per-mode ones padded with NaN to the widest n2
        for k, v in res.items():
            pm = per_mode(level, k)
            if k not in results:
                shape = (M,) + v.shape[1:-1] + (n_modes_max,) if pm else (M,) + v.shape[1:]
                results[k] = np.full(shape, -1 if k == "status" else np.nan, dtype=v.dtype)
            if pm:
                results[k][a:b, ..., :v.shape[-1]] = v
            else:
                results[k][a:b] = v

    def prepare():
        """The writer's bookkeeping: `(ds, None)` for a complete `out`, else `(None, todo)`, the mask of the chunks
        to compute (the others are read into `results`)."""
        if out is not None:
            if resume and out.exists():
                sizes = tuple(len(coords[d]) for d in dims)
                ds, why = _read_complete(out, h, _schema(level, n_save, n_modes_max, dtype), dims, sizes)
                if ds is not None:
                    run = json.loads(ds.attrs["run"]) | {"computed": 0, "reused": len(ranges),
                                                         "wall_s": round(time.perf_counter() - t_start, 3)}
                    ds.attrs["run"] = json.dumps(run)
                    if progress:
                        print(f"sweep: {out} is complete ({M} members); nothing to do", file=sys.stderr)
                    return ds, None
                if why.startswith("other: "):
                    msg = f"resume: {out} {why[len('other: '):]}"
                    raise Refused(f"{msg}; change out or pass resume=False",
                                  cli=f"{msg}; use another --out, or drop --resume to overwrite it")
                invalid.append(out.name)
                if progress:
                    print(f"sweep: {out} is damaged ({why}); recomputing it from {parts}", file=sys.stderr)
            manifest = parts / "manifest.json"
            if parts.exists():
                old = _read_manifest(manifest, progress) if resume and manifest.exists() else None
                if old is not None and old.get("config_hash") != h:
                    now = json.loads(json.dumps(config, default=str))
                    was = old.get("config", {})
                    diff = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
                    msg = (f"resume: {parts} holds chunks of a different sweep configuration "
                           f"(differs in {', '.join(diff) or 'version'}); use the same arguments, another ")
                    raise Refused(msg + "out, or resume=False", cli=msg + "--out, or drop --resume to start afresh")
                if not resume:
                    for f in list(parts.glob("chunk-*.nc")) + [manifest]:
                        if f.exists():
                            f.unlink()
                for f in parts.glob(".*.tmp"):  # temporaries of a killed writer: never complete files
                    f.unlink()
            parts.mkdir(parents=True, exist_ok=True)
            atomic_write(manifest, lambda tmp: Path(tmp).write_text(json.dumps(
                {"config_hash": h, "config": config, "chunks": len(ranges), "members": M}, sort_keys=True, default=str)))
        todo = np.ones(len(ranges), bool)
        for k, (a, b) in enumerate(ranges):
            res, why = (_read_chunk(parts, k, h, a, b, schema[int(table["n2"][a])])
                        if parts is not None and resume else (None, None))
            if res is not None:
                store(res, a, b)
                todo[k] = False
            elif why is not None:
                invalid.append(_chunk_name(k))
                if progress:
                    print(f"sweep: {parts / _chunk_name(k)} {why}; recomputing it", file=sys.stderr)
        return None, todo

    if jax.process_count() == 1:
        done, todo = prepare()
        if done is not None:
            return done
    else:
        done, todo = _follow_writer(prepare, is_writer, len(ranges), out, h, level, n_save, n_modes_max, dtype,
                                    dims, tuple(len(coords[d]) for d in dims))
        if done is not None:
            return done
        if not is_writer and parts is not None:  # the chunks process 0 reused (a filesystem all processes share)
            for k in np.flatnonzero(~todo).tolist():
                a, b = ranges[k]
                res, _ = _read_chunk(parts, k, h, a, b, schema[int(table["n2"][a])])
                if res is not None:
                    store(res, a, b)

    # ---- run the chunks
    from tqdm.auto import tqdm

    computed = 0
    reused = int(np.sum(~todo))
    bar = tqdm(total=len(ranges), initial=reused, desc=f"sweep {level}", unit="chunk",
               disable=not (progress and is_writer), dynamic_ncols=True)
    for k in np.flatnonzero(todo).tolist():
        a, b = ranges[k]
        rows = {c: table[c][a:b] for c in table}
        w1, w2 = int(rows["n1"][0]), int(rows["n2"][0])
        group = int(np.sum((table["n1"] == w1) & (table["n2"] == w2)))
        size = min(chunk, group)
        pad_to = -(-size // ndev) * ndev
        bar.set_postfix_str(f"n1={w1} n2={w2} members {a}-{b - 1}")
        res = _run_chunk(config, rows, w1, w2, mesh, pad_to, strategy, block)
        if parts is not None and is_writer:
            _write_chunk(parts, k, a, res, h, level, n_save is not None)
        _barrier(f"chunk {k}")  # the other processes wait until process 0 has written chunk k
        store(res, a, b)
        computed += 1
        bar.update(1)
    bar.close()

    # ---- assemble
    grid_shape = [len(coords[d]) for d in dims]
    data_vars = {}
    long = {name: text for name, _, text in OBSERVABLES[level]}
    order = [n for n, _, _ in OBSERVABLES[level] if n in results] + ["status"]
    for k in order:
        v = results[k]
        extra = _dims(level, k, n_save is not None)
        arr = v.reshape(grid_shape + list(v.shape[1:]))
        attrs = {"long_name": long.get(k, k)}
        if k == "status":
            attrs = {"long_name": "solver status per member", "flag_values": np.arange(len(STATUS_NAMES), dtype=np.int8),
                     "flag_meanings": " ".join(STATUS_NAMES)}
        data_vars[k] = xr.Variable(dims + extra, arr, attrs=attrs)
    all_coords = {d: coords[d] for d in dims}
    for k, v in point_coords.items():
        all_coords[k] = ("point", v)
    for k, v in fixed.items():
        all_coords[k] = v
    if n_save is not None:
        all_coords["time"] = np.linspace(0.0, t1, n_save + 1)
    if any(per_mode(level, k) for k in results):
        all_coords["mode"] = np.arange(n_modes_max)
    failed = int(np.sum(results["status"] != SUCCEEDED))
    wall = time.perf_counter() - t_start
    run = {"members": M, "failed": failed, "chunks": len(ranges), "computed": computed, "reused": reused,
           "invalid": invalid, "wall_s": round(wall, 3), "devices": ndev, "processes": jax.process_count(),
           "strategy": strategy, "block": block}
    ds = xr.Dataset(data_vars, coords=all_coords, attrs={
        "config": json.dumps(config, sort_keys=True, default=str), "config_hash": h, "run": json.dumps(run),
        "source": f"byoldyn.sweep, level {level}: linear BYOL dynamics of Tian, Chen & Ganguli (2021)",
    })
    if out is not None and is_writer:
        save_netcdf(ds, out)
        if not keep_parts:
            for f in list(parts.glob("chunk-*.nc")) + [parts / "manifest.json"]:
                f.unlink(missing_ok=True)
            try:
                parts.rmdir()
            except OSError:
                pass
    _barrier("result")  # the other processes return once process 0 has written the result
    if progress and is_writer:
        print(f"sweep: {M} members, {failed} failed, {len(ranges)} chunks ({computed} computed, {reused} reused"
              + (f", {len(invalid)} damaged file(s) recomputed" if invalid else "")
              + f") on {ndev} device(s), wall {wall:.1f} s" + (f"; wrote {out}" if out is not None else ""),
              file=sys.stderr)
    return ds


def summary(ds: xr.Dataset) -> dict:
    """The run statistics stored by `sweep` (members, failed, chunks computed and reused, wall time)."""
    return json.loads(ds.attrs["run"])
