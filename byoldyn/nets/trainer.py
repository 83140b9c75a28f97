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
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from ..errors import check_output_dir, one_line
from ..io import atomic_write
from .byol import BYOL, TrainState, build
from .checkpoint import Checkpoints, unreadable_why
from .config import Config
from .data import Dataset
from .evaluate import PROTOCOL, append_curve, baselines, curve_point, extract_features, knn_accuracy, linear_probe
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
    """Indices of the training images of global step `step` (see the module docstring).

    Example (N = 10 images in batches of 3: 10 // 3 = 3 steps an epoch, 9 distinct images, the last one dropped;
    step 3 starts epoch 1, a new permutation):

    >>> import numpy as np
    >>> from byoldyn.nets.trainer import batch_indices, steps_per_epoch
    >>> epoch0 = np.concatenate([batch_indices(0, 10, 3, step) for step in range(steps_per_epoch(10, 3))])
    >>> order = [np.random.default_rng([0, e]).permutation(10) for e in (0, 1)]   # epochs 0 and 1
    >>> steps_per_epoch(10, 3), len(set(epoch0.tolist())), bool((epoch0 == order[0][:9]).all())
    (3, 9, True)
    >>> bool((batch_indices(0, 10, 3, 3) == order[1][:3]).all())
    True
    """
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


def _describe_data(d: dict) -> str:
    src = d.get("source") or {}
    where = (f"{src.get('path')!r} ({src.get('format')}, split {src.get('split')}"
             + (f", first {src['limit']}" if src.get("limit") else "") + ")") if src else "in-memory data"
    return f"{where}, {d.get('n')} images of {'x'.join(str(v) for v in d.get('shape', []))}"


def _check_same_run(meta: dict, config: Config, data: dict, directory: Path) -> None:
    """Refuse to resume from a checkpoint made with another config or on other training data."""
    hint = "use another --out or --no-resume"
    try:
        saved = Config.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"checkpoint in {directory} was made with a config this version cannot read "
                         f"({one_line(e)}); {hint}") from None
    if saved != config:
        new, old = config.to_dict(), saved.to_dict()
        diff = [k for k in new if new[k] != old.get(k)]
        raise ValueError(f"checkpoint in {directory} was made with a different config "
                         f"({', '.join(diff)}); {hint}")
    was = meta.get("data")  # absent in checkpoints of earlier versions
    if was is not None and [was.get(k) for k in ("n", "shape", "fingerprint")] != \
            [data[k] for k in ("n", "shape", "fingerprint")]:
        same = _describe_data(was) == _describe_data(data)
        raise ValueError(f"checkpoint in {directory} was made on other training data: {_describe_data(was)}"
                         f"{', fingerprint ' + str(was.get('fingerprint')) if same else ''}, not "
                         f"{_describe_data(data)}{', fingerprint ' + data['fingerprint'] if same else ''}; {hint}")


def _restore(ckpt: Checkpoints, like, config: Config, data: dict, out: Path):
    """`(state, meta)` of the newest readable checkpoint (None if there is none).

    An unreadable checkpoint (corrupt state or metadata) is moved into `out/checkpoints.bad/` and the
    previous one is tried, said in one line on stderr; when none is readable, `ValueError` (one line).
    A checkpoint of another config or other data is refused (`_check_same_run`), never skipped.
    """
    bad = []
    for step in ckpt.steps():
        try:
            meta = ckpt.read_meta(step)
        except Exception as e:  # noqa: BLE001 - any failure to read a checkpoint makes it unusable
            bad.append((step, one_line(e)))
            continue
        _check_same_run(meta, config, data, ckpt.directory)
        try:
            state = ckpt.restore_state(step, like)
        except Exception as e:  # noqa: BLE001 - orbax / tensorstore raise many types for a corrupt file
            bad.append((step, unreadable_why(e)))
            continue
        if bad:
            where = [str(ckpt.set_aside(s, out / "checkpoints.bad")) for s, _ in bad]
            print(f"byoldyn train: checkpoint {', '.join(str(s) for s, _ in bad)} in {ckpt.directory} is unreadable "
                  f"({bad[0][1]}); moved to {', '.join(where)}; resuming from step {step}", file=sys.stderr)
        return state, meta
    if bad:
        raise ValueError(f"no readable checkpoint in {ckpt.directory}: step {bad[0][0]} is unreadable ({bad[0][1]})"
                         + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
                         + "; use --no-resume to start afresh or another --out")
    return None


def _load_log(path: Path, start: int, meta: dict, attrs: dict, total: int) -> RunLog:
    """The log of a resumed run: its records up to the checkpoint's step `start`, checked against the
    checkpoint (which counts them); an end-of-run record is dropped when the run continues past it."""
    hint = "use another --out or --no-resume"
    want = meta.get("log")  # absent in checkpoints of earlier versions
    if not path.exists():
        if want and want["records"]:
            raise ValueError(f"the training log {str(path)} is missing, but the checkpoint at step {start} follows "
                             f"{want['records']} records; {hint}")
        return RunLog(path, attrs)
    log = RunLog.load(path, upto=start, attrs=attrs)
    if want is not None:
        got = [r["step"] for r in log.records]
        if len(got) != want["records"] or (got[-1] if got else None) != want["last"]:
            raise ValueError(f"the training log {str(path)} has {len(got)} records up to step {start} "
                             f"(last {got[-1] if got else None}), but the checkpoint follows {want['records']} "
                             f"(last {want['last']}); {hint}")
        if want.get("end") and total > start:
            log.records.pop()  # the record of the end of the shorter run; the longer run has none there
    return log


