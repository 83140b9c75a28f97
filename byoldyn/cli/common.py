"""What every `byoldyn` subcommand shares: the parser class, argument types, the argument groups of one concept
(variant and predictor, DirectPred's parameters, seed, x64, output, progress), the defaults of the flow's flags,
the checks made before any work, and the one error path (`run`, around `byoldyn.errors.run_command`).

One flag per concept across commands, with one meaning and one default: `--predictor` (names from the registry
`byoldyn.predictors.PREDICTORS`), `--no-ema`, `--no-stop-grad`, the predictors' parameters (generated from the
classes' `PARAMS`, `add_predictor_params`: `--eps`, `--rho`, `--freq`, `--form`, `--beta-F`, ...; default: not
given, `predictor_from_flags` builds the object and refuses a flag the chosen predictor lacks), `--seed`, `--x64`,
`--out`, `--progress/--no-progress` (a bar on a terminal unless told), `--n-save N` (N saved times including both ends), and the flow's `--alpha-p`, `--eta`, `--beta`, `--sigma2`, `--scale`, `--t1`
(`DEFAULTS`). Older spellings stay accepted as aliases where a user may rely on them (`--dp-form`,
`--directpred-form` for `--form`, the value `boost_scale`, ResNet `--predictor linear|none`, `--symmetric`,
`--predictor-wd`).
Abbreviations are not (`--alpha` is not `--alpha-p`). Every option's help shows its default (`HelpFormatter`).
A library `ValueError` that names a parameter names its flag instead (`command`: `alpha_p` -> `--alpha-p`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ..errors import UsageError, as_flags, check_output_file, run_command
from ..predictors import ALIASES, FORM_ALIASES, FORMS, PREDICTORS, Param, Predictor

__all__ = ["Parser", "HelpFormatter", "help_with_default", "int_from", "positive_int", "nonneg_int", "seed_int",
           "real", "canonical", "PREDICTOR_NAMES", "DEFAULTS", "add_hyper", "n_save_int", "DIRECTPRED_FORMS",
           "add_variant", "add_predictor_params", "predictor_params", "predictor_from_flags",
           "predictor_flag_values", "add_seed", "add_x64",
           "add_out", "add_progress", "progress", "command",
           "flag_names", "begin", "check_memory", "config_of", "state_line", "host_devices", "run"]


def help_with_default(action: argparse.Action) -> str:
    """The help of an option with its default: as written when it says "default" (or `default` is the
    meaningful `None` it explains), else with "(default X)" appended. Switches (`store_true`, `--help`),
    required options, positionals and hidden options are left as they are."""
    h = action.help or ""
    if (h == argparse.SUPPRESS or "default" in h or not action.option_strings or action.required
            or action.nargs == 0):
        return h
    d = action.default
    shown = "none" if d is None else f"{d:g}" if isinstance(d, float) else str(d)
    return f"{h} (default {shown.replace('%', '%%')})".strip()


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, every option's default shown (`help_with_default`)."""

    def _get_help_string(self, action):
        return help_with_default(action)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`UsageError`, exit 2), negative values (`-1:0:2`, `-1e-3`) read as values, no
    abbreviations (`--alpha` is not `--alpha-p`) and every option's default in its help (`HelpFormatter`)."""

    def __init__(self, *args, **kw):
        kw.setdefault("allow_abbrev", False)
        kw.setdefault("formatter_class", HelpFormatter)
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
# `--n-save N`: N saved times including both ends (t = 0 or step 0, and the last), in every command
n_save_int = int_from(2, "an integer >= 2 (the saved times include both ends)")
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

PREDICTOR_NAMES: tuple[str, ...] = tuple(PREDICTORS)  # byoldyn.predictors' registry
DIRECTPRED_FORMS: tuple[str, ...] = FORMS  # official code's boost_scale (THEORY.md 10.2) | Eq. 18


# ---- argument groups ---------------------------------------------------------------------------------------

#: The flow's flags, one default each wherever they appear (`simulate`, `sweep`)
DEFAULTS: dict[str, float] = {"alpha_p": 1.0, "eta": 0.01, "beta": 0.5, "sigma2": 0.5, "scale": 0.5, "t1": 200.0}


def add_hyper(g, type: Callable[[str], object]) -> None:
    """`--alpha-p`, `--eta`, `--eta-p`, `--beta`: the hyperparameters of `byoldyn.Hyper` (ratios to the online
    learning rate), each read by `type` (one value for `simulate`, a range for `sweep`), defaults `DEFAULTS`."""
    g.add_argument("--alpha-p", type=type, default=DEFAULTS["alpha_p"], help="predictor relative learning rate alpha_p > 0")
    g.add_argument("--eta", type=type, default=DEFAULTS["eta"], help="weight decay eta >= 0 of W")
    g.add_argument("--eta-p", type=type, default=None, help="predictor weight decay eta_p >= 0 (default: eta)")
    g.add_argument("--beta", type=type, default=DEFAULTS["beta"], help="EMA rate beta >= 0 of the target Wa")


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


def predictor_params(level: str) -> dict[str, Param]:
    """The parameters of the registry's predictors read at `level` ("ode": the matrix flow; "discrete": the
    sampled and ResNet levels), field -> `Param`, from the classes' `PARAMS` (the first class naming a field)."""
    out: dict[str, Param] = {}
    for cls in PREDICTORS.values():
        for k, prm in cls.PARAMS.items():
            if prm.level in ("all", level):
                out.setdefault(k, prm)
    return out


