"""`sweep`: the phases of a sweep in order: check the options, plan (`plan`), resume from the files (`store`),
run the missing chunks (`run`), assemble and write the result (`store`)."""

from __future__ import annotations

import json
import sys
import time

import jax
import numpy as np
import xarray as xr

from .plan import Plan, SweepOptions, make_plan
from .run import barrier, follow_writer, make_mesh, run_chunk
from .store import Results, assemble, failures, prepare, read_chunk, read_complete, write_chunk, write_result

__all__ = ["sweep", "summary"]


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
    variant=None,
    ema: bool | None = None,
    stop_grad: bool | None = None,
    predictor=None,
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
    **predictor_params,
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
    - `variant`: a `byoldyn.Variant`, or its shorthands `ema`, `stop_grad`, `predictor` (a name or a predictor
      object such as `bd.DirectPred(eps=0.2)`), as in `simulate` (defaults True, True, "learned"; `stop_grad=False`
      needs `ema=False` and is not defined at the symmetric level). The F̂-derived predictors (DirectPred,
      DirectCopy, DirectSet) run at the mode level (p_j = `predictor.modes(s)` slaved to the spectrum,
      `flows.modes.directpred_field`) and the matrix level (Wp = g(F̂)), with F̂ = F (`beta_F=None`); the
      symmetric level has no such flow. The predictor's fields are recorded in the configuration
      (`config["predictor"]`, `config["predictor_params"]`; part of the resume key).
    - `**predictor_params`: a parameter of the predictor by its field name (`eps=`, DirectSet's `alpha=`, ...):
      a number sets it (as `simulate`'s shorthands: with a predictor object it must agree), a 1-D sequence
      sweeps it like the parameters above (one dimension, after them; or in `points`); the predictor object
      gives the fixed values. Only the parameters the ODE levels read are swept (ε, α). Example:
      `sweep("matrix", predictor="directpred", eps=[0.01, 0.1, 0.5])`.
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

    Example (the mode level: every mode survives at η = 0, none at η = 0.3 > η_c = 1/6; Obs#5):

    >>> import byoldyn as bd
    >>> ds = bd.sweep("modes", alpha_p=[0.5, 1.0], eta=[0.0, 0.3], seeds=2, sigma2=0.5, t1=50.0, progress=False)
    >>> dict(ds.sizes)
    {'alpha_p': 2, 'eta': 2, 'seed': 2, 'mode': 8}
    >>> ds.n_modes.mean("seed").values.tolist()
    [[8.0, 0.0], [8.0, 0.0]]
    """
    options = SweepOptions(**locals()).checked()  # the keywords above, as one typed object (the variant resolved)
    return run_sweep(options)


def run_sweep(o: SweepOptions) -> xr.Dataset:
    """`sweep` of checked options."""
    t_start = time.perf_counter()
    mesh = make_mesh(o.devices)
    plan = make_plan(o, mesh.devices.ravel().tolist())
    results = Results(o.level, plan.members, plan.n_modes)
    invalid: list[str] = []  # chunk files (or the result) found damaged and recomputed
    done, todo = _resume(plan, results, invalid, t_start)
    if done is not None:
        return done
    computed = _compute(plan, todo, results, mesh)
    wall = time.perf_counter() - t_start
    run = {"members": plan.members, "failed": failures(results), "chunks": len(plan.ranges), "computed": computed,
           "reused": int(np.sum(~todo)), "invalid": invalid, "wall_s": round(wall, 3), "devices": plan.ndev,
           "processes": jax.process_count(), "strategy": o.strategy, "block": o.block}
    ds = assemble(plan, results, run)
    is_writer = jax.process_index() == 0
    if o.out is not None and is_writer:
        write_result(ds, o.out, o.keep_parts)
    barrier("result")  # the other processes return once process 0 has written the result
    if o.progress and is_writer:
        print(f"sweep: {run['members']} members, {run['failed']} failed, {run['chunks']} chunks ({computed} computed, "
              f"{run['reused']} reused" + (f", {len(invalid)} damaged file(s) recomputed" if invalid else "")
              + f") on {plan.ndev} device(s), wall {wall:.1f} s" + (f"; wrote {o.out}" if o.out is not None else ""),
              file=sys.stderr)
    return ds


def _resume(plan: Plan, results: Results, invalid: list, t_start: float):
    """The resume bookkeeping: process 0 alone reads and writes the files; with several processes
    (`jax.distributed`) it decides which chunks are computed and the others follow that decision (one writer, one
    chunk sequence). **Returns:** `(ds, None)` for a complete result, else `(None, todo)`, the chunks to compute."""
    if jax.process_count() == 1:
        return prepare(plan, results, invalid, t_start)
    is_writer = jax.process_index() == 0
    out = plan.options.out
    done, todo = follow_writer(lambda: prepare(plan, results, invalid, t_start), is_writer, len(plan.ranges), out,
                               lambda: read_complete(out, plan.hash, plan.schema(), plan.dims, plan.sizes))
    if done is None and not is_writer and plan.parts is not None:  # the chunks process 0 reused (a shared filesystem)
        for k in np.flatnonzero(~todo).tolist():
            a, b = plan.ranges[k]
            res, _ = read_chunk(plan.parts, k, plan.hash, a, b, plan.chunk_schema(k))
            if res is not None:
                results.put(res, a, b)
    return done, todo


def _compute(plan: Plan, todo: np.ndarray, results: Results, mesh) -> int:
    """Run the chunks of `todo`, each written by process 0 as it finishes. **Returns:** the chunks computed."""
    from tqdm.auto import tqdm

    o, table, is_writer = plan.options, plan.table, jax.process_index() == 0
    bar = tqdm(total=len(plan.ranges), initial=int(np.sum(~todo)), desc=f"sweep {o.level}", unit="chunk",
               disable=not (o.progress and is_writer), dynamic_ncols=True)
    computed = 0
    for k in np.flatnonzero(todo).tolist():
        a, b = plan.ranges[k]
        w1, w2 = int(table["n1"][a]), int(table["n2"][a])
        group = int(np.sum((table["n1"] == w1) & (table["n2"] == w2)))
        size = min(plan.chunk, group)
        pad_to = -(-size // plan.ndev) * plan.ndev  # one program shape per width
        bar.set_postfix_str(f"n1={w1} n2={w2} members {a}-{b - 1}")
        res = run_chunk(plan, plan.members_of(k, pad_to), mesh, o.strategy, o.block)
        if plan.parts is not None and is_writer:
            write_chunk(plan.parts, k, a, res, plan.hash, o.level, o.n_save is not None)
        barrier(f"chunk {k}")  # the other processes wait until process 0 has written chunk k
        results.put(res, a, b)
        computed += 1
        bar.update(1)
    bar.close()
    return computed


def summary(ds: xr.Dataset) -> dict:
    """The run statistics stored by `sweep` (members, failed, chunks computed and reused, wall time)."""
    return json.loads(ds.attrs["run"])
