"""Storing a sweep: the schema of its variables, the chunk files `OUT.parts/chunk-NNNNN.nc` and their manifest
(the resume bookkeeping, `prepare`), the member results (`Results`), and the labelled result (`assemble`,
`write_result`), with the checks that make a damaged or foreign file recomputed, never trusted."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import one_line, read_json
from ..io import atomic_write, save_netcdf
from ..solution import STATUS_NAMES, SUCCEEDED
from ..sweep_levels import OBSERVABLES, per_mode
from .errors import Refused

__all__ = ["parts_dir", "chunk_name", "trailing_dims", "schema", "write_chunk", "read_chunk", "read_complete",
           "read_manifest", "Results", "prepare", "assemble", "failures", "write_result"]


def parts_dir(out) -> Path:
    """The sidecar directory of the chunk files of `out`: `OUT.parts` (the suffix replaced)."""
    out = Path(out)
    return out.with_suffix(".parts")


def chunk_name(k: int) -> str:
    return f"chunk-{k:05d}.nc"


def trailing_dims(level: str, name: str, with_time: bool) -> list[str]:
    """The trailing dimensions of an observable (after the member or grid dimensions)."""
    if name == "status":
        return []
    return (["time"] if with_time else []) + (["mode"] if per_mode(level, name) else [])


def write_chunk(path: Path, k: int, start: int, res: dict, h: str, level: str, with_time: bool) -> None:
    data = {name: (["member"] + trailing_dims(level, name, with_time), v) for name, v in res.items()}
    ds = xr.Dataset(data, coords={"member": np.arange(start, start + len(res["status"]))},
                    attrs={"config_hash": h, "chunk": k})
    save_netcdf(ds, path / chunk_name(k))


def schema(level: str, n_save: int | None, n2: int, dtype) -> dict:
    """The variables of a chunk of width n2: name -> (trailing dims, trailing sizes, dtype)."""
    T = None if n_save is None else n_save + 1
    out = {"status": ((), (), np.dtype(np.int8))}
    for name, _, _ in OBSERVABLES[level]:
        d = trailing_dims(level, name, n_save is not None)
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


def read_chunk(path: Path, k: int, h: str, start: int, stop: int, schema: dict) -> tuple[dict | None, str | None]:
    """`(results, None)` for a chunk file of this configuration that matches `schema` exactly, else
    `(None, why)`; why is None when there is no file (nothing to warn about)."""
    f = path / chunk_name(k)
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


def read_complete(out: Path, h: str, schema: dict, dims: list, sizes: tuple) -> tuple[xr.Dataset | None, str]:
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


def read_manifest(manifest: Path, progress: bool) -> dict | None:
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


class Results:
    """The members' results as full (M, ...) arrays; per-mode ones padded with NaN to the widest n2."""

    def __init__(self, level: str, members: int, n_modes: int):
        self.level, self.members, self.n_modes = level, members, n_modes
        self.arrays: dict[str, np.ndarray] = {}

    def put(self, res: dict, a: int, b: int) -> None:
        """Store the results `res` of members [a, b)."""
        for k, v in res.items():
            pm = per_mode(self.level, k)
            if k not in self.arrays:
                shape = (self.members,) + v.shape[1:-1] + (self.n_modes,) if pm else (self.members,) + v.shape[1:]
                self.arrays[k] = np.full(shape, -1 if k == "status" else np.nan, dtype=v.dtype)
            if pm:
                self.arrays[k][a:b, ..., :v.shape[-1]] = v
            else:
                self.arrays[k][a:b] = v


def prepare(plan, results: Results, invalid: list, t_start: float):
    """The writer's bookkeeping of the files of `plan` (a `byoldyn.sweeps.plan.Plan`): `(ds, None)` for a complete
    `out`, else `(None, todo)`, the mask of the chunks to compute (the others are read into `results`). Damaged
    files are named in `invalid` and recomputed; a foreign `out` or chunk directory is `Refused`."""
    o, h, config, ranges, parts = plan.options, plan.hash, plan.config, plan.ranges, plan.parts
    out, progress, resume = o.out, o.progress, o.resume
    if out is not None:
        if resume and out.exists():
            ds, why = read_complete(out, h, plan.schema(), plan.dims, plan.sizes)
            if ds is not None:
                run = json.loads(ds.attrs["run"]) | {"computed": 0, "reused": len(ranges),
                                                     "wall_s": round(time.perf_counter() - t_start, 3)}
                ds.attrs["run"] = json.dumps(run)
                if progress:
                    print(f"sweep: {out} is complete ({plan.members} members); nothing to do", file=sys.stderr)
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
            old = read_manifest(manifest, progress) if resume and manifest.exists() else None
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
            {"config_hash": h, "config": config, "chunks": len(ranges), "members": plan.members}, sort_keys=True,
            default=str)))
    todo = np.ones(len(ranges), bool)
    for k, (a, b) in enumerate(ranges):
        res, why = read_chunk(parts, k, h, a, b, plan.chunk_schema(k)) if parts is not None and resume else (None, None)
        if res is not None:
            results.put(res, a, b)
            todo[k] = False
        elif why is not None:
            invalid.append(chunk_name(k))
            if progress:
                print(f"sweep: {parts / chunk_name(k)} {why}; recomputing it", file=sys.stderr)
    return None, todo


def assemble(plan, results: Results, run: dict) -> xr.Dataset:
    """The labelled result: one dimension per swept parameter (or `point`), `seed`, then `time` and `mode`."""
    o, arrays = plan.options, results.arrays
    level, with_time = o.level, o.n_save is not None
    grid_shape = list(plan.sizes)
    long = {name: text for name, _, text in OBSERVABLES[level]}
    order = [n for n, _, _ in OBSERVABLES[level] if n in arrays] + ["status"]
    data_vars = {}
    for k in order:
        v = arrays[k]
        arr = v.reshape(grid_shape + list(v.shape[1:]))
        attrs = {"long_name": long.get(k, k)}
        if k == "status":
            attrs = {"long_name": "solver status per member",
                     "flag_values": np.arange(len(STATUS_NAMES), dtype=np.int8), "flag_meanings": " ".join(STATUS_NAMES)}
        data_vars[k] = xr.Variable(plan.dims + trailing_dims(level, k, with_time), arr, attrs=attrs)
    coords = {d: plan.coords[d] for d in plan.dims}
    for k, v in plan.point_coords.items():
        coords[k] = ("point", v)
    for k, v in plan.fixed.items():
        coords[k] = v
    if with_time:
        coords["time"] = np.linspace(0.0, o.t1, o.n_save + 1)
    if any(per_mode(level, k) for k in arrays):
        coords["mode"] = np.arange(plan.n_modes)
    return xr.Dataset(data_vars, coords=coords, attrs={
        "config": json.dumps(plan.config, sort_keys=True, default=str), "config_hash": plan.hash,
        "run": json.dumps(run),
        "source": f"byoldyn.sweep, level {level}: linear BYOL dynamics of Tian, Chen & Ganguli (2021)",
    })


def failures(results: Results) -> int:
    """Members that did not succeed."""
    return int(np.sum(results.arrays["status"] != SUCCEEDED))


def write_result(ds: xr.Dataset, out: Path, keep_parts: bool) -> None:
    """Write `out` atomically, then remove the chunk files (unless `keep_parts`)."""
    save_netcdf(ds, out)
    if not keep_parts:
        parts = parts_dir(out)
        for f in list(parts.glob("chunk-*.nc")) + [parts / "manifest.json"]:
            f.unlink(missing_ok=True)
        try:
            parts.rmdir()
        except OSError:
            pass
