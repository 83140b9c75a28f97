"""What every `byoldyn` subcommand shares: the parser class, argument types, the argument groups of one concept
(variant and predictor, DirectPred's parameters, seed, x64, output, progress), the checks made before any work,
and the one error path (`run`, around `byoldyn.errors.run_command`).

One flag per concept across commands: `--predictor` (names from the registry `byoldyn.predictors.PREDICTORS`),
`--no-ema`, `--no-stop-grad`, `--eps`, `--rho`, `--freq`, `--directpred-form`, `--seed`, `--x64`, `--out`,
`--no-progress`. Older spellings stay accepted as aliases where a user may rely on them (`--dp-form`,
`--directpred-form boost_scale`, ResNet `--predictor linear|none`, `--symmetric`, `--predictor-wd`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Callable, Iterable, Mapping

from ..errors import UsageError, check_output_file, run_command
from ..predictors import FORM_ALIASES, FORMS, PREDICTORS

__all__ = ["Parser", "int_from", "positive_int", "nonneg_int", "seed_int", "real", "canonical", "PREDICTOR_NAMES", "add_hyper",
           "DIRECTPRED_FORMS", "add_variant", "add_directpred", "add_seed", "add_x64", "add_out", "add_progress",
           "progress", "begin", "config_of", "state_line", "host_devices", "run"]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`UsageError`, exit 2) and negative values (`-1:0:2`, `-1e-3`) read as values."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        # -1:0:2, -1,0, -0.5, -1e-3 are values, not options (argparse alone knows only plain negative numbers)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message):  # one line, exit 2 (argparse prints usage too by default)
        raise UsageError(f"{self.prog}: error: {message}")


# ---- argument types ----------------------------------------------------------------------------------------

def int_from(lo: int, kind: str, hi: int | None = None) -> Callable[[str], int]:
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


positive_int = int_from(1, "a positive integer")
nonneg_int = int_from(0, "a non-negative integer")
# PRNG seeds: jax.random.PRNGKey keeps 32 bits in float32 mode, so 2**32 would silently equal 0
seed_int = int_from(0, "an integer in [0, 2**32 - 1]", 2**32 - 1)


def real(s: str) -> float:
    """An argparse type: a float, else "not a number: ..."."""
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None


def canonical(aliases: Mapping[str, str]) -> Callable[[str], str]:
    """An argparse type mapping old spellings to their names (`linear` -> `learned`); with `choices=` the
    canonical names, an unknown value is argparse's own "invalid choice" line."""
    def parse(s: str) -> str:
        return aliases.get(s, s)

    parse.__name__ = "choice"  # argparse names the type in its "invalid choice" fallback
    return parse


# ---- the registries that feed the choices ------------------------------------------------------------------

PREDICTOR_NAMES: tuple[str, ...] = tuple(PREDICTORS)  # byoldyn.predictors' registry (issue 14)
DIRECTPRED_FORMS: tuple[str, ...] = FORMS  # official code's boost_scale (THEORY.md 10.2) | Eq. 18


# ---- argument groups ---------------------------------------------------------------------------------------

def add_hyper(g, type: Callable[[str], object], eta: float, beta: float) -> None:
    """`--alpha-p`, `--eta`, `--eta-p`, `--beta`: the hyperparameters of `byoldyn.Hyper` (ratios to the online
    learning rate), each read by `type` (one value for `simulate`, a range for `sweep`)."""
    g.add_argument("--alpha-p", type=type, default=1.0, help="predictor relative learning rate alpha_p > 0 (default 1)")
    g.add_argument("--eta", type=type, default=eta, help=f"weight decay eta >= 0 of W (default {eta:g})")
    g.add_argument("--eta-p", type=type, default=None, help="predictor weight decay eta_p >= 0 (default: eta)")
    g.add_argument("--beta", type=type, default=beta, help=f"EMA rate beta >= 0 of the target Wa (default {beta:g})")