def _fresh(out: Path) -> None:
    """Remove what a previous run left in `out` (checkpoints, log, evaluation) before a fresh start."""
    for name in ("log.nc", "eval.json", "curve.json"):
        if (out / name).is_file():
            (out / name).unlink()
    if (out / "checkpoints").is_dir():
        shutil.rmtree(out / "checkpoints")


def train(config: Config, train_data: Dataset, test_data: Dataset | None, out, *, epochs: int,
          log_every: int = 50, ckpt_every: int | None = None, resume: bool = True, evaluate=("knn", "linear"),
          progress: bool = True, max_steps: int | None = None, eval_every: int | None = None) -> RunResult:
    """Train for `epochs` epochs (or until global step `max_steps`), resuming from `out/checkpoints`.

    **Arguments:** `log_every` (steps between instrumentation records), `ckpt_every` (steps between
    checkpoints; default one epoch; one is always written at the end), `resume` (continue from the
    newest readable checkpoint if there is one; its config and training data must be those given;
    False starts afresh and removes the previous run's checkpoints, log and evaluation), `evaluate`
    (any of "knn", "linear"; needs `test_data`), `progress` (tqdm bar), `eval_every` (steps between
    learning-curve points, `evaluate.curve_point`, appended to `out/curve.json`; also one at step 0).

    A resumed run writes the same log as an uninterrupted one: each checkpoint holds the running
    means of the step metrics since the last record, and the number of records it follows.

    **Raises:** `Diverged` when the loss becomes NaN/inf (nothing after the last checkpoint is saved,
    the log is written up to the last finite record); `ValueError` (one line) for an unwritable `out`,
    a config or data mismatch on resume, no readable checkpoint, a log that does not match the
    checkpoint, or a training set smaller than one batch.
    """
    t0 = time.perf_counter()
    out = check_output_dir(out, "out")
    n, B = len(train_data), config.batch_size
    spe = steps_per_epoch(n, B)
    if spe < 1 and (epochs > 0 if max_steps is None else int(max_steps) > 0):  # 0 steps: any batch evaluates
        raise ValueError(f"batch_size must be at most the {n} training images, got {B}")
    if train_data.images.shape[1] < 8:
        raise ValueError(f"images must be at least 8 pixels high, got {train_data.images.shape[1:]}")
    total = epochs * spe if max_steps is None else int(max_steps)
    log_every = max(1, int(log_every))
    ckpt_every = spe if ckpt_every is None else max(1, int(ckpt_every))
    model = build(config)
    k_init, k_data = _keys(config.seed)
    data_id = train_data.identity()
    if not resume:
        _fresh(out)
    ckpt = Checkpoints(out / "checkpoints")
    attrs = {"config": json.dumps(config.to_dict()), "steps_per_epoch": spe, "n_train": n}
    start, resumed = 0, None
    acc = {"loss": 0.0, "z_std": 0.0, "h_std": 0.0}
    n_acc = 0
    try:
        found = _restore(ckpt, jax.eval_shape(model.init, k_init), config, data_id, out)
        if found is not None:
            log = _load_log(out / "log.nc", int(found[0].step), found[1], attrs, total)
    except BaseException:
        ckpt.close()
        raise
    latest = None
    if found is not None:
        state, meta = found
        latest = start = resumed = int(state.step)
        if "n_acc" in meta:  # the running means since the last record (exact: JSON keeps every float digit)
            acc, n_acc = {k: float(meta["acc"][k]) for k in acc}, int(meta["n_acc"])
    else:
        if (out / "log.nc").exists() or (out / "eval.json").exists():
            ckpt.close()
            _fresh(out)  # a log or evaluation without checkpoints is a previous run's
            ckpt = Checkpoints(out / "checkpoints")
        state = model.init(k_init)
        log = RunLog(out / "log.nc", attrs)
    bar = None
    if progress and total > start:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=start, unit="step", desc="train", dynamic_ncols=True)
    last_ckpt, end_record = latest, False
    try:
        if eval_every and test_data is not None and start == 0 < total:  # the curve's first point + baselines
            append_curve(out / "curve.json", curve_point(model, state, train_data, test_data, baselines=True))
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
                rec.update({k: v / n_acc for k, v in acc.items()}, lr=float(m.get("lr", config.lr)))
                log.append(done, done / spe, rec)
                log.save()
                end_record = done % log_every != 0  # the end of this run only: the means go on after it
                if not end_record:
                    acc = dict.fromkeys(acc, 0.0)
                    n_acc = 0
            if done % ckpt_every == 0 or done == total:
                last = log.records[-1]["step"] if log.records else None
                ckpt.save(done, state, {"config": config.to_dict(), "step": done, "epoch": done / spe,
                                        "data": data_id, "acc": acc, "n_acc": n_acc,
                                        "log": {"records": len(log.records), "last": last, "end": end_record,
                                                "every": log_every}})
                last_ckpt = done
            if eval_every and test_data is not None and done % eval_every == 0:  # learning curve
                append_curve(out / "curve.json", curve_point(model, state, train_data, test_data))
    finally:
        if bar is not None:
            bar.close()
        ckpt.close()
    result = RunResult(state, model, max(total - start, 0), resumed, out / "log.nc")
    kinds = tuple(evaluate or ())
    if kinds and test_data is not None:
        result.eval = _evaluate(model, state, train_data, test_data, kinds)
        result.eval.update(step=int(state.step), epoch=int(state.step) / spe if spe else 0.0)
        if int(state.step) == 0:  # the untrained network: also raw pixels and batch-statistics BN
            result.eval.update(baselines(model, state, train_data, test_data, kinds))
        result.eval["protocol"] = PROTOCOL
        text = json.dumps(result.eval, indent=1)
        atomic_write(out / "eval.json", text)
    result.seconds = time.perf_counter() - t0
    return result
