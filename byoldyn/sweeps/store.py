"""Storing a sweep: the schema of its variables, the chunk files `OUT.parts/chunk-NNNNN.nc` and their manifest
(the resume bookkeeping, `prepare`), the member results (`Results`), and the labelled result (`assemble`,
`write_result`), with the checks that make a damaged, edited or foreign file recomputed, never trusted.

The manifest `OUT.parts/manifest.json` holds the configuration hash and the sha256 of every chunk file's bytes,
recorded before the file is written (`write_chunk`). On resume a chunk is reused only when its bytes have the
recorded checksum, its configuration hash and its schema are right; otherwise it is recomputed, said in one line
("... does not match its sha256 in the manifest (edited or damaged); recomputing it"): a resumed sweep gives the
numbers of an uninterrupted one or recomputes, and an edited chunk costs one chunk's work, not a wrong result.
A disk that fills up while a file is written is an `OSError` ("No space left on device") saying which finished
chunks are kept for `resume`."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import one_line, read_json
from ..io import atomic_write, netcdf_bytes
from ..solution import STATUS_NAMES, SUCCEEDED
from ..sweep_levels import OBSERVABLES, per_mode
from .errors import Refused

__all__ = ["parts_dir", "chunk_name", "trailing_dims", "schema", "write_chunk", "read_chunk", "read_complete",
           "read_manifest", "checksums", "Results", "prepare", "assemble", "failures", "write_result"]

MANIFEST = "manifest.json"


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


def _sha256(data) -> str:
    return hashlib.sha256(data).hexdigest()


def _kept(path: Path) -> str:
    """What a failed write leaves for `resume`: the finished chunk files in `path`."""
    n = len(list(path.glob("chunk-*.nc")))
    return (f"{n} finished chunk file(s) are kept in {path}: free disk space and run the same sweep again with "
            "resume (byoldyn sweep --resume) to continue")


def _write_manifest(manifest: Path, content: dict) -> None:
    atomic_write(manifest, json.dumps(content, sort_keys=True, default=str))


def write_chunk(path: Path, k: int, start: int, res: dict, h: str, level: str, with_time: bool) -> None:
    """Write chunk `k` (members from `start`) to `path/chunk-NNNNN.nc`: serialized in memory, its sha256 recorded
    in the manifest first, then the file written atomically. **Raises:** `OSError` (a full disk: what is kept)."""
    data = {name: (["member"] + trailing_dims(level, name, with_time), v) for name, v in res.items()}
    ds = xr.Dataset(data, coords={"member": np.arange(start, start + len(res["status"]))},
                    attrs={"config_hash": h, "chunk": k})
    raw = netcdf_bytes(ds)
    manifest = path / MANIFEST
    try:
        content = json.loads(manifest.read_text(encoding="utf-8"))
        content.setdefault("sha256", {})[chunk_name(k)] = _sha256(raw)
        _write_manifest(manifest, content)
        atomic_write(path / chunk_name(k), raw)
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror or e}; {_kept(path)}") from None


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


def checksums(path: Path) -> dict:
    """The recorded sha256 of every chunk file in `path` (from its manifest; empty when there is none)."""
    try:
        got = json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("sha256", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return got if isinstance(got, dict) else {}


def read_chunk(path: Path, k: int, h: str, start: int, stop: int, schema: dict,
               sums: dict | None = None) -> tuple[dict | None, str | None]:
    """`(results, None)` for a chunk file whose bytes have the sha256 recorded in `sums` (default: the manifest's,
    `checksums(path)`), of this configuration, that matches `schema` exactly; else `(None, why)`; why is None when
    there is no file (nothing to warn about)."""
    f = path / chunk_name(k)
    if not f.exists():
        return None, None
    sums = checksums(path) if sums is None else sums
    try:
        raw = f.read_bytes()
    except OSError as e:
        return None, f"is unreadable ({one_line(e)})"
    want = sums.get(chunk_name(k))
    if want is None:
        return None, "has no sha256 in the manifest"
    if _sha256(raw) != want:
        return None, "does not match its sha256 in the manifest (edited or damaged)"
    try:
        with xr.open_dataset(io.BytesIO(raw), engine="h5netcdf") as ds:
            if ds.attrs.get("config_hash") != h or int(ds.attrs.get("chunk", -1)) != k:
                return None, "is from another configuration"
            if "member" not in ds.coords or not np.array_equal(ds.member.values, np.arange(start, stop)):
                return None, f"does not hold members {start}-{stop - 1}"
            why = _check_vars(ds, schema, ("member",), (stop - start,))
            if why:
                return None, why
            res = {name: ds[name].load().values for name in schema}
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
    """The manifest of `OUT.parts/`, or None (with a message) when it is corrupt: it is then rebuilt, without the
    chunks' checksums (so every chunk is recomputed)."""
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
        manifest = parts / MANIFEST
        sums = {}
        if parts.exists():
            old = read_manifest(manifest, progress) if resume and manifest.exists() else None
            if old is not None and old.get("config_hash") != h:
                now = json.loads(json.dumps(config, default=str))
                was = old.get("config", {})
                diff = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
                msg = (f"resume: {parts} holds chunks of a different sweep configuration "
                       f"(differs in {', '.join(diff) or 'version'}); use the same arguments, another ")
                raise Refused(msg + "out, or resume=False", cli=msg + "--out, or drop --resume to start afresh")
            if old is not None and isinstance(old.get("sha256"), dict):
                sums = old["sha256"]
            if not resume:
                for f in list(parts.glob("chunk-*.nc")) + [manifest]:
                    if f.exists():
                        f.unlink()
            for f in parts.glob(".*.tmp"):  # temporaries of a killed writer: never complete files
                f.unlink()
        parts.mkdir(parents=True, exist_ok=True)
        _write_manifest(manifest, {"config_hash": h, "config": config, "chunks": len(ranges), "members": plan.members,
                                   "sha256": sums})
    todo = np.ones(len(ranges), bool)
    for k, (a, b) in enumerate(ranges):
        res, why = read_chunk(parts, k, h, a, b, plan.chunk_schema(k), sums) if parts is not None and resume \
            else (None, None)
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
        "predictor": json.dumps({"name": plan.config["predictor"], **plan.config["predictor_params"]}, default=str),
        "run": json.dumps(run),
        "source": f"byoldyn.sweep, level {level}: linear BYOL dynamics of Tian, Chen & Ganguli (2021)",
    })


def failures(results: Results) -> int:
    """Members that did not succeed."""
    return int(np.sum(results.arrays["status"] != SUCCEEDED))


def write_result(ds: xr.Dataset, out: Path, keep_parts: bool) -> None:
    """Write `out` atomically, then remove the chunk files (unless `keep_parts`). **Raises:** `OSError` (a full
    disk: the chunk files are kept for resume)."""
    parts = parts_dir(out)
    try:
        atomic_write(out, netcdf_bytes(ds))
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror or e}; {_kept(parts)}") from None
    if not keep_parts:
        for f in list(parts.glob("chunk-*.nc")) + [parts / MANIFEST]:
            f.unlink(missing_ok=True)
        try:
            parts.rmdir()
        except OSError:
            pass