def add_variant(g, *, predictors: Iterable[str] = PREDICTOR_NAMES, default: str = "learned",
                aliases: Mapping[str, str] | None = None, help: str | None = None, no_ema: str | None = None,
                no_stop_grad: str | None = None) -> None:
    """`--no-ema`, `--no-stop-grad` (each where its help is given) and `--predictor NAME` into group `g`."""
    if no_ema is not None:
        g.add_argument("--no-ema", action="store_true", help=no_ema)
    if no_stop_grad is not None:
        g.add_argument("--no-stop-grad", action="store_true", help=no_stop_grad)
    names = tuple(predictors)
    g.add_argument("--predictor", type=canonical(aliases or {}), choices=names, default=default,
                   help=help or f"predictor: {', '.join(names)} (default {default})")


def add_directpred(g, *, freq: bool = True, rho: str = "DirectPred F̂ retention rho in [0, 1] (Eq. 19; default 0.3)",
                   freq_help: str = "DirectPred/DirectCopy: set Wp from F̂ every FREQ steps (default 1)") -> None:
    """DirectPred / DirectCopy's parameters (THEORY.md 10.1-10.2): `--eps`, `--rho`, `--freq`, `--directpred-form`
    (old spellings `--dp-form` and the value `boost_scale` accepted)."""
    g.add_argument("--rho", type=real, default=0.3, help=rho)
    g.add_argument("--eps", type=real, default=0.1, help="DirectPred/DirectCopy boost eps >= 0 (default 0.1)")
    if freq:
        g.add_argument("--freq", type=positive_int, default=1, help=freq_help)
    g.add_argument("--directpred-form", "--dp-form", dest="directpred_form", type=canonical(FORM_ALIASES),
                   choices=DIRECTPRED_FORMS, default="code",
                   help="DirectPred's p_j: official code's sqrt(s_j/s_max) + eps (boost_scale), or Eq. 18's "
                   "sqrt(s_j) + eps s_max (default code)")


def add_seed(g, what: str) -> None:
    """`--seed`: a PRNG seed in [0, 2**32)."""
    g.add_argument("--seed", type=seed_int, default=0, help=f"PRNG seed of {what}, 0 <= seed < 2**32 (default 0)")


def add_x64(g) -> None:
    g.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")


def add_out(g, default: str | None, help: str, **kw) -> None:
    g.add_argument("--out", type=Path, default=None if default is None else Path(default), help=help, **kw)


def add_progress(g) -> None:
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def progress(a) -> bool:
    """A progress bar unless `--no-progress`, and only on a terminal."""
    return not getattr(a, "no_progress", False) and sys.stderr.isatty()


# ---- before and after the work -----------------------------------------------------------------------------

def begin(a, png: bool = False) -> None:
    """What every computing command does first: `--out` ends in .nc and can be written (and the PNG beside it,
    with `png`), checked before any work; float64 on `--x64` (before arrays exist)."""
    check_output_file(a.out, "--out", suffix=".nc")
    if png:
        check_output_file(a.out.with_suffix(".png"), "the PNG beside --out")
    if a.x64:
        import jax

        jax.config.update("jax_enable_x64", True)


def config_of(a) -> dict:
    """The parsed flags as a JSON-ready dict (what a result file stores as its `config`)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "func"}


def _last_finite(ds):
    """Index of the last save whose |W| and mode count are finite (None if there is none)."""
    import numpy as np

    ok = np.ones(ds.sizes["time"], bool)
    for v in (ds.norm_W, ds.n_modes):
        x = np.asarray(v.values, dtype=float)
        ok &= np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)
    idx = np.flatnonzero(ok)
    return int(idx[-1]) if idx.size else None


def state_line(ds, label: Callable[[int], str]) -> str:
    """`|W| = ..., modes = ...` at the last finite save (never int() of a NaN), after `label(index)`."""
    i = _last_finite(ds)
    if i is None:
        return "no finite save"
    return f"{label(i)}|W| = {float(ds.norm_W[i]):.4g}, modes = {int(ds.n_modes[i])}"


# ---- the one error path ------------------------------------------------------------------------------------

def host_devices() -> None:
    """One XLA CPU device per core, so that batches split over cores (must precede JAX's start-up)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={os.cpu_count() or 1}".strip()


def run(parser: Callable[[], argparse.ArgumentParser], argv: list[str] | None = None) -> int:
    """Parse `argv` with `parser()` and run the chosen command's `func`: every failure one line on stderr, exit 2
    for bad input, 1 for a run that started and failed (`byoldyn.errors.run_command`)."""
    def go() -> int:
        args = parser().parse_args(argv)
        return args.func(args)

    return run_command(go)
