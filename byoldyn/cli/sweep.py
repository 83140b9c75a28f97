"""`byoldyn sweep`: a grid of hyperparameters x seeds at one level of the model into one netCDF (chunked,
sharded over devices, resumable). Values of a swept flag: `byoldyn.cli.ranges`."""

from __future__ import annotations

from ..errors import RunFailed, check_output_dir, check_output_file, started
from .common import (
    DEFAULTS,
    add_hyper,
    add_out,
    add_predictor_params,
    add_progress,
    add_variant,
    add_x64,
    begin,
    command,
    n_save_int,
    positive_int,
    predictor_flag_values,
    progress,
    real,
)
from .ranges import parse_int_range, parse_range, parse_seeds

__all__ = ["add_parser", "run"]

STALL_S = 300.0  # --stall-timeout's default (byoldyn.sweeps.run.STALL_S, without importing JAX here)


def add_parser(sub) -> None:
    """Add `sweep` to the `byoldyn` subcommands `sub`."""
    from ..sweeps import LEVELS, METHODS

    p = sub.add_parser(
        "sweep",
        help="sweep hyperparameters over a grid (chunked, sharded over devices, resumable) into one netCDF",
        description="Integrate every member of a grid of hyperparameters x seeds at one level of the model "
        "(decoupled modes Eqs. 11-13, symmetrized Eq. 7 or full Lemma 1), from State.random(seed, n1, n2, "
        "scale) with Wa(0) = 0 on isotropic data, and save the observables (final values, or on a time grid "
        "with --n-save) with each member's status as a labelled netCDF file. Values: a | a,b,c | a:b:n "
        "(linspace) | log:a:b:n (geomspace). Finished chunks are kept in the directory beside OUT with the suffix "
        ".parts (s.parts/ for s.nc) so that --resume continues a killed sweep.",
    )
    g = p.add_argument_group("swept parameters (a single value fixes it)")
    add_hyper(g, parse_range)
    g.add_argument("--sigma2", type=parse_range, default=DEFAULTS["sigma2"], help="augmentation variance sigma^2 >= 0")
    g.add_argument("--scale", type=parse_range, default=DEFAULTS["scale"], help="initial scale of W, Wp")
    g.add_argument("--n1", type=parse_int_range, default=8, help="input width n1, e.g. 8 or 8,16,32")
    g.add_argument("--n2", type=parse_int_range, default=None, help="output width n2 (default: equal to n1)")
    g.add_argument("--seeds", type=parse_seeds, default=1, help="number of seeds (0..k-1) or a list a,b,c (default 1)")
    g = p.add_argument_group("model")
    g.add_argument("--level", choices=LEVELS, default="modes",
                   help="decoupled modes (Eqs. 11-13), symmetric (Eq. 7 / Eq. 62) or matrix (Lemma 1) (default modes)")
    add_variant(g, no_ema="SimSiam: the target is W itself",
                no_stop_grad="gradient through the target (Theorem 2; implies --no-ema)",
                help="learned Wp, symmetrized flow, Wp = I, or an F̂-derived Wp: DirectPred, DirectCopy, DirectSet "
                "(modes and matrix levels) (default learned)")
    g = p.add_argument_group("the predictor's parameters (a single value fixes it, a range sweeps it)")
    add_predictor_params(g, "ode", parse_range)
    g = p.add_argument_group("integration")
    g.add_argument("--t1", type=real, default=DEFAULTS["t1"], help="final time in flow units")
    g.add_argument("--method", choices=METHODS, default="rk4",
                   help="fixed-step RK4, Euler (= full-batch GD), or adaptive Tsit5 (matrix level) (default rk4)")
    g.add_argument("--dt", type=real, default=0.05, help="fixed step")
    g.add_argument("--n-save", type=n_save_int, default=None, metavar="N",
                   help="N saved times, evenly spaced from t = 0 to t1 including both ends, N >= 2 (default: the "
                   "final values only)")
    g.add_argument("--rtol", type=real, default=1e-6, help="adaptive relative tolerance")
    g.add_argument("--atol", type=real, default=1e-9, help="adaptive absolute tolerance")
    g.add_argument("--threshold", type=real, default=1e-4, help="a mode is alive if s_j > threshold")
    add_x64(g)
    g = p.add_argument_group("execution and output")
    g.add_argument("--chunk", type=positive_int, default=None, help="members per chunk (default: about 32 MB of state)")
    add_out(g, "byoldyn-sweep.nc", "result file")
    g.add_argument("--resume", action="store_true",
                   help="reuse finished chunks in the .parts/ directory beside OUT (and a complete OUT) of the same "
                   "configuration")
    g.add_argument("--keep-parts", action="store_true", help="keep the .parts/ directory after the sweep completes")
    add_progress(g)
    g.add_argument("--processes", type=positive_int, default=1,
                   help="run as N local processes of one jax.distributed job (byoldyn.launch; at most what the "
                   "machine can hold: 4 per core and 512 MiB of free memory each; default 1)")
    g.add_argument("--stall-timeout", type=real, default=STALL_S, metavar="S",
                   help="fail (exit 1, resumable with --resume) when a chunk makes no progress, i.e. its process uses "
                   f"no CPU time, for S seconds (a deadlock); 0: never (default {STALL_S:g})")
    command(p, run)


