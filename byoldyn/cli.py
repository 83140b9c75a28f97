"""The `byoldyn` command: one line on stderr for every error; exit 2 for bad input (nothing computed), 1 for a
run that started and failed (it diverged; its result file is still written). See `byoldyn.errors`."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from .errors import RunFailed, UsageError, as_flags, check_output_file, check_output_dir, run_command, started

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kw):
        import re

        super().__init__(*args, **kw)
        # -1:0:2, -1,0, -0.5, -1e-3 are values, not options (argparse alone knows only plain negative numbers)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message):  # one line, exit 2 (argparse prints usage too by default)
        raise _UsageError(f"{self.prog}: error: {message}")


_UsageError = UsageError


def _int_from(lo: int, kind: str, hi: int | None = None):
    """An argparse type: an integer in [lo, hi], else "must be KIND, got ..."."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be {kind}, got {s}")
        return v

    return parse


_positive_int = _int_from(1, "a positive integer")
_nonneg_int = _int_from(0, "a non-negative integer")
# PRNG seeds: jax.random.PRNGKey keeps 32 bits in float32 mode, so 2**32 would silently equal 0
_seed = _int_from(0, "an integer in [0, 2**32 - 1]", 2**32 - 1)


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None


def _begin(a, png: bool = False) -> None:
    """What every computing command does first: `--out` ends in .nc and can be written (and the PNG beside it,
    with `png`), checked before any work; float64 on `--x64` (before arrays exist)."""
    check_output_file(a.out, "--out", suffix=".nc")
    if png:
        check_output_file(a.out.with_suffix(".png"), "the PNG beside --out")
    if a.x64:
        import jax

        jax.config.update("jax_enable_x64", True)


def _add_simulate(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="integrate the Lemma 1 matrix flow (Eqs. 2-4) and save observables",
        description="Integrate the full-matrix linear BYOL flow (Lemma 1, Eqs. 2-4 of Tian, Chen & Ganguli "
        "2021) from a random initial state with Wa(0) = 0 on isotropic data (X = I, X' = sigma2 I). "
        "Writes a netCDF file of the observables over time and a summary PNG beside it.",
    )
    g = p.add_argument_group("hyperparameters (ratios to the online learning rate)")
    g.add_argument("--alpha-p", type=_float, default=1.0, help="predictor relative learning rate alpha_p > 0 (default 1)")
    g.add_argument("--eta", type=_float, default=0.01, help="weight decay eta >= 0 of W (default 0.01)")
    g.add_argument("--eta-p", type=_float, default=None, help="separate predictor weight decay eta_p >= 0 (default: eta)")
    g.add_argument("--beta", type=_float, default=0.5, help="EMA rate beta >= 0 of the target Wa (default 0.5)")
    g = p.add_argument_group("data and model")
    g.add_argument("--sigma2", type=_float, default=0.5, help="augmentation variance sigma^2 >= 0, X' = sigma2 I (default 0.5)")
    g.add_argument("--n1", type=_positive_int, default=16, help="input dimension n1 (default 16)")
    g.add_argument("--n2", type=_positive_int, default=16, help="output dimension n2 (default 16)")
    g.add_argument("--scale", type=_float, default=0.5, help="initial scale: W, Wp entries ~ N(0, scale^2/fan_in) (default 0.5)")
    g.add_argument("--seed", type=_seed, default=0, help="PRNG seed of the initial state, 0 <= seed < 2**32 (default 0)")
    g = p.add_argument_group("variant")
    g.add_argument("--no-ema", action="store_true", help="SimSiam: the target is W itself (no EMA)")
    g.add_argument("--no-stop-grad", action="store_true", help="gradient through the target branch too (Theorem 2; implies --no-ema)")
    g.add_argument("--predictor", choices=("learned", "symmetric", "identity"), default="learned",
                   help="learned Wp (Eq. 2), symmetrized flow (Assumption 3), or Wp = I (default learned)")
    g = p.add_argument_group("integration")
    g.add_argument("--t1", type=_float, default=200.0, help="final time in flow units (default 200)")
    g.add_argument("--n-save", type=_int_from(2, "an integer >= 2 (the saves include t = 0 and t1)"), default=201,
                   help="number of evenly spaced save times from 0 to t1, >= 2 (default 201)")
    g.add_argument("--rtol", type=_float, default=1e-6, help="relative tolerance of the adaptive solver (default 1e-6)")
    g.add_argument("--atol", type=_float, default=1e-9, help="absolute tolerance of the adaptive solver (default 1e-9)")
    g.add_argument("--dt", type=_float, default=None, help="fixed-step mode: Euler = full-batch GD with step dt")
    g.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")
    g.add_argument("--out", type=Path, default=Path("byoldyn-simulate.nc"),
                   help="result file (netCDF); the PNG is written beside it (default byoldyn-simulate.nc)")
    p.set_defaults(func=_simulate)


_SIMULATE_FLAGS = {k: "--" + k.replace("_", "-") for k in
                   ("alpha_p", "eta", "eta_p", "beta", "sigma2", "n1", "n2", "scale", "t1", "rtol", "atol", "dt")}


def _last_finite(ds):
    """Index of the last save whose |W| and mode count are finite (None if there is none)."""
    import numpy as np

    ok = np.ones(ds.sizes["time"], bool)
    for v in (ds.norm_W, ds.n_modes):
        x = np.asarray(v.values, dtype=float)
        ok &= np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)
    idx = np.flatnonzero(ok)
    return int(idx[-1]) if idx.size else None


