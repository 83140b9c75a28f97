"""`byoldyn reproduce`: every theory figure into figures/ and the theory-check table figures/REPORT.md."""

from __future__ import annotations

from ..errors import check_output_dir, started
from .common import add_out, add_progress, command, progress

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """Add `reproduce` to the `byoldyn` subcommands `sub`."""
    p = sub.add_parser(
        "reproduce",
        help="build every figure into figures/ and the theory-check table figures/REPORT.md",
        description="Reproduce the paper's theory figures (THEORY.md section 9) and check Theorems 1-3, the fixed "
        "points and the observations numerically. Writes one PNG per figure and REPORT.md (claim, measured, "
        "predicted, agrees, negative control). Runs in float64. Exit status 1 if any claim disagrees or any "
        "control agrees.",
    )
    add_out(p, "figures", "output directory (default figures)")
    p.add_argument("--size", choices=("full", "small"), default="full",
                   help="full (the committed figures) or small (a quick look: 193 s measured on 2 CPU cores; "
                        "rows its seeds cannot decide are shown as not decided)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="build only these figures (REPORT.md is left as it is)")
    add_progress(p)
    command(p, run)


def run(a) -> int:
    """Run `byoldyn reproduce`: 0 when every claim agrees and every control disagrees, else 1."""
    import time

    import jax

    check_output_dir(a.out, "--out")
    jax.config.update("jax_enable_x64", True)
    from ..figures import reproduce

    t = time.perf_counter()
    started()
    checks = reproduce(a.out, size=a.size, only=a.only, progress=progress(a))
    bad = checks.failed  # a claim that disagrees or a negative control that agrees
    wrote = f"{len(a.only)} figure(s)" if a.only else "all figures and REPORT.md"
    print(f"{checks.headline}; wrote {wrote} in {a.out} in {time.perf_counter() - t:.0f} s")
    for c in bad:
        what = "DISAGREES" if not c.agrees else "CONTROL AGREES"
        print(f"  {what}: {c.claim}: measured {c.measured}, theory {c.predicted}; control {c.control}")
    for c in checks.undecided:  # not a check at this size: shown, not counted
        print(f"  NOT DECIDED at size {a.size}: {c.claim}: {c.undecided} (measured {c.measured})")
    return 1 if bad else 0
