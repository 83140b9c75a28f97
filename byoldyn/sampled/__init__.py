"""Level 3 of the ladder (DESIGN.md): the linear model trained by minibatch SGD on sampled data.

- `SGD`, `to_flow`, `from_flow`, `flow_time`: discrete hyperparameters and their dictionary to
  the flow's (t, alpha_p, eta, beta) (THEORY.md section 1);
- `Source`: inputs x ~ N(μ, Σx) (μ = 0 by default) with additive or Appendix D scrambling augmentations, and their exact moments;
- `Setup`, `train`, `sgd_step`: the jitted training loop (Euclidean, cosine or IsoLoss, one or two views,
  learned / symmetric / identity / DirectPred / DirectCopy predictors, EMA target, batch centering);
- `compare`: sampled runs next to the ODE, with their distance over time.
"""

from .compare import DISTANCES, Comparison, compare
from .data import Source
from .dictionary import SGD, flow_time, from_flow, to_flow
from .train import (
                    CENTERS,
                    EMA_FORMS,
                    LOSSES,
                    PREDICTORS,
                    VIEWS,
                    Run,
                    Setup,
                    TrainState,
                    center_batch,
                    cosine_loss,
                    euclidean_direction,
                    euclidean_loss,
                    flow_moments,
                    init_train_state,
                    isoloss,
                    predictor_of,
                    sgd_step,
                    train,
)

__all__ = [
    "SGD", "to_flow", "from_flow", "flow_time", "Source", "Setup", "TrainState", "Run", "train", "sgd_step",
    "init_train_state", "predictor_of", "euclidean_direction", "cosine_loss", "euclidean_loss", "isoloss",
    "center_batch", "flow_moments", "compare", "Comparison", "DISTANCES", "LOSSES", "VIEWS", "PREDICTORS", "EMA_FORMS", "CENTERS",
]
