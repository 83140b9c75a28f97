"""What every figure shares: the report row `Check`, the settings note, the stability colours."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

__all__ = ["Check", "note"]


@dataclass(frozen=True)
class Check:
    """One row of REPORT.md: a claim, the number measured, the number the theory predicts."""

    claim: str        # the theorem or observation, with its THEORY.md reference
    measured: str     # what the figure's runs measured
    predicted: str    # what the theory says
    agrees: bool

    def row(self, figure: str = "") -> str:
        link = f"[{figure}]({figure}.png): " if figure else ""
        return f"| {link}{self.claim} | {self.measured} | {self.predicted} | {'yes' if self.agrees else '**NO**'} |"


def note(fig, text: str) -> None:
    """Print the settings (chosen ones marked) at the bottom of a figure."""
    fig.text(0.01, 0.005, text, fontsize=7, color="0.3", ha="left", va="bottom", wrap=True)
