"""Level 4 of the ladder: real networks (ResNet-18 BYOL / SimSiam / DirectPred) in Flax NNX,
instrumented with the theory's observables (THEORY.md sections 10-14). Needs the `nets` extra
(flax, optax, orbax-checkpoint, pillow).

```python
from byoldyn import nets
cfg = nets.Config(width=0.25, predictor="directpred")            # official CIFAR-10 settings otherwise
tr, te = nets.load("data/cifar10", "train"), nets.load("data/cifar10", "test")
r = nets.train(cfg, tr, te, "runs/dp", epochs=100)              # log.nc, checkpoints/, eval.json
```
"""

from __future__ import annotations

import importlib

# name -> submodule; imported on first use so that `byoldyn --help` works
# without flax installed
_EXPORTS = {
    "augment": ["Augment", "augment_batch", "augment_image", "eval_transform"],
    "byol": ["BYOL", "Siamese", "TrainState", "build", "byol_loss", "ema_update", "make_optimizer", "pair_loss",
             "reset_key"],
    "config": ["Config", "HEAD_NORMS"],
    "data": ["CIFAR10_MD5", "CIFAR10_URL", "DataError", "Dataset", "detect_format", "download_cifar10", "load",
             "read_cifar10", "read_image_folder", "read_stl10"],
    "evaluate": ["extract_features", "knn_accuracy", "knn_predict", "linear_probe"],
    "heads": ["Center", "IdentityPredictor", "LinearPredictor", "MLPPredictor", "Projector", "head_norm_layer",
              "make_predictor", "predictor_matrix", "set_predictor_matrix", "symmetrize_predictor"],
    "instrument": ["RunLog", "observe"],
    "resnet": ["ResNet", "ResNet18"],
    "trainer": ["Diverged", "RunResult", "train"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
