"""The paper's figures, one function each, and the claims they check (THEORY.md section 9).

Every figure function takes a `size` ("full", the committed figures, or "small", for tests and
quick looks) and returns `(fig, rows)`: a matplotlib figure and a list of `Check` rows for
`figures/REPORT.md` (the claim, the number measured, the number the theory predicts, whether
they agree, and a negative control that must disagree) and `Finding` rows (measured differences
between the model and the paper, not counted as agreements). Settings the paper leaves unstated (UNCONFIRMED in THEORY.md) are chosen in the
figure function, printed on the figure and listed in docs/reproduce.md.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from ..io import atomic_write, save_figure
from .anisotropic import fig_anisotropic_modes
from .centering import fig_centering
from .common import Check, Finding
from .cosine import fig_cosine_loss
from .isoloss import fig_isoloss
from .matrix import fig7_assumption1, fig_theorem2, fig_theorem3_full
from .modes import fig3_directpred, fig3_phase_portraits, fig4_cubic, fig5_decoupled, fig10_appendix_d, fig_alpha_p
from .reduced import fig8_antisymmetric, fig9_commutator
from .reset import fig_predictor_reset
from .sampled import fig_sampled_alpha_p, fig_sampled_directpred, fig_sampled_ode, fig_sampled_table3
from .sweeps import fig_sweep

__all__ = ["Check", "Finding", "FIGURES", "Results", "headline", "reproduce"]

FIGURES = {
    "fig3_phase_portraits": fig3_phase_portraits,
    "fig3_directpred": fig3_directpred,
    "fig4_cubic": fig4_cubic,
    "fig5_decoupled": fig5_decoupled,
    "obs_alpha_p": fig_alpha_p,
    "fig7_assumption1": fig7_assumption1,
    "theorem2_collapse": fig_theorem2,
    "fig8_antisymmetric": fig8_antisymmetric,
    "fig9_commutator": fig9_commutator,
    "theorem3_alignment_full": fig_theorem3_full,
    "fig10_appendix_d": fig10_appendix_d,
    "anisotropic_modes": fig_anisotropic_modes,
    "isoloss": fig_isoloss,
    "cosine_loss": fig_cosine_loss,
    "sweep_collapse_alpha_eta": fig_sweep,
    "sampled_ode": fig_sampled_ode,
    "sampled_table3": fig_sampled_table3,
    "sampled_alpha_p": fig_sampled_alpha_p,
    "sampled_directpred": fig_sampled_directpred,
    "predictor_reset": fig_predictor_reset,
    "centering": fig_centering,
}


class Results(list):
    """The `Check` rows of a `reproduce` run (a list), with its `findings` and `failed` rows."""

    def __init__(self, checks=(), findings=()):
        super().__init__(checks)
        self.findings = list(findings)

    @property
    def failed(self) -> list[Check]:
        """Decided checks whose claim disagrees or whose control agrees."""
        return [c for c in self if c.decided and not c.passed]

    @property
    def undecided(self) -> list[Check]:
        """Checks that the size run cannot decide (`Check.undecided`): neither agreements nor failures."""
        return [c for c in self if not c.decided]

    @property
    def headline(self) -> str:
        return headline(self, self.findings)


def headline(checks, findings) -> str:
    """"N claims agree, N controls fail as they must, M findings" (with the totals where not all do), and
    "K not decided at this size" where some rows cannot be decided (`Check.undecided`), counted apart."""
    decided = [c for c in checks if c.decided]
    n = len(decided)
    agree = sum(bool(c.agrees) for c in decided)
    ctl = sum(c.control_agrees is False for c in decided)
    a = f"{agree} claims agree" if agree == n else f"{agree} of {n} claims agree"
    b = f"{ctl} controls fail as they must" if ctl == n else f"{ctl} of {n} controls fail as they must"
    u = len(checks) - n
    return f"{a}, {b}" + (f", {u} not decided at this size" if u else "") + f", {len(findings)} findings"


def reproduce(out_dir="figures", *, size: str = "full", only=None, progress: bool = True,
              report: bool | None = None) -> Results:
    """Build every figure of `FIGURES` (or those named in `only`) into `out_dir` and write REPORT.md.

    PNGs and the report are written atomically, each as soon as it is ready. By default
    (`report=None`) REPORT.md is written only when every figure was built, so that the
    committed report always covers them all; `report=True` writes it for a subset too.

    **Returns:** a `Results` list of every `Check` row, with `.findings`, `.failed` and `.headline`.
    """
    from tqdm.auto import tqdm

    if size not in ("full", "small"):
        raise ValueError(f"size must be 'full' or 'small', got {size!r}")
    names = list(FIGURES) if not only else list(only)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)}")
    out = Path(out_dir)
    checks, findings, lines, flines = [], [], [], []
    bar = tqdm(names, desc="figures", unit="fig", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        fig, rows = FIGURES[name](size)
        save_figure(fig, out / f"{name}.png", dpi=110)
        plt.close(fig)
        for r in rows:
            (findings if isinstance(r, Finding) else checks).append(r)
            (flines if isinstance(r, Finding) else lines).append(r.row(name))
    res = Results(checks, findings)
    if not (report or (report is None and not only)):
        return res
    text = "\n".join([
        "# byoldyn reproduce: theory checks",
        "",
        f"Generated by `byoldyn reproduce` (size {size}): **{res.headline}**."
        + (f" Figures: {', '.join(names)}." if only else ""),
        "Claims refer to THEORY.md sections and the paper's equations; each row links its figure.",
        "Every criterion is fixed before the run from the method (grid cell, solver tolerance, a derived",
        "bound, a confidence interval; the derivation is a comment next to it in `byoldyn/figures/`).",
        "Every claim has a negative control: the same measurement on an input where the claim must not",
        "hold. A row passes only if its claim agrees and its control disagrees; `byoldyn reproduce`",
        "exits 1 otherwise. Stochastic rows show mean ± standard error over seeds and decide on the",
        "interval mean ± 3 SE.",
        *(["A row 'not decided' cannot be decided at this size (its verdict would be seed noise): it is shown",
           "with its measurement and is neither an agreement nor a failure; the full size decides it."]
          if res.undecided else []),
        "",
        "| claim | measured | theory | agrees | negative control → outcome |",
        "|---|---|---|---|---|",
        *lines,
        "",
        "## Findings: where the model and the paper differ",
        "",
        "Measured differences, each with its number and explanation; not counted among the agreements.",
        "",
        "| what | model (measured) | paper | explanation |",
        "|---|---|---|---|",
        *flines,
        "",
    ])
    atomic_write(out / "REPORT.md", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return res