def _owners(field: str) -> list[str]:
    return [c.name for c in PREDICTORS.values() if field in c.PARAMS]


def add_predictor_params(g, level: str, ranges: Callable[[str], object] | None = None) -> None:
    """The flags of the predictors' parameters read at `level`, generated from the classes' `PARAMS` (THEORY.md
    10.1-10.2): one flag per field (`--eps`, `--rho`, `--freq`, `--form` (old spellings `--directpred-form`,
    `--dp-form`, the value `boost_scale`), `--beta-F`, ...), default None (not given: the class's default), its
    help naming the predictors that have it. `predictor_from_flags` reads them. `ranges`: the type of the real
    parameters' values where they may be swept (`byoldyn sweep`: `byoldyn.cli.ranges.parse_range`)."""
    types = {"real": ranges or real, "rate": ranges or real, "int": positive_int}
    for k, prm in predictor_params(level).items():
        kw = dict(type=canonical(FORM_ALIASES), choices=DIRECTPRED_FORMS) if prm.kind == "form" else \
            dict(type=types[prm.kind])
        g.add_argument(prm.flag_of(k), *prm.aliases, dest=k, default=None,
                       help=f"{prm.help} [{', '.join(_owners(k))}]", **kw)


def predictor_from_flags(a, level: str) -> Predictor | str:
    """The predictor object of `--predictor` with the parameter flags given in `a` (the parsed flags), so that
    `--predictor directpred --eps 0.2` runs ε = 0.2; the name itself for one outside the registry (the ResNet's
    mlp). A parameter flag the predictor does not have is refused (`ValueError` naming the flag and the
    predictors that have it); a bad value is the class's own `ValueError`."""
    name = ALIASES.get(a.predictor, a.predictor)
    cls = PREDICTORS.get(name)
    given = predictor_flag_values(a, level)
    return name if cls is None else cls(**given)


def predictor_flag_values(a, level: str) -> dict:
    """The predictor parameter flags given in `a` (field -> value; a list where `add_predictor_params` took
    ranges), each refused (`ValueError` naming the flag and the predictors that have it) unless `--predictor`
    has it."""
    name = ALIASES.get(a.predictor, a.predictor)
    params = predictor_params(level)
    given = {k: getattr(a, k) for k in params if getattr(a, k, None) is not None}
    cls = PREDICTORS.get(name)
    for k in given:
        if cls is None or k not in cls.PARAMS:
            raise ValueError(f"{params[k].flag_of(k)} applies to --predictor {' | '.join(_owners(k))}, not {name}")
    return given


def add_seed(g, what: str) -> None:
    """`--seed`: a PRNG seed in [0, 2**32)."""
    g.add_argument("--seed", type=seed_int, default=0, help=f"PRNG seed of {what}, 0 <= seed < 2**32 (default 0)")


def add_x64(g) -> None:
    g.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")


def add_out(g, default: str | None, help: str, **kw) -> None:
    g.add_argument("--out", type=Path, default=None if default is None else Path(default), help=help, **kw)


def add_progress(g) -> None:
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="draw a progress bar on stderr (default: when stderr is a terminal)")


def progress(a) -> bool:
    """The one rule of every command: a progress bar if `--progress`, none if `--no-progress`, else on a terminal."""
    given = getattr(a, "progress", None)
    return sys.stderr.isatty() if given is None else bool(given)


def flag_names(p: argparse.ArgumentParser, params: Mapping[str, str] | None = None) -> dict[str, str]:
    """Python parameter name -> flag: every option of `p` by its dest (`alpha_p` -> `--alpha-p`, its first long
    spelling), then `params` for the library's names that differ from the flags (`gamma_a` -> `--ema`)."""
    names = {}
    for action in p._actions:  # noqa: SLF001 - argparse has no public list of a parser's actions
        long = [o for o in action.option_strings if o.startswith("--")]
        if long and action.dest not in names:
            names[action.dest] = long[0]
    return {**names, **(params or {})}


def command(p: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int],
            params: Mapping[str, str] | None = None) -> None:
    """Make `run` the command of the subparser `p` (after its last option): a `ValueError` of the library that
    starts with a parameter name says the flag instead ("width must be > 0" -> "--width must be > 0";
    `flag_names(p, params)`, `byoldyn.errors.as_flags`)."""
    names = flag_names(p, params)

    def func(a):
        with as_flags(names):
            return run(a)

    p.set_defaults(func=func)


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


def check_memory(what: str, numbers: float, itemsize: int) -> None:
    """Refuse, before compiling, a run whose arrays cannot fit: `ValueError` naming `what` (the flags that set its
    size), the estimate (`numbers` floats of `itemsize` bytes) and the limit, which is the sweeps' own
    (`byoldyn.sweeps.memory_limit`: half the available host memory, `BYOLDYN_MEMORY_LIMIT` overrides) and
    half of an accelerator's memory."""
    import jax

    from ..model import memory_bytes
    from ..sweeps import MEMORY_FRACTION, memory_limit

    need = float(numbers) * itemsize
    limit, source = memory_limit()
    platform, device = jax.devices()[0].platform, memory_bytes()
    if platform != "cpu" and device and MEMORY_FRACTION * device < limit:  # an accelerator holds the arrays
        limit, source = MEMORY_FRACTION * device, f"{MEMORY_FRACTION:g} of the {platform} device's {device / 1e9:.3g} GB"
    if need > limit:
        raise ValueError(f"{what} needs about {need / 1e9:.3g} GB, above the memory limit {limit / 1e9:.3g} GB "
                         f"({source}); use smaller sizes")


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
