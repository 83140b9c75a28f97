"""The training loop: data order, instrumentation, checkpoints, resume, NaN stop, final evaluation.

`train(config, train_data, test_data, out, epochs=...)` writes into `out/`:

* `checkpoints/<step>/`: orbax checkpoints (state + config + position), the newest two kept;
* `log.nc`: the instrumentation (`byoldyn.nets.instrument.RunLog`), rewritten atomically at each record;
* `eval.json`: kNN and linear-probe accuracies of the final network (written atomically).

Everything random is a function of `config.seed` and the step number: epoch e visits the training set
in the order `np.random.default_rng([seed, e]).permutation(N)` (the last partial batch is dropped, so
every step has one compiled shape), and step t augments with `fold_in(key, t)`. A run resumed from a
checkpoint therefore continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from ..io import atomic_write
from .byol import BYOL, TrainState, build
from .checkpoint import Checkpoints
from .config import Config
from .data import Dataset
from .evaluate import extract_features, knn_accuracy, linear_probe
from .instrument import RunLog, observe

__all__ = ["train", "Diverged", "RunResult", "steps_per_epoch", "batch_indices", "step_key"]


class Diverged(RuntimeError):
    """The loss became NaN or infinite; `step` is the failing step, `checkpoint` the last saved step."""

    def __init__(self, step: int, loss: float, checkpoint: int | None, directory: Path):
        self.step, self.loss, self.checkpoint = step, loss, checkpoint
        where = f"the last checkpoint is step {checkpoint} in {directory}" if checkpoint is not None else \
            "no checkpoint was saved"
        super().__init__(f"loss became {loss} at step {step}; training stopped ({where}). "
                         f"Try a smaller --lr or a larger --eps")


@dataclass
class RunResult:
    """What `train` returns: the final state, the steps run in this call, output paths and evaluation."""

    state: TrainState
    model: BYOL
    steps: int
    resumed_from: int | None
    log_path: Path
    eval: dict = field(default_factory=dict)
    seconds: float = 0.0


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per epoch (`drop_last=True`)."""
    return n // batch_size


def batch_indices(seed: int, n: int, batch_size: int, step: int) -> np.ndarray:
    """Indices of the training images of global step `step` (see the module docstring)."""
    spe = steps_per_epoch(n, batch_size)
    epoch, i = divmod(step, spe)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return perm[i * batch_size:(i + 1) * batch_size]


def _keys(seed: int):
    k_init, k_data = jax.random.split(jax.random.key(seed, impl="rbg"))
    return k_init, k_data


def step_key(seed: int, step: int):
    """The augmentation key of global step `step`."""
    return jax.random.fold_in(_keys(seed)[1], step)


def _evaluate(model: BYOL, state: TrainState, train_data: Dataset, test_data: Dataset, kinds) -> dict:
    lab = train_data.labels >= 0
    tr = extract_features(model, state, train_data.images[lab])
    te = extract_features(model, state, test_data.images)
    ytr, yte = train_data.labels[lab], test_data.labels
    C = len(train_data.classes)
    out = {"n_train": int(lab.sum()), "n_test": int(len(yte))}
    if "knn" in kinds:
        out["knn_acc"] = knn_accuracy(tr, ytr, te, yte, k=200, temperature=0.1, n_classes=C)
    if "linear" in kinds:
        out["linear_acc"] = linear_probe(tr, ytr, te, yte, n_classes=C, seed=0)["test_acc"]
    return out