def run(a) -> int:
    """Run `byoldyn sweep` with the parsed flags `a` (one summary line, from process 0 of a distributed job)."""
    begin(a)
    from ..launch import check_processes

    check_processes(a.processes, "--processes")  # before any process is started
    if not a.stall_timeout >= 0:
        raise ValueError(f"--stall-timeout must be >= 0 seconds, got {a.stall_timeout:g}")
    from ..sweeps import Refused, parts_dir, summary, sweep

    check_output_file(a.out, "--out", ".nc")  # before any work, naming the flag
    check_output_dir(parts_dir(a.out), "--out: the chunk directory")
    from ..launch import initialize_from_env, sweep_processes

    joined = initialize_from_env()  # a process of a jax.distributed job (byoldyn.launch, BYOLDYN_DISTRIBUTED=1)
    import jax

    from ..io import lock_output

    if not joined or jax.process_index() == 0:  # the writer (under byoldyn.launch, the launcher holds it)
        lock_output(a.out)  # a second sweep on the same --out is refused
    if a.processes > 1 and not joined:  # the launcher: N copies of this command, which join above
        return sweep_processes(a.processes)
    from ..sweeps.run import stall_timeout

    stall_timeout(a.stall_timeout, f"; the finished chunks are kept in {parts_dir(a.out)}: run the same command with "
                  "--resume to continue")
    ema = not (a.no_ema or a.no_stop_grad)
    given = predictor_flag_values(a, "ode")  # --eps 0.2 sets it, --eps 0.01:0.5:16 sweeps it
    started()  # the output places are checked: an OSError from here on is a failed run (exit 1)
    try:  # a library ValueError naming a parameter names its flag (`command`); sweep(n_save=) counts intervals
        ds = sweep(a.level, alpha_p=a.alpha_p, eta=a.eta, eta_p=a.eta_p, beta=a.beta, sigma2=a.sigma2, n1=a.n1,
                   n2=a.n2, scale=a.scale, seeds=a.seeds, ema=ema, stop_grad=not a.no_stop_grad,
                   predictor=a.predictor, **given, t1=a.t1, dt=a.dt, method=a.method,
                   n_save=None if a.n_save is None else a.n_save - 1, rtol=a.rtol, atol=a.atol,
                   threshold=a.threshold, chunk=a.chunk, out=a.out, resume=a.resume, keep_parts=a.keep_parts,
                   progress=progress(a))
    except Refused as e:  # the same refusal, naming the flags (--resume, --n1) instead of Python arguments
        if joined:  # every process has it (process 0's, relayed): one line, from process 0, and out (see below)
            import os
            import sys

            import jax

            if jax.process_index() == 0:
                print(f"byoldyn: error: {e.cli}", file=sys.stderr, flush=True)
            os._exit(2)
        raise ValueError(e.cli) from None
    except RunFailed as e:
        if joined:  # one line, then out: jax.distributed's shutdown would abort with its logs (another died)
            import os
            import sys

            print(f"byoldyn: failed: {e}", file=sys.stderr, flush=True)
            os._exit(1)
        raise
    finally:
        stall_timeout(None)  # the watchdog guards this command only: later library calls in the process are not watched
    import jax

    if jax.process_index() != 0:  # one summary line: process 0's (the writer)
        return 0
    info = summary(ds)
    sizes = " x ".join(f"{d} {n}" for d, n in ds.sizes.items() if d not in ("mode", "time"))
    bad = info.get("invalid") or []
    print(f"{info['members']} members ({sizes}), {info['failed']} failed; "
          f"{info['computed']} chunk(s) computed, {info['reused']} reused"
          + (f", {len(bad)} damaged file(s) recomputed ({', '.join(bad)})" if bad else "")
          + f"; wall {info['wall_s']:.1f} s; wrote {a.out}")
    return 0
