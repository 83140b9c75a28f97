"""`byoldyn sweep` and `byoldyn plot`: hyperparameter sweeps from the command line.

Wire into `byoldyn.cli._parser` with `add_parsers(sub)`. Values of a swept flag:

- `a` one value; `a,b,c` a list;
- `a:b:n` n evenly spaced values from a to b inclusive (`numpy.linspace`);
- `log:a:b:n` n log-spaced values from a to b inclusive (`numpy.geomspace`, a, b > 0).

At most `MAX_VALUES` values per flag, all distinct; negative values (`--eta -1:0:2`) are read as values.

Bad flags or values raise `_UsageError` / `ValueError`, which `byoldyn.cli.main` prints as one line with exit 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .cli import _begin, _float, _positive_int, _Parser, _UsageError  # noqa: F401  (_Parser: the subparser class)

__all__ = ["add_parsers", "parse_range", "parse_int_range"]


MAX_VALUES = 1_000_000  # values one flag may sweep (checked from the count, before any array is built)


def _bad(text: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"not a value, list or range: {text!r} (use a, a,b,c, a:b:n or log:a:b:n)")


def _count(part: str, text: str) -> int:
    try:
        n = int(part)
    except ValueError:
        raise _bad(text) from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"the count in {text!r} must be a positive integer")
    if n > MAX_VALUES:
        raise argparse.ArgumentTypeError(f"the count in {text!r} is above {MAX_VALUES}, the most values one flag "
                                         "may sweep")
    return n


def _values(text: str) -> np.ndarray:
    """The values of `text` as a 1-D float array (before the finiteness and duplicate checks)."""
    s = text.strip()
    log = s.startswith("log:")
    if log or ":" in s:
        parts = (s[4:] if log else s).split(":")
        if len(parts) != 3:
            raise _bad(text)
        try:
            a, b = float(parts[0]), float(parts[1])
        except ValueError:
            raise _bad(text) from None
        n = _count(parts[2], text)
        if not (np.isfinite(a) and np.isfinite(b)):
            raise argparse.ArgumentTypeError(f"values must be finite, got {text!r}")
        if log and not (a > 0 and b > 0):
            raise argparse.ArgumentTypeError(f"log range {text!r} needs both ends > 0")
        with np.errstate(all="ignore"):
            return np.geomspace(a, b, n) if log else np.linspace(a, b, n)
    items = s.split(",")
    if len(items) > MAX_VALUES:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}... lists {len(items)} values, above {MAX_VALUES}, the most "
                                         "values one flag may sweep")
    try:
        return np.array([float(x) for x in items], dtype=np.float64)
    except ValueError:
        raise _bad(text) from None


def parse_range(text: str) -> float | list[float]:
    """A flag value as a number or a list: `a`, `a,b,c`, `a:b:n` (linspace) or `log:a:b:n` (geomspace).

    At most `MAX_VALUES` values, finite and distinct; every error is an `argparse.ArgumentTypeError` naming the text.
    """
    v = _values(text)
    if not np.all(np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"values must be finite, got {text!r}")
    if len(np.unique(v)) != len(v):
        raise argparse.ArgumentTypeError(f"duplicate values in {text!r}: every swept value must be distinct")
    return [float(x) for x in v] if len(v) > 1 else float(v[0])


def _int_values(text: str, lo: int, hi: float, kind: str) -> int | list[int]:
    v = parse_range(text)
    vals = np.atleast_1d(np.asarray(v, dtype=float))
    r = np.round(vals)
    if (":" not in text and np.any(r != vals)) or np.any(r < lo) or np.any(r >= hi):
        raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}")
    out = [int(x) for x in r]
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"duplicate values in {text!r} (after rounding to integers): every swept "
                                         "value must be distinct")
    return out[0] if len(out) == 1 and not isinstance(v, list) else out


def parse_int_range(text: str) -> int | list[int]:
    """Like `parse_range`, for integer flags (widths): positive integers; a range's values are rounded and must
    stay distinct (`8,8` or `1:2:4` is refused, not deduplicated)."""
    return _int_values(text, 1, float("inf"), "positive integers")


def _seeds(text: str):
    """`--seeds 8` (seeds 0..7) or `--seeds 3,7,11` / `--seeds 0:30:4` (these seeds: distinct, in [0, 2**32))."""
    if "," in text or ":" in text:
        v = _int_values(text, 0, 2 ** 32, "integer seeds in [0, 2**32)")
        return v if isinstance(v, list) else [v]
    return _positive_int(text)


def _add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="sweep hyperparameters over a grid (chunked, sharded over devices, resumable) into one netCDF",
        description="Integrate every member of a grid of hyperparameters x seeds at one level of the model "
        "(decoupled modes Eqs. 11-13, symmetrized Eq. 7 or full Lemma 1), from State.random(seed, n1, n2, "
        "scale) with Wa(0) = 0 on isotropic data, and save the observables (final values, or on a time grid "
        "with --n-save) with each member's status as a labelled netCDF file. Values: a | a,b,c | a:b:n "
        "(linspace) | log:a:b:n (geomspace). Finished chunks are kept in OUT.parts/ so that --resume continues "
        "a killed sweep.",
    )
    g = p.add_argument_group("swept parameters (a single value fixes it)")
    g.add_argument("--alpha-p", type=parse_range, default=1.0, help="predictor relative learning rate alpha_p > 0 (default 1)")
    g.add_argument("--eta", type=parse_range, default=0.0, help="weight decay eta >= 0 (default 0)")
    g.add_argument("--eta-p", type=parse_range, default=None, help="predictor weight decay eta_p >= 0 (default: tied to eta)")
    g.add_argument("--beta", type=parse_range, default=1.0, help="EMA rate beta >= 0 (default 1)")
    g.add_argument("--sigma2", type=parse_range, default=0.5, help="augmentation variance sigma^2 >= 0 (default 0.5)")
    g.add_argument("--scale", type=parse_range, default=0.5, help="initial scale of W, Wp (default 0.5)")
    g.add_argument("--n1", type=parse_int_range, default=8, help="input width n1, e.g. 8 or 8,16,32 (default 8)")
    g.add_argument("--n2", type=parse_int_range, default=None, help="output width n2 (default: equal to n1)")
    g.add_argument("--seeds", type=_seeds, default=1, help="number of seeds (0..k-1) or a list a,b,c (default 1)")
    g = p.add_argument_group("model")
    g.add_argument("--level", choices=("modes", "symmetric", "matrix"), default="modes",
                   help="decoupled modes (Eqs. 11-13), symmetric (Eq. 7 / Eq. 62) or matrix (Lemma 1) (default modes)")
    g.add_argument("--no-ema", action="store_true", help="SimSiam: the target is W itself")
    g.add_argument("--no-stop-grad", action="store_true", help="gradient through the target (Theorem 2; implies --no-ema)")
    g.add_argument("--predictor", choices=("learned", "symmetric", "identity"), default="learned",
                   help="learned Wp, symmetrized flow, or Wp = I (default learned)")
    g = p.add_argument_group("integration")
    g.add_argument("--t1", type=_float, default=100.0, help="final time in flow units (default 100)")
    g.add_argument("--method", choices=("rk4", "euler", "adaptive"), default="rk4",
                   help="fixed-step RK4, Euler (= full-batch GD), or adaptive Tsit5 (matrix level) (default rk4)")
    g.add_argument("--dt", type=_float, default=0.05, help="fixed step (default 0.05)")
    g.add_argument("--n-save", type=_positive_int, default=None, help="save observables at n+1 times (default: final only)")
    g.add_argument("--rtol", type=_float, default=1e-6, help="adaptive relative tolerance (default 1e-6)")
    g.add_argument("--atol", type=_float, default=1e-9, help="adaptive absolute tolerance (default 1e-9)")
    g.add_argument("--threshold", type=_float, default=1e-4, help="a mode is alive if s_j > threshold (default 1e-4)")
    g.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")
    g = p.add_argument_group("execution and output")
    g.add_argument("--chunk", type=_positive_int, default=None, help="members per chunk (default: about 32 MB of state)")
    g.add_argument("--out", type=Path, default=Path("byoldyn-sweep.nc"), help="result file (default byoldyn-sweep.nc)")
    g.add_argument("--resume", action="store_true",
                   help="reuse finished chunks in OUT.parts/ (and a complete OUT) of the same configuration")
    g.add_argument("--keep-parts", action="store_true", help="keep OUT.parts/ after the sweep completes")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--processes", type=_positive_int, default=1,
                   help="run as N local processes of one jax.distributed job (byoldyn.launch; default 1)")
    p.set_defaults(func=_sweep)


def _sweep(a) -> int:
    _begin(a)
    from .errors import RunFailed, as_flags, check_output_dir, check_output_file, started
    from .sweep import PARAMS, Refused, parts_dir, summary, sweep

    check_output_file(a.out, "--out", ".nc")  # before any work, naming the flag
    check_output_dir(parts_dir(a.out), "--out: the chunk directory")
    from .launch import initialize_from_env, sweep_processes

    joined = initialize_from_env()  # a process of a jax.distributed job (byoldyn.launch, BYOLDYN_DISTRIBUTED=1)
    if a.processes > 1 and not joined:  # the launcher: N copies of this command, which join above
        return sweep_processes(a.processes)
    ema = not (a.no_ema or a.no_stop_grad)
    names = {k: "--" + k.replace("_", "-") for k in (*PARAMS, "seeds", "t1", "dt", "n_save", "threshold", "chunk", "out")}
    with as_flags(names):  # "eta must be >= 0" -> "--eta must be >= 0"
        started()  # the output places are checked: an OSError from here on is a failed run (exit 1)
        try:
            ds = sweep(a.level, alpha_p=a.alpha_p, eta=a.eta, eta_p=a.eta_p, beta=a.beta, sigma2=a.sigma2, n1=a.n1,
                       n2=a.n2, scale=a.scale, seeds=a.seeds, ema=ema, stop_grad=not a.no_stop_grad,
                       predictor=a.predictor, t1=a.t1, dt=a.dt, method=a.method, n_save=a.n_save, rtol=a.rtol,
                       atol=a.atol, threshold=a.threshold, chunk=a.chunk, out=a.out, resume=a.resume,
                       keep_parts=a.keep_parts, progress=not a.no_progress)
        except Refused as e:  # the same refusal, naming the flags (--resume, --n1) instead of Python arguments
            raise ValueError(e.cli) from None
        except RunFailed as e:
            if joined:  # one line, then out: jax.distributed's shutdown would abort with its logs (another died)
                import os
                import sys

                print(f"byoldyn: failed: {e}", file=sys.stderr, flush=True)
                os._exit(1)
            raise
    import jax

    if jax.process_index() != 0:  # one summary line: process 0's (the writer)
        return 0
    run = summary(ds)
    sizes = " x ".join(f"{d} {n}" for d, n in ds.sizes.items() if d not in ("mode", "time"))
    bad = run.get("invalid") or []
    print(f"{run['members']} members ({sizes}), {run['failed']} failed; "
          f"{run['computed']} chunk(s) computed, {run['reused']} reused"
          + (f", {len(bad)} damaged file(s) recomputed ({', '.join(bad)})" if bad else "")
          + f"; wall {run['wall_s']:.1f} s; wrote {a.out}")
    return 0


def _add_plot(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="plot a sweep: heatmap over two swept parameters (with eta_c) and lines over one",
        description="Draw a netCDF written by `byoldyn sweep`: a heatmap of the seed mean of VAR over two swept "
        "parameters (default alpha_p x eta), with the analytic collapse boundary eta_c = tau^2/(4 kappa), "
        "tau = 1 (THEORY.md 7.4) when one axis is eta, and a line plot of VAR over one parameter.",
    )
    p.add_argument("sweep", type=Path, metavar="SWEEP.nc", help="a file written by byoldyn sweep")
    p.add_argument("--var", default="collapsed", help="observable to plot (default collapsed: the collapse fraction)")
    p.add_argument("--x", default=None, help="heatmap x axis (default alpha_p or the first swept parameter)")
    p.add_argument("--y", default=None, help="heatmap y axis (default eta or the second swept parameter)")
    p.add_argument("--out", type=Path, default=None, help="PNG to write (default: SWEEP.png beside the file)")
    p.set_defaults(func=_plot)


def _plot(a) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xarray as xr

    from .figures.sweeps import default_axes, plot_lines, plot_sweep
    from .io import save_figure

    from .errors import check_output_file, one_line

    if not a.sweep.exists():
        raise ValueError(f"no such file: {str(a.sweep)!r}")
    if a.sweep.is_dir():
        raise ValueError(f"{str(a.sweep)!r} is a directory, not a sweep file")
    out = check_output_file(a.out or a.sweep.with_suffix(".png"), "--out")  # before reading and drawing
    try:
        ds = xr.open_dataset(a.sweep, engine="h5netcdf").load()
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise ValueError(f"cannot read {str(a.sweep)!r} as netCDF: {one_line(e)}") from None
    if "config" not in ds.attrs or "status" not in ds:
        raise ValueError(f"{str(a.sweep)!r} is not a byoldyn sweep file")
    x, y = default_axes(ds)
    x, y = a.x or x, a.y or y
    if y is None or x == y:
        fig, ax = plt.subplots(figsize=(6, 4.4))
        plot_lines(ds, a.var, x, ax=ax)
    else:
        fig, ax = plt.subplots(1, 2, figsize=(12, 4.6))
        plot_sweep(ds, a.var, x, y, ax=ax[0])
        plot_lines(ds, a.var, y, hue=x, ax=ax[1])
    fig.tight_layout()
    save_figure(fig, out, dpi=110)
    print(f"wrote {out}")
    return 0


def add_parsers(sub) -> None:
    """Add the `sweep` and `plot` subcommands to the `byoldyn` subparsers `sub`."""
    _add_sweep(sub)
    _add_plot(sub)


def main(argv: list[str] | None = None) -> int:
    """`python -m byoldyn.sweep_cli sweep|plot ...`: the two subcommands on their own, as `byoldyn.cli.main`
    runs them once `add_parsers` is wired into its parser (one-line errors, exit status 2)."""
    from .cli import _host_devices

    _host_devices()
    p = _Parser(prog="byoldyn", description="Hyperparameter sweeps of linear BYOL / SimSiam dynamics.")
    add_parsers(p.add_subparsers(dest="command", required=True, parser_class=_Parser))
    from .errors import run_command

    return run_command(lambda: (lambda args: args.func(args))(p.parse_args(argv)))

if __name__ == "__main__":
    import sys

    sys.exit(main())