def _state_line(ds, label: str) -> str:
    """`|W| = ..., modes = ...` at the last finite save (never int() of a NaN)."""
    i = _last_finite(ds)
    if i is None:
        return "no finite save"
    return f"{label(i)}|W| = {float(ds.norm_W[i]):.4g}, modes = {int(ds.n_modes[i])}"


def _simulate(a) -> int:
    _begin(a, png=True)
    import jax
    import jax.numpy as jnp

    from . import Data, Hyper, State, simulate
    from .observables import standard
    from .report import simulation_dataset, summary_figure
    from .io import save_figure, save_netcdf

    finite = [math.isfinite(x) and x > 0 for x in (a.t1, a.dt or 1.0)]
    if a.dt is not None and all(finite):  # the save times 0, t1/(n-1), ... must be whole numbers of steps
        k = a.t1 / (a.n_save - 1) / a.dt
        if abs(k - round(k)) > 1e-9 * max(1.0, k) or round(k) < 1:
            raise ValueError(f"--dt must divide the save interval --t1/(--n-save - 1) = {a.t1 / (a.n_save - 1):g}, "
                             f"got --dt {a.dt:g}")
    with as_flags(_SIMULATE_FLAGS):
        hyper = Hyper(alpha_p=a.alpha_p, eta=a.eta, beta=a.beta, eta_p=a.eta_p)
        data = Data.isotropic(a.n1, a.sigma2)
        state0 = State.random(jax.random.PRNGKey(a.seed), a.n1, a.n2, scale=a.scale)
        ema = not (a.no_ema or a.no_stop_grad)
        flags = dict(ema=ema, stop_grad=not a.no_stop_grad, predictor=a.predictor)
        ts = jnp.linspace(0.0, a.t1, a.n_save)
        started()
        sol = simulate(state0, hyper, data, a.t1, ts=ts, rtol=a.rtol, atol=a.atol, dt=a.dt,
                       observe=standard(hyper, data, state0), progress=a.dt is None and sys.stderr.isatty(), **flags)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "func"}
    ds = simulation_dataset(sol, config)
    save_netcdf(ds, a.out)
    png = save_figure(summary_figure(ds), a.out.with_suffix(".png"), dpi=110)
    status, t_final, n = str(ds.attrs["status"]), float(ds.attrs["t_final"]), int(ds.attrs["num_steps"])
    if status == "succeeded":
        print(f"succeeded: t = {t_final:g}, {n} steps; {_state_line(ds, lambda i: '')}; wrote {a.out} and {png}")
        return 0
    last = _state_line(ds, lambda i: f"last finite save t = {float(ds.time[i]):g}: ")
    what = {"max_steps": "ran out of solver steps (max_steps)",
            "no_step_accepted": "accepted no solver step (the initial step was rejected)"}.get(status, status)
    raise RunFailed(f"simulate {what} after t = {t_final:g} ({n} steps); {last}; wrote {a.out} and {png}")


def _add_reproduce(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="build every figure into figures/ and the theory-check table figures/REPORT.md",
        description="Reproduce the paper's theory figures (THEORY.md section 9) and check Theorems 1-3, the fixed "
        "points and the observations numerically. Writes one PNG per figure and REPORT.md (claim, measured, "
        "predicted, agrees, negative control). Runs in float64. Exit status 1 if any claim disagrees or any "
        "control agrees.",
    )
    p.add_argument("--out", type=Path, default=Path("figures"), help="output directory (default figures)")
    p.add_argument("--size", choices=("full", "small"), default="full",
                   help="full (the committed figures) or small (a quick look, seconds)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="build only these figures (REPORT.md is left as it is)")
    p.set_defaults(func=_reproduce)


def _reproduce(a) -> int:
    import time

    import jax

    check_output_dir(a.out, "--out")
    jax.config.update("jax_enable_x64", True)
    from .figures import reproduce

    t = time.perf_counter()
    started()
    checks = reproduce(a.out, size=a.size, only=a.only)
    bad = checks.failed  # a claim that disagrees or a negative control that agrees
    wrote = f"{len(a.only)} figure(s)" if a.only else "all figures and REPORT.md"
    print(f"{checks.headline}; wrote {wrote} in {a.out} in {time.perf_counter() - t:.0f} s")
    for c in bad:
        what = "DISAGREES" if not c.agrees else "CONTROL AGREES"
        print(f"  {what}: {c.claim}: measured {c.measured}, theory {c.predicted}; control {c.control}")
    return 1 if bad else 0


def _host_devices() -> None:
    """One XLA CPU device per core, so that batches split over cores (must precede JAX's start-up)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={os.cpu_count() or 1}".strip()


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="byoldyn", description="Learning dynamics of linear BYOL / SimSiam (Tian, Chen & Ganguli 2021).",
                epilog="Exit status: 0 success; 2 bad input (a flag, value, input file or output place; nothing "
                "computed); 1 a run that started and failed (e.g. it diverged: its result file is still written). "
                "Every error is one line on stderr; BYOLDYN_TRACEBACK=1 shows the traceback.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_simulate(sub)
    _add_reproduce(sub)
    from .sampled_cli import add_parsers as _add_sampled

    _add_sampled(sub)
    from .sweep_cli import add_parsers as _add_sweep

    _add_sweep(sub)
    from .nets.cli import add_parsers as _add_nets

    _add_nets(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """`byoldyn ...`: exit 0 on success, 1 for a run that started and failed, 2 for bad input (one line)."""
    _host_devices()

    def go() -> int:
        args = _parser().parse_args(argv)
        return args.func(args)

    return run_command(go)


if __name__ == "__main__":
    sys.exit(main())
