"""What every figure shares: the report rows `Check` and `Finding`, the statistics, the settings note.

A `Check` is a claim with a criterion fixed before the run (its derivation is a comment in the
figure's code) and a negative control: the same measurement on an input where the claim must
not hold (mechanism removed, dynamics off, a wrong theory value, another regime). A check
passes only if the claim agrees and its control disagrees. A `Finding` is a measured difference
between the model and the paper: reported with its number and explanation, never counted as an
agreement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import matplotlib
import numpy as np

matplotlib.use("Agg")  # figures are files; never open a window

__all__ = ["Check", "Finding", "Z", "mean_se", "diff_ci", "fmt_ms", "note", "seed_styles"]

# Stochastic verdicts are decided on intervals mean ± Z·SE. Z = 3 (a two-sided 99.7% normal
# interval): with the few claims of the report, a chance verdict (a null control that "agrees",
# or a flip between two disjoint seed sets) then has probability < 0.3% per interval.
Z = 3.0


@dataclass(frozen=True)
class Check:
    """One row of REPORT.md: a claim, the number measured, the number the theory predicts, and the
    negative control (`control`: what it is and what the same criterion measured on it)."""

    claim: str        # the theorem or observation, with its THEORY.md reference
    measured: str     # what the figure's runs measured
    predicted: str    # what the theory says (the criterion)
    agrees: bool
    control: str = ""                   # the input where the claim must not hold, and its measurement
    control_agrees: bool | None = None  # the same criterion on the control; must be False
    # why this size cannot decide the claim (its verdict would be seed noise); "" where it decides. A row that is
    # not decided is shown with its measurement but is neither an agreement nor a disagreement.
    undecided: str = ""

    def __post_init__(self):  # numpy booleans (np.bool_) become bool, so that `is False` means what it says
        object.__setattr__(self, "agrees", bool(self.agrees))
        if self.control_agrees is not None:
            object.__setattr__(self, "control_agrees", bool(self.control_agrees))

    @property
    def decided(self) -> bool:
        return not self.undecided

    @property
    def passed(self) -> bool:
        """The claim is decided, agrees, and its control disagrees, as it must."""
        return self.decided and bool(self.agrees) and self.control_agrees is False

    def row(self, figure: str = "") -> str:
        link = f"[{figure}]({figure}.png): " if figure else ""
        ctl = ("(no control)" if self.control_agrees is None
               else f"{self.control} → {'**AGREES** (it must not)' if self.control_agrees else 'disagrees'}")
        verdict = f"not decided: {self.undecided}" if self.undecided else "yes" if self.agrees else "**NO**"
        return _table_row(link + self.claim, self.measured, self.predicted, verdict, ctl)


@dataclass(frozen=True)
class Finding:
    """A measured difference between the model and the paper (not an agreement)."""

    title: str        # what is compared, with its THEORY.md reference
    measured: str     # the model's number
    paper: str        # the paper's number or claim
    explanation: str  # why they differ

    def row(self, figure: str = "") -> str:
        link = f"[{figure}]({figure}.png): " if figure else ""
        return _table_row(link + self.title, self.measured, self.paper, self.explanation)


def _table_row(*cells: str) -> str:
    """A Markdown table row; a `|` inside a cell (|p − p*|, rtol·|W|) is escaped so that it does not split it."""
    return "| " + " | ".join(c.replace("|", r"\|") for c in cells) + " |"


def mean_se(x, res: float = 0.0) -> tuple[float, float]:
    """Mean and standard error of the mean of a 1-D sample (ddof = 1).

    `res`: the resolution of the data (1 for counts of modes). A sample of counts can show no spread
    (all seeds keep 7 modes) although its values are only known to ±res/2; the variance then gets the
    quantization variance res²/12 added, so that no interval has zero width by rounding alone.
    """
    x = np.asarray(x, float).ravel()
    if x.size < 2:
        return float(x.mean()), float("inf")
    return float(x.mean()), float(np.sqrt(x.var(ddof=1) + res * res / 12.0) / np.sqrt(x.size))


def diff_ci(a, b, z: float = Z, res: float = 0.0) -> tuple[float, float, float]:
    """mean(a) − mean(b) and its interval ± z·SE (Welch: independent samples; `res` as `mean_se`).

    **Returns:** (difference, low, high).
    """
    ma, sa = mean_se(a, res)
    mb, sb = mean_se(b, res)
    d, se = ma - mb, float(np.hypot(sa, sb))
    return d, d - z * se, d + z * se


def fmt_ms(x, digits: int = 2, res: float = 0.0) -> str:
    """'mean ± SE' of a sample."""
    m, s = mean_se(x, res)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def note(fig, text: str) -> None:
    """Print the settings (chosen ones marked) at the bottom of a figure."""
    fig.text(0.01, 0.005, text, fontsize=7, color="0.3", ha="left", va="bottom", wrap=True)


def seed_styles(names) -> dict:
    """Line styles for runs named `METHOD-sN`: name -> dict(color, ls, label) with one colour per METHOD,
    one line style per seed, and the label `METHOD (seeds 0, 1)` on its first run only (None on the others);
    a name without a seed suffix, or a method with one run, is its own label."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(re.sub(r"-s\d+$", "", name), []).append(name)
    out = {}
    # matplotlib's 10-colour cycle while it suffices; past 10 methods, tab20's 20 (no two methods share a colour)
    colors = [f"C{n}" for n in range(10)] if len(groups) <= 10 else [matplotlib.colormaps["tab20"](n) for n in range(20)]
    for n, (group, members) in enumerate(groups.items()):
        seeds = [m.group(1) for m in (re.search(r"-s(\d+)$", name) for name in members) if m]
        label = f"{group} (seeds {', '.join(seeds)})" if len(members) > 1 and len(seeds) == len(members) else None
        for i, name in enumerate(members):
            out[name] = dict(color=colors[n % len(colors)], ls=("-", "--", ":", "-.")[i % 4],
                             label=(label if i == 0 else None) if label else name)
    return out
