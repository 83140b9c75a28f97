"""byoldyn: a laboratory for the learning dynamics of non-contrastive self-supervised learning.

Linear BYOL / SimSiam / DirectPred after Tian, Chen & Ganguli (ICML 2021). The maths is
specified in THEORY.md; equation numbers in docstrings follow the paper (arXiv 2102.06810).
"""

from importlib import metadata as _metadata

from . import observables, phase, predictors, reset, sampled, theory
from .batch import simulate_batch
from .flows.matrix import autodiff_field, expected_loss, vector_field
from .flows.modes import (
    ModePST,
    ModeState,
    ParabolaState,
    cubic_field,
    mode_field,
    parabola_field,
    pst_field,
    solve_modes,
)
from .flows.symmetric import SymState, reduced_field, symmetric_field
from .integrate import DIVERGED, FAILED, MAX_STEPS, NO_STEP, STATUS_NAMES, SUCCEEDED, Solution, simulate
from .model import Data, Hyper, State
from .predictors import (
    PREDICTORS,
    DirectCopy,
    DirectPred,
    DirectSet,
    Identity,
    Learned,
    Predictor,
    Symmetric,
    Variant,
    as_predictor,
)
from .sweeps import sweep

try:
    __version__ = _metadata.version("byoldyn")  # one home: pyproject.toml
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Hyper", "Data", "State",
    "vector_field", "autodiff_field", "expected_loss",
    "simulate", "simulate_batch", "sweep", "Solution", "SUCCEEDED", "DIVERGED", "MAX_STEPS", "FAILED", "NO_STEP", "STATUS_NAMES",
    "ModeState", "ModePST", "ParabolaState", "mode_field", "pst_field", "cubic_field", "parabola_field",
    "solve_modes", "SymState", "symmetric_field", "reduced_field",
    "Predictor", "Learned", "Symmetric", "Identity", "DirectPred", "DirectCopy", "DirectSet", "Variant", "PREDICTORS", "as_predictor",
    "observables", "theory", "phase", "predictors", "sampled", "reset",
]
