"""Planning a sweep: the options, the axes and seeds, the member table, the chunks and the configuration (the resume
key); the bound on work (memory and disk) is `budget.check_work`. Nothing here allocates a state or touches a device
or a file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from ..errors import check_output_dir, check_output_file
from ..model import Data, Hyper
from ..predictors import Predictor, Variant, as_predictor, as_variant
from ..solution import grid_steps
from ..validate import as_array, check_finite, check_sign
from .budget import check_work, state_size
from .errors import Refused
from .store import parts_dir, schema

__all__ = ["LEVELS", "METHODS", "PARAMS", "SEED_LIMIT", "MAX_STEPS", "Refused", "SweepOptions", "Scheme", "Members",
           "Plan", "make_plan", "config_hash", "chunks", "auto_chunk", "member_table", "sweepable"]

LEVELS = ("modes", "symmetric", "matrix")
METHODS = ("rk4", "euler", "adaptive")
PARAMS = ("n1", "n2", "alpha_p", "eta", "eta_p", "beta", "sigma2", "scale")  # canonical dimension order
_INT_PARAMS = ("n1", "n2")
_HYPER = ("alpha_p", "eta", "beta", "eta_p")  # the fields of byoldyn.Hyper


def sweepable(predictor: Predictor) -> tuple[str, ...]:
    """The parameters of `predictor`'s class a sweep may sweep (after `PARAMS`, in the class's `PARAMS` order):
    the real ones read by the ODE levels (ε, DirectSet's α; not ρ or freq, read by the discrete levels only)."""
    return tuple(k for k, prm in predictor.PARAMS.items() if prm.kind in ("real", "rate") and prm.level in ("all", "ode"))


def _is_default(predictor: Predictor, k: str) -> bool:
    return getattr(predictor, k) == type(predictor)().params()[k]


def _model_check(name: str, a: np.ndarray, predictor: Predictor) -> None:
    """The values `a` of the parameter `name`, checked by the model's own constructor (`Hyper`, `Data.isotropic`,
    `State.random`'s scale check, the predictor's class): a `ValueError` naming the parameter and a bad value."""
    if name in _HYPER:
        Hyper(**{name: a})
    elif name == "sigma2":
        Data.isotropic(1, sigma2=a)
    elif name == "scale":
        check_finite(name, as_array(name, a))
        check_sign(name, as_array(name, a), strict=False)
    elif name in predictor.PARAMS:
        fixed = predictor.params()
        try:
            type(predictor)(**{**fixed, name: a})
        except ValueError:
            for x in a.tolist():  # the first bad value, by itself (the class's message for it)
                type(predictor)(**{**fixed, name: x})
            raise


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
    if distinct and swept and len(np.unique(a)) != len(a):
        raise ValueError(f"{name} values must be distinct, got {v!r}")
    return a, swept


SEED_LIMIT = 2 ** 32  # seeds are 32-bit: PRNGKey(seed) for 0 <= seed < 2**32 (larger ones would wrap)


def check_seeds(seeds) -> int | np.ndarray:
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


def check_axes(params: dict, points, predictor: Predictor | None = None) -> dict:
    """The validated values of every parameter (small arrays: no member table yet), each checked by the model's
    own constructor (`_model_check`) before any work. `params`: name -> number or sequence, the names of
    `PARAMS` then the swept parameters of `predictor` (`sweepable`), in dimension order.

    **Returns:** a dict with `vals` (name -> 1-D array), `swept` (grid dimensions, in `params` order),
    `tied` (eta_p / n2 when tied), `points` (the names given in `points`) and `n` (members per seed).
    """
    predictor = as_predictor("learned") if predictor is None else predictor
    names = tuple(params) + tuple(k for k in sweepable(predictor) if k not in params)
    tied = {k for k in ("eta_p", "n2") if params[k] is None}
    vals, swept = {}, []
    for k in params:
        if k in tied:
            continue
        a, s = _values(k, params[k])
        _model_check(k, a, predictor)
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
        if k not in names:
            raise ValueError(f"points: unknown parameter {k!r}; choose from {', '.join(names)}")
        if k not in PARAMS and not _is_default(predictor, k):
            raise ValueError(f"{k} is given twice: in points and on the predictor ({k} = {getattr(predictor, k)!r}); "
                             "give it once")
        a = np.atleast_1d(_values(k, v, distinct=False)[0])
        _model_check(k, a, predictor)
        lens.add(len(a))
        vals[k] = a
    if len(lens) != 1:
        raise ValueError(f"points: every parameter needs the same number of values, got lengths {sorted(lens)}")
    return {"vals": vals, "swept": [], "tied": tied - set(points), "points": list(points), "n": lens.pop()}


def member_table(axes: dict, seeds: np.ndarray):
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
# the chunks and the configuration

MAX_STEPS = 2 ** 31 - 1  # fixed steps per save interval: the trip count of one int32 loop


def chunks(table, chunk: int) -> list[tuple[int, int]]:
    """Member ranges [start, stop): at most `chunk` members, never spanning two widths (n1, n2)."""
    w = table["n1"] * 1_000_003 + table["n2"]
    cuts = np.r_[0, np.flatnonzero(np.diff(w)) + 1, len(w)]
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):  # a few width groups: not a hot path
        out += [(int(s), int(min(s + chunk, b))) for s in range(int(a), int(b), chunk)]
    return out


