"""The bound on a sweep's work: the memory and disk it will need, estimated from the sizes alone, before the member
table or any state exists (`check_work`), and the limits they are held to (`memory_limit`, the accelerators' memory,
the free disk space).

Disk: every chunk file `OUT.parts/chunk-NNNNN.nc` and the result hold the members' observables plus a fixed netCDF /
HDF5 overhead per file (headers, one B-tree and attributes per variable: about 12-16 kB, measured by `file_overhead`
on an in-memory chunk of the level's variables), and the chunk files and the result are both on disk until the end.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
from pathlib import Path

import numpy as np

from ..io import describe_size as _bytes
from ..sweep_levels import OBSERVABLES
from .errors import Refused, flag

__all__ = ["MEMORY_FRACTION", "memory_limit", "state_size", "file_overhead", "disk_need", "check_work"]

MEMORY_FRACTION = 0.5  # of the available memory (host; and of each accelerator's) that one sweep may plan to use
_STAGES = {"euler": 4, "rk4": 8, "adaptive": 12}  # live copies of the state while one step of the scheme runs
_MANIFEST_ENTRY = 96  # bytes per chunk in OUT.parts/manifest.json (its name and sha256)


def state_size(level: str, n1: int, n2: int) -> int:
    """Numbers in one member's state: (w, w_p, w_a) per mode; (Wp, F, tau); (W, Wp, Wa)."""
    return {"modes": 3 * n2, "symmetric": 2 * n2 * n2 + 1, "matrix": 2 * n2 * n1 + n2 * n2}[level]


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
    state = state_size(level, n1, n2)
    n_obs = sum(n2 if pm else 1 for _, pm, _ in OBSERVABLES[level])
    work = 0 if level == "modes" else 4 * n2 * n2  # F, its eigenvectors and products, per observed state
    if method == "adaptive":
        run = state * _STAGES[method] + n_time * 2 * n_obs + work
    else:
        saved = 3 * n_time if with_path else 3  # device path, host copy, states with the start
        run = state * (_STAGES[method] + saved) + n_time * (n_obs + work)
    start = 2 * n2 * n1 + 6 * n2 * n2
    return run * itemsize, start * itemsize, n_time * n_obs * itemsize + 1


@functools.cache
def file_overhead(level: str, with_time: bool, itemsize: int) -> int:
    """Bytes of a netCDF chunk file of `level` beyond its data, measured: a one-member chunk of the level's
    variables (width 1, two saves with `with_time`) serialized in memory, less its data bytes."""
    import xarray as xr

    from ..io import netcdf_bytes
    from .store import schema

    sc = schema(level, 1 if with_time else None, 1, np.dtype(f"f{itemsize}"))
    data = {name: (["member", *dims], np.zeros((1, *sizes), dtype)) for name, (dims, sizes, dtype) in sc.items()}
    ds = xr.Dataset(data, coords={"member": np.arange(1)}, attrs={"config_hash": "0" * 16, "chunk": 0})
    return len(netcdf_bytes(ds)) - sum(int(v.nbytes) for v in ds.variables.values())


def disk_need(level: str, with_time: bool, itemsize: int, members: int, result: int, files: int,
              config_bytes: int = 0) -> int:
    """Bytes on disk at the end of a sweep: the data of the chunk files and of the result (both present until the
    result is written: `2 * members * result`), the overhead of each of the `files` files (`file_overhead`; the
    result also stores its configuration, `config_bytes`) and the manifest's entries."""
    return (2 * members * result + files * file_overhead(level, with_time, itemsize) + config_bytes
            + files * _MANIFEST_ENTRY)


def check_work(level, method, axes, n_seeds, n_save, chunk, ndev, out, itemsize, devices):
    """Refuse (one `Refused` line naming the parameter, the estimate and the limit) a sweep that cannot fit
    in memory (results, member table and the largest chunk) or whose result cannot fit on disk; checked
    from the sizes alone, before the member table or any state exists. **Returns:** the number of members."""
    vals, swept = axes["vals"], axes["swept"]
    M = axes["n"] * n_seeds
    n1 = int(vals["n1"].max())
    n2 = n1 if "n2" not in vals else int(vals["n2"].max())
    with_path = n_save is not None
    n_time = 1 if n_save is None else n_save + 1
    run, start, result = _footprint(level, method, n1, n2, n_time, with_path, itemsize)
    B = -(-min(chunk, M) // ndev) * ndev  # the largest chunk program, padded to the devices
    per_member = max(run, start)
    columns = len(set(vals) | set(axes["tied"])) + 3  # every parameter, the seed and the grid indices
    table = 8 * (columns + len(swept))  # the member table and its grid indices
    results = M * (2 * result + table)  # the results, and the copy written or returned
    limit, source = memory_limit()
    dev = _device_limit(devices)
    lim = f"above the memory limit {_bytes(limit)} ({source})"
    dlim = f"above the accelerator limit {_bytes(dev)} ({MEMORY_FRACTION:g} of the smallest device's memory)"

    def refuse(msg):  # msg(f): the text with parameter names f(name): Python names here, flags for the CLI
        raise Refused(msg(lambda k: k), cli=msg(flag))

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
        n_files = _max_chunks(axes, M, chunk) + 1  # the chunk files and the result
        grid = sum(len(v) for v in vals.values()) * 24 + 1024  # the result's configuration and coordinates
        need = disk_need(level, with_path, itemsize, M, result, n_files, grid)
        if free is not None and need > free:
            refuse(lambda f: f"{f('out')}: the result and its {n_files - 1} chunk file(s) need about {_bytes(need)} "
                   f"on disk, only {_bytes(free)} free in {str(p)!r}")
    return M


def _max_chunks(axes: dict, M: int, chunk: int) -> int:
    """An upper bound on the number of chunks (`plan.chunks`: at most `chunk` members, never two widths in one)."""
    vals = axes["vals"]
    n1 = np.atleast_1d(vals["n1"])
    n2 = np.atleast_1d(vals.get("n2", n1))
    groups = len(set(zip(np.broadcast_to(n1, (max(len(n1), len(n2)),)).tolist(),
                         np.broadcast_to(n2, (max(len(n1), len(n2)),)).tolist()))) if axes["points"] \
        else len(n1) * (len(n2) if "n2" in vals else 1)
    return min(M, math.ceil(M / chunk) + groups - 1)