def train(config: Config, train_data: Dataset, test_data: Dataset | None, out, *, epochs: int,
          log_every: int = 50, ckpt_every: int | None = None, resume: bool = True, evaluate=("knn", "linear"),
          progress: bool = True, max_steps: int | None = None) -> RunResult:
    """Train for `epochs` epochs (or until global step `max_steps`), resuming from `out/checkpoints`.

    **Arguments:** `log_every` (steps between instrumentation records), `ckpt_every` (steps between
    checkpoints; default one epoch; one is always written at the end), `resume` (continue from the
    newest checkpoint if there is one; its config must equal `config`), `evaluate` (any of "knn",
    "linear"; needs `test_data`), `progress` (tqdm bar).

    **Raises:** `Diverged` when the loss becomes NaN/inf (nothing after the last checkpoint is saved,
    the log is written up to the last finite record); `ValueError` for a config mismatch on resume or a
    training set smaller than one batch.
    """
    t0 = time.perf_counter()
    out = Path(out)
    n, B = len(train_data), config.batch_size
    spe = steps_per_epoch(n, B)
    if spe < 1:
        raise ValueError(f"batch_size {B} is larger than the training set ({n} images)")
    if train_data.images.shape[1] < 8:
        raise ValueError(f"images must be at least 8 pixels high, got {train_data.images.shape[1:]}")
    total = epochs * spe if max_steps is None else int(max_steps)
    log_every = max(1, int(log_every))
    ckpt_every = spe if ckpt_every is None else max(1, int(ckpt_every))
    model = build(config)
    k_init, k_data = _keys(config.seed)
    ckpt = Checkpoints(out / "checkpoints")
    attrs = {"config": json.dumps(config.to_dict()), "steps_per_epoch": spe, "n_train": n}
    start, resumed = 0, None
    latest = ckpt.latest() if resume else None
    if latest is not None:
        meta = ckpt.read_meta(latest)
        saved = Config.from_dict(meta["config"])
        if saved != config:
            diff = [k for k in config.to_dict() if config.to_dict()[k] != saved.to_dict()[k]]
            raise ValueError(f"checkpoint in {ckpt.directory} was made with a different config "
                             f"({', '.join(diff)}); use another --out or --no-resume")
        state, _ = ckpt.restore(latest, jax.eval_shape(model.init, k_init))
        start = resumed = int(state.step)
        log = RunLog.load(out / "log.nc", upto=start, attrs=attrs)
    else:
        state = model.init(k_init)
        log = RunLog(out / "log.nc", attrs)
    bar = None
    if progress and total > start:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=start, unit="step", desc="train", dynamic_ncols=True)
    acc = {"loss": 0.0, "z_std": 0.0, "h_std": 0.0}
    n_acc = 0
    last_ckpt = latest
    try:
        for step in range(start, total):
            idx = batch_indices(config.seed, n, B, step)
            state, m = model.step(state, train_data.images[idx], jax.random.fold_in(k_data, step))
            loss = float(m["loss"])
            if not math.isfinite(loss):
                if log.records:
                    log.save()
                raise Diverged(step, loss, last_ckpt, ckpt.directory)
            for k in acc:
                acc[k] += float(m[k])
            n_acc += 1
            done = step + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", epoch=done // spe)
            if done % log_every == 0 or done == total:
                rec = observe(state, config.predictor)
                rec.update({k: v / n_acc for k, v in acc.items()}, lr=config.lr)
                log.append(done, done / spe, rec)
                log.save()
                acc = dict.fromkeys(acc, 0.0)
                n_acc = 0
            if done % ckpt_every == 0 or done == total:
                ckpt.save(done, state, {"config": config.to_dict(), "step": done, "epoch": done / spe})
                last_ckpt = done
    finally:
        if bar is not None:
            bar.close()
        ckpt.close()
    result = RunResult(state, model, max(total - start, 0), resumed, out / "log.nc")
    kinds = tuple(evaluate or ())
    if kinds and test_data is not None:
        result.eval = _evaluate(model, state, train_data, test_data, kinds)
        result.eval.update(step=int(state.step), epoch=int(state.step) / spe)
        text = json.dumps(result.eval, indent=1)
        atomic_write(out / "eval.json", lambda tmp: Path(tmp).write_text(text))
    result.seconds = time.perf_counter() - t0
    return result