def auto_chunk(level: str, n1: int, n2: int, method: str, n_save: int | None = None) -> int:
    """A power of two of members whose state (times the saves, if any) is about 32 MB."""
    per = state_size(level, n1, n2) * 8
    target = 8 << 20 if method == "adaptive" else 32 << 20
    per *= 1 if n_save is None else n_save + 1
    return int(2 ** max(4, min(16, math.floor(math.log2(max(target // per, 1))))))


def config_hash(config: dict) -> str:
    """sha256 of the canonical JSON of a sweep configuration (the resume key)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]



# ---------------------------------------------------------------------------------------------
# the options and the plan


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """The keywords of `sweep` (documented there) as one typed object; `checked()` validates them and resolves the
    variant: afterwards `variant` is the `Variant` (its predictor's fixed parameters Python numbers) and
    `predictor_params` holds the swept predictor parameters only (name -> sequence)."""

    level: str = "modes"
    alpha_p: Any = 1.0
    eta: Any = 0.0
    eta_p: Any = None
    beta: Any = 1.0
    sigma2: Any = 0.0
    n1: Any = 8
    n2: Any = None
    scale: Any = 0.5
    seeds: Any = 1
    points: dict | None = None
    variant: Variant | None = None
    ema: bool | None = None
    stop_grad: bool | None = None
    predictor: str | Predictor | None = None
    t1: float = 100.0
    dt: float | None = 0.05
    method: str = "rk4"
    n_save: int | None = None
    rtol: float = 1e-6
    atol: float = 1e-9
    max_steps: int = 100_000
    threshold: float = 1e-4
    max_norm: float = 1e8
    chunk: int | None = None
    out: Any = None
    resume: bool = True
    keep_parts: bool = False
    progress: bool = True
    devices: Any = None
    strategy: str = "auto"
    block: int | None = None
    predictor_params: dict = dataclasses.field(default_factory=dict)

    @property
    def params(self) -> dict:
        """The grid parameters as given (numbers or sequences), in dimension order: `PARAMS`, then the swept
        predictor parameters."""
        return {k: getattr(self, k) for k in PARAMS} | dict(self.predictor_params)

    def resolved_variant(self) -> tuple[Variant, dict]:
        """`(variant, swept)`: the `Variant` of `variant` / `ema` / `stop_grad` / `predictor` (`as_variant`, as in
        `simulate`) with the fixed predictor parameters of `predictor_params` (numbers) on its predictor, and the
        swept ones (sequences), checked against the predictor's class."""
        given, pred = dict(self.predictor_params), self.predictor
        fixed = {k: v for k, v in given.items() if isinstance(v, str) or np.ndim(v) == 0}
        swept = {k: v for k, v in given.items() if k not in fixed}
        if self.variant is None and (pred is None or isinstance(pred, str)):  # a name: the numbers build the object
            pred = as_predictor("learned" if pred is None else pred, **fixed)
        variant = as_variant(self.variant, ema=self.ema, stop_grad=self.stop_grad, predictor=pred)
        p = variant.predictor
        for k, v in p.params().items():
            if np.ndim(v) != 0:
                raise ValueError(f"{k} on the predictor must be a number in a sweep, got shape {np.shape(v)}; sweep "
                                 f"it as a parameter ({k}=[...])")
        p = as_predictor(p, **fixed)  # an object: the numbers must agree with it
        for k in swept:
            if k not in p.PARAMS:
                raise ValueError(f"{k} is not a sweep option nor a parameter of the predictor {p.name} (its "
                                 f"parameters: {', '.join(p.PARAMS) or 'none'})")
            if k not in sweepable(p):
                raise ValueError(f"{k} cannot be swept: a sweep sweeps the parameters read at the ODE levels "
                                 f"({', '.join(sweepable(p)) or 'none'} for {p.name})")
            if not _is_default(p, k):
                raise ValueError(f"{k} is given twice: swept ({k}=[...]) and on the predictor ({k} = "
                                 f"{getattr(p, k)!r}); give it once")
        p = type(p)(**p.params())  # concrete 0-d arrays as Python numbers: fixed values are static in a program
        return Variant(variant.ema, variant.stop_grad, p, variant.loss), swept

    def checked(self) -> SweepOptions:
        """A `ValueError` naming the option for every bad scalar option (the grid values are checked by
        `make_plan`); before any work, `out` must be a writable `.nc` path. **Returns:** the options, `out` a Path,
        `variant` resolved (`resolved_variant`), the shorthands cleared."""
        level, method = self.level, self.method
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        variant, swept = self.resolved_variant()
        p = variant.predictor
        if variant.loss != "euclidean":
            raise ValueError(f"loss must be 'euclidean' in a sweep (a sweep integrates Eq. 1; the cosine loss runs in "
                             f"simulate / simulate_batch and flows.modes.cosine_mode_field), got {variant.loss!r}")
        if p.direct and level == "symmetric":
            raise ValueError(f"predictor={p.name!r} has no symmetric-level flow (Eqs. 7, 62 evolve a learned Wp); "
                             "sweep it at the modes or matrix level")
        if p.direct and (getattr(p, "beta_F", None) is not None or "beta_F" in swept):
            raise ValueError(f"beta_F is not swept: a sweep runs {p.name} with F̂ = F exactly; for a dynamic F̂ use "
                             "simulate or simulate_batch")
        if level == "symmetric" and not variant.stop_grad:
            raise ValueError("stop_grad=False is not defined at the symmetric level (the reduced flows assume "
                             "stop-gradient)")
        if method == "adaptive" and level != "matrix":
            raise ValueError(f"method='adaptive' is available at the matrix level only, got level={level!r}")
        t1, dt, n_save = self.t1, self.dt, self.n_save
        if not (np.isfinite(t1) and t1 > 0):
            raise ValueError(f"t1 must be a finite number > 0, got {t1!r}")
        if method != "adaptive" and (dt is None or not (np.isfinite(dt) and dt > 0)):
            raise ValueError(f"dt must be a finite number > 0 for method={method!r}, got {dt!r}")
        if n_save is not None and (isinstance(n_save, bool) or not isinstance(n_save, (int, np.integer)) or n_save < 1):
            raise ValueError(f"n_save must be None or a positive integer, got {n_save!r}")
        if not (np.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"threshold must be a finite number > 0, got {self.threshold!r}")
        if not (self.max_norm > 0):
            raise ValueError(f"max_norm must be > 0, got {self.max_norm!r}")
        if method == "adaptive" and not (self.rtol > 0 and self.atol > 0 and int(self.max_steps) >= 1):
            raise ValueError(f"rtol, atol must be > 0 and max_steps >= 1, got {self.rtol!r}, {self.atol!r}, "
                             f"{self.max_steps!r}")
        from ..batch import fixed_step_block
        fixed_step_block(self.strategy, "cpu", 1, 1, self.block)  # ValueError for a bad strategy or block
        chunk = self.chunk
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1):
            raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
        out = self.out
        if out is not None and Path(out).suffix != ".nc":
            raise ValueError(f"out must end in .nc, got {str(out)!r}")
        if out is not None:  # before any work: a directory, a read-only place, a chunk directory that is a file
            out = check_output_file(out, "out", ".nc")
            check_output_dir(parts_dir(out), "out: the chunk directory")
        return dataclasses.replace(self, out=out, variant=variant, ema=None, stop_grad=None, predictor=None,
                                   predictor_params=swept)


@dataclasses.dataclass(frozen=True)
class Scheme:
    """How every member is integrated: `method` ("rk4", "euler": `n_int` save intervals of `n_per` steps of
    `dt_eff`; "adaptive": Tsit5 with `rtol`, `atol`, `max_steps`) to `t1`."""

    method: str
    t1: float
    n_int: int
    n_per: int | None
    dt_eff: float | None
    rtol: float
    atol: float
    max_steps: int


class Members(NamedTuple):
    """The members of one chunk (`Plan.members_of`), as the model's typed objects with a leading member axis of
    length `len(seed)` (the real `size` members, then the last one repeated to fill the devices): the batched
    `hyper`, `sigma2`, and the `variant` whose predictor carries the swept parameters (one value per member; the
    fixed ones are Python numbers); one width (n1, n2)."""

    seed: np.ndarray
    scale: np.ndarray
    sigma2: np.ndarray
    hyper: Hyper
    variant: Variant
    n1: int
    n2: int
    size: int


@dataclasses.dataclass
class Plan:
    """Everything a sweep does, decided before any state exists: `make_plan`."""

    options: SweepOptions
    variant: Variant  # the variant; its predictor's fixed parameters (the swept ones are columns of `table`)
    swept_predictor: tuple  # the predictor parameters that are columns of `table`
    scheme: Scheme
    chunk: int  # members per chunk
    dtype: str  # the floating dtype of the states and results
    table: dict  # parameter (and "seed") -> (M,) array, seed fastest
    dims: list  # grid dimensions, ending in "seed"
    coords: dict  # dimension -> coordinate values
    fixed: dict  # the parameters that are not swept (scalars)
    point_coords: dict  # with `points`: parameter -> (points,) values
    config: dict  # the JSON record of the above (the resume key is its hash)
    hash: str
    ranges: list  # member ranges [start, stop) of the chunks
    n_modes: int  # the widest n2
    ndev: int  # devices the member axis is sharded over

    @property
    def members(self) -> int:
        return len(self.table["seed"])

    @property
    def threshold(self) -> float:
        return float(self.options.threshold)

    @property
    def max_norm(self) -> float:
        return float(self.options.max_norm)

    @property
    def sizes(self) -> tuple:
        return tuple(len(self.coords[d]) for d in self.dims)

    @property
    def parts(self) -> Path | None:
        return None if self.options.out is None else parts_dir(self.options.out)

    def schema(self, n2: int | None = None) -> dict:
        """The variables of a chunk of width n2 (default: the widest, as in the result)."""
        return schema(self.options.level, self.options.n_save, self.n_modes if n2 is None else n2, self.dtype)

    def chunk_schema(self, k: int) -> dict:
        return self.schema(int(self.table["n2"][self.ranges[k][0]]))

    def members_of(self, k: int, pad_to: int) -> Members:
        """The members of chunk `k` as typed batched objects, padded to `pad_to` by repeating the last one."""
        a, b = self.ranges[k]
        take = np.r_[np.arange(a, b), np.full(pad_to - (b - a), b - 1)]
        dt = np.dtype(self.dtype)
        col = lambda name: np.asarray(self.table[name])[take].astype(dt)  # noqa: E731
        v, p = self.variant, self.variant.predictor
        if self.swept_predictor:
            v = Variant(v.ema, v.stop_grad, type(p)(**(p.params() | {k: col(k) for k in self.swept_predictor})),
                        v.loss)
        return Members(self.table["seed"][take], col("scale"), col("sigma2"),
                       Hyper(col("alpha_p"), col("eta"), col("beta"), col("eta_p")), v,
                       int(self.table["n1"][a]), int(self.table["n2"][a]), b - a)


def _check_step(o: SweepOptions, n_int: int) -> None:
    """`Refused` unless dt divides the save interval t1 / n_int: a sweep takes whole steps of dt, by the rule of
    `simulate(dt=...)` (`byoldyn.solution.grid_steps`), not a step shortened to fit."""
    interval = float(o.t1) / n_int
    k, bad = grid_steps([interval], 0.0, float(o.dt), np.dtype(jnp.result_type(float)))
    if bad is None and round(float(k[0])) >= 1:
        return
    dt, hint = float(o.dt), f"{float(k[0]):.6g} steps; e.g. {{}} {interval / max(1, math.ceil(k[0])):.6g}"
    if o.n_save is None:
        raise Refused(f"dt must divide t1 = {interval:g}, got dt = {dt:g} ({hint.format('dt =')})",
                      cli=f"--dt must divide --t1 = {interval:g}, got --dt {dt:g} ({hint.format('--dt')})")
    raise Refused(f"dt must divide the save interval t1/n_save = {interval:g}, got dt = {dt:g} ({hint.format('dt =')})",
                  cli=f"--dt must divide the save interval --t1/(--n-save - 1) = {interval:g}, got --dt {dt:g} "
                      f"({hint.format('--dt')})")


def make_plan(o: SweepOptions, devices: list) -> Plan:
    """The plan of the checked options `o` over `devices`: `Refused` (a `ValueError`) when it cannot fit in memory
    or on disk (`check_work`, from the sizes alone), else the member table, the configuration and the chunks."""
    variant = o.variant
    p = variant.predictor
    seeds = check_seeds(o.seeds)
    axes = check_axes(o.params, o.points, p)
    w1max = int(axes["vals"]["n1"].max())
    w2max = int(axes["vals"]["n2"].max()) if "n2" in axes["vals"] else w1max
    chunk = auto_chunk(o.level, w1max, w2max, o.method, o.n_save) if o.chunk is None else o.chunk
    n_int = 1 if o.n_save is None else int(o.n_save)
    n_per = None
    if o.method != "adaptive":
        with np.errstate(over="ignore"):
            steps = max(1.0, float(np.ceil(float(o.t1) / float(o.dt) / n_int)))
        if not steps <= MAX_STEPS:
            raise ValueError(f"dt = {o.dt!r} is too small for t1 = {o.t1!r}: {steps:.3g} steps per save interval, "
                             f"more than {MAX_STEPS}; use a larger dt or a larger n_save")
        n_per = int(steps)
        _check_step(o, n_int)
    scheme = Scheme(o.method, float(o.t1), n_int, n_per, None if o.method == "adaptive" else o.t1 / (n_int * n_per),
                    float(o.rtol), float(o.atol), int(o.max_steps))
    dtype = str(np.dtype(jnp.result_type(float)))
    check_work(o.level, o.method, axes, seeds if isinstance(seeds, int) else len(seeds), o.n_save, chunk,
               len(devices), o.out, np.dtype(dtype).itemsize, devices)
    if isinstance(seeds, int):
        seeds = np.arange(seeds, dtype=np.int64)
    table, dims, coords, fixed, point_coords, tied = member_table(axes, seeds)
    swept_predictor = tuple(k for k in sweepable(p) if k in table)

    from .. import __version__
    config = {
        "level": o.level, "method": scheme.method, "t1": scheme.t1, "dt": None if o.dt is None else float(o.dt),
        "dt_eff": scheme.dt_eff, "n_int": scheme.n_int, "n_per": scheme.n_per,
        "n_save": None if o.n_save is None else int(o.n_save),
        "ema": variant.ema, "stop_grad": variant.stop_grad, "predictor": p.name,
        "predictor_params": {k: "swept" if k in swept_predictor else v for k, v in p.params().items()},
        "rtol": scheme.rtol, "atol": scheme.atol, "max_steps": scheme.max_steps,
        "threshold": float(o.threshold), "max_norm": float(o.max_norm), "chunk": int(chunk), "dtype": dtype,
        "dims": dims, "fixed": fixed, "tied": {k: ("eta" if k == "eta_p" else "n1") for k in tied},
        "grid": {k: np.asarray(v).tolist() for k, v in coords.items()},
        "points": {k: v.tolist() for k, v in point_coords.items()} or None,
        "data": "isotropic: X = I, X' = sigma2 I (Assumption 2)",
        "init": "State.random(PRNGKey(seed), n1, n2, scale) with Wa(0) = 0",
        "version": __version__,
    }
    return Plan(o, variant, swept_predictor, scheme, int(chunk), dtype, table, dims, coords, fixed, point_coords,
                config, config_hash(config), chunks(table, chunk), int(table["n2"].max()), len(devices))
