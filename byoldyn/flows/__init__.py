"""Vector fields: pure functions of (state, hyper, data) -> time derivative.

- `matrix`: Lemma 1 (Eqs. 2-4) and its variants;
- `symmetric`: the reduced (Wp, F) flows, Eq. 7 (symmetrized) and Eq. 62;
- `modes`: the decoupled per-mode system, Eqs. 11-13, and its reductions on the parabola (Eqs. 14-16), the
  mean-field cosine loss per mode (docs/cosine_loss.md, Eqs. C1-C3), and
  DirectPred / DirectCopy modes with p_j slaved to the spectrum (docs/directpred_modes.md).
"""

from .matrix import autodiff_field, expected_loss, vector_field
from .modes import (
    DirectModeState,
    ModePST,
    ModeState,
    ParabolaState,
    cosine_mode_field,
    cosine_mode_loss,
    cubic_field,
    directpred_field,
    directpred_s_field,
    mode_field,
    parabola_field,
    pst_field,
    solve_directpred,
    solve_modes,
)
from .symmetric import SymState, kappa_of, reduced_field, symmetric_field, tau_rate

__all__ = [
    "vector_field", "autodiff_field", "expected_loss",
    "ModeState", "ModePST", "ParabolaState", "mode_field", "pst_field", "cubic_field", "parabola_field",
    "solve_modes", "cosine_mode_field", "cosine_mode_loss", "DirectModeState", "directpred_field", "directpred_s_field", "solve_directpred",
    "SymState", "symmetric_field", "reduced_field", "tau_rate", "kappa_of",
]
