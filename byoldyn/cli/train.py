"""`byoldyn train`: real-network BYOL / SimSiam / DirectPred runs (THEORY.md sections 10-11; `byoldyn.nets`).

flax is imported only when the command runs, so that `byoldyn --help` works without the `nets` extra. Bad
flags, values or data: one line, exit 2; a NaN loss: one line, exit 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError, check_output_dir, started
from ..predictors import ALIASES, LOSSES
from .common import (
    PREDICTOR_NAMES,
    add_out,
    add_predictor_params,
    add_progress,
    add_seed,
    add_variant,
    command,
    nonneg_int,
    positive_int,
    predictor_from_flags,
    progress,
    real,
)

__all__ = ["add_parser", "run", "apply_preset", "recipe", "UNSET"]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: The parsed value of a preset's flag that was not given (`apply_preset` fills it in).
UNSET = _Unset()


def add_parser(sub) -> None:
    """Add `train` to the `byoldyn` subcommands `sub`."""
    from ..nets.config import HEAD_NORMS  # no flax (nets.config needs jax only)
    from ..nets.presets import PRESETS

    p = sub.add_parser(
        "train",
        help="train ResNet-18 BYOL / DirectPred and log the theory's observables",
        description="Train a ResNet-18 (CIFAR stem, width multiplier) with BYOL, SimSiam or DirectPred as in the "
        "official code of Tian, Chen & Ganguli 2021, logging F̂, the predictor and the alignment/asymmetry/"
        "spectra/collapse observables to OUT/log.nc, checkpointing to OUT/checkpoints (resumed automatically) "
        "and writing kNN and linear-probe accuracies to OUT/eval.json. Defaults: the official CIFAR-10 settings.",
    )
    g = p.add_argument_group("data")
    g.add_argument("--data", type=Path, required=True,
                   help="dataset folder: cifar-10-batches-py/, stl10_binary/ or train|test/<class>/*.png|jpg")
    g.add_argument("--format", choices=("auto", "cifar10", "stl10", "folder"), default="auto", help="(default auto)")
    g.add_argument("--download", action="store_true", help="download CIFAR-10 into --data first (MD5 checked)")
    g.add_argument("--download-url", default=None, help=argparse.SUPPRESS)
    g.add_argument("--download-md5", default=None, help=argparse.SUPPRESS)
    g.add_argument("--train-split", default=None, help="training split (default train; STL-10: train+unlabeled)")
    g.add_argument("--limit", type=positive_int, default=None, help="use only the first N training images (smoke runs)")
    g = p.add_argument_group("model")
    g.add_argument("--width", type=real, default=0.25, help="channel multiplier of ResNet-18 (default 0.25)")
    g.add_argument("--depth", choices=("18", "10"), default="18",
                   help="ResNet-18 (2,2,2,2) or -10 (1,1,1,1) (default 18)")
    g.add_argument("--stem", choices=("auto", "cifar", "imagenet"), default="auto",
                   help="auto: cifar for images <= 64 px, imagenet (7x7 + max-pool) above")
    g.add_argument("--proj-hidden", type=positive_int, default=512, help="projector hidden width (default 512)")
    g.add_argument("--proj-dim", type=positive_int, default=128, help="projection / predictor dimension (default 128)")
    g.add_argument("--proj-out-bn", action="store_true",
                   help="BN without affine on the projections (SimSiam's projector; not the official code)")
    add_variant(g, predictors=(*PREDICTOR_NAMES, "mlp"), aliases=ALIASES,
                help="learned (the linear Wp; old name linear), symmetric (Wp symmetrized after every step), "
                "identity (Wp = I; old name none), directpred, directcopy, or mlp (default learned)")
    g.add_argument("--pred-hidden", type=positive_int, default=512, help="hidden width of --predictor mlp")
    g.add_argument("--bias", action="store_true", help="predictor with bias")
    g.add_argument("--symmetric", action="store_true",
                   help="the old spelling of --predictor symmetric (with mlp: symmetrize its matrix)")
    g.add_argument("--head-norm", choices=HEAD_NORMS, default="bn",
                   help="normalisation in the projector (and the mlp predictor): bn (BatchNorm without affine, the "
                   "official code), center (subtract the batch mean, differentiated), center-detach (the batch mean "
                   "detached), none (default bn)")
    g = p.add_argument_group("BYOL / DirectPred")
    g.add_argument("--ema", type=real, default=0.996, help="target EMA retention m; 0 = no EMA, SimSiam (default 0.996)")
    g.add_argument("--no-ema", action="store_true", help="SimSiam: the target is the online net (= --ema 0)")
    g.add_argument("--no-stop-grad", action="store_true",
                   help="gradient through the target branch (needs --no-ema or --ema 0)")
    g.add_argument("--loss", choices=LOSSES, default="cosine",
                   help="isoloss: the Euclidean loss with its output error sent to the projection without the "
                   "predictor's Jacobian (docs/isoloss.md) (default cosine)")
    g.add_argument("--target-init", choices=("independent", "copy"), default="independent",
                   help="target initialised independently (official code) or as a copy (default independent)")
    add_predictor_params(g, "discrete")
    g.add_argument("--predictor-reset", type=positive_int, default=None, metavar="N",
                   help="re-initialise the learned predictor (and zero its momentum) after every N steps "
                   "(default: never)")
    g = p.add_argument_group("optimization")
    g.add_argument("--optimizer", choices=("sgd", "lars"), default="sgd", help="(default sgd)")
    g.add_argument("--lr", type=real, default=0.03, help="learning rate (default 0.03)")
    g.add_argument("--momentum", type=real, default=0.9, help="(default 0.9)")
    g.add_argument("--wd", type=real, default=4e-4, help="weight decay (default 4e-4)")
    g.add_argument("--alpha-p", type=real, default=1.0, help="predictor lr = alpha_p * lr (default 1)")
    g.add_argument("--wd-p", "--predictor-wd", dest="wd_p", type=real, default=None,
                   help="predictor weight decay (default --wd)")
    g.add_argument("--batch-size", type=positive_int, default=128, help="(default 128)")
    g.add_argument("--epochs", type=nonneg_int, default=100,
                   help="(default 100); 0 evaluates the untrained network (a baseline; also under a --preset with --stop-at)")
    add_seed(g, "the initialisation, augmentations and batches")
    g = p.add_argument_group("output")
    add_out(g, "runs/byol", "run folder (default runs/byol)")
    g.add_argument("--log-every", type=positive_int, default=50, help="steps between observable records (default 50)")
    g.add_argument("--ckpt-every", type=positive_int, default=None, help="steps between checkpoints (default 1 epoch)")
    g.add_argument("--no-resume", action="store_true", help="start afresh even if OUT/checkpoints exists")
    g.add_argument("--eval", choices=("both", "knn", "linear", "none"), default="both",
                   help="final evaluation on the test split (default both)")
    add_progress(g)

    g = p.add_argument_group("recipe (schedules, presets, precision, learning curve)")
    g.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="named settings: official (the defaults), paper-cifar10 (App. C: width 1, 100 epochs; "
                   "give --data the full CIFAR-10), cpu-hour (the CPU recipe); flags given explicitly override it")
    g.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                   help="constant (official) or half-cosine decay to 0 at --total-steps (default constant)")
    g.add_argument("--warmup-steps", type=nonneg_int, default=0, help="linear lr warmup from 0 (default 0)")
    g.add_argument("--ema-schedule", choices=("constant", "byol"), default="constant",
                   help="byol: m_k = 1 - (1 - m0)(cos(pi k/K) + 1)/2 with m0 = --ema, K = --total-steps "
                   "(default constant)")
    g.add_argument("--total-steps", type=positive_int, default=None,
                   help="length K of the cosine / EMA schedules (default: --epochs x steps per epoch)")
    g.add_argument("--stop-at", type=positive_int, default=None,
                   help="stop at this global step (the schedules still run over --total-steps; resume later) "
                   "(default: none, run every epoch)")
    g.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="compute dtype of the ResNet and projector (bfloat16: mixed precision; default float32)")
    g.add_argument("--eval-every", type=positive_int, default=None,
                   help="steps between learning-curve kNN points (random 10k-train bank, 2k test) -> OUT/curve.json "
                   "(default: none, no curve)")
    keys = set().union(*PRESETS.values())  # a preset's flags parse to UNSET unless given, even at their default
    # the library's names that differ from the flags: Config(stage_sizes=, dp_form=, symmetric=, stop_grad=)
    command(p, run, {"stage_sizes": "--depth", "dp_form": "--form"})
    p.set_defaults(preset_defaults={k: p.get_default(k) for k in keys}, **{k: UNSET for k in keys})


def apply_preset(a) -> None:
    """Fill the flags that were not given (`a`: parsed `byoldyn train` flags) from `--preset`, else from their
    defaults; a flag given explicitly wins even when it equals its default."""
    from ..nets.presets import PRESETS

    preset = PRESETS.get(a.preset or "official", {})
    for k, default in a.preset_defaults.items():
        if getattr(a, k) is UNSET:
            setattr(a, k, preset.get(k, default))


def recipe(a, cfg, n_train: int):
    """`cfg` with the schedule and precision flags of `a` (the schedules' length defaults to the whole run of
    `n_train` images)."""
    import dataclasses

    spe = n_train // cfg.batch_size
    sched = a.lr_schedule != "constant" or a.ema_schedule != "constant"
    total = a.total_steps or (max(1, a.epochs * spe) if sched else None)
    return dataclasses.replace(cfg, lr_schedule=a.lr_schedule, warmup_steps=a.warmup_steps, total_steps=total,
                               ema_schedule=a.ema_schedule, dtype=a.dtype)


def require_nets() -> None:
    """Bad input (one line, exit 2) when the `nets` extra is not installed."""
    import importlib.util

    missing = [m for m in ("flax", "optax", "orbax.checkpoint", "PIL")
               if importlib.util.find_spec(m.split(".")[0]) is None
               or ("." in m and importlib.util.find_spec(m) is None)]
    if missing:
        raise UsageError(f"byoldyn train needs the nets extra (missing {', '.join(missing)}): "
                         "pip install 'byoldyn[nets]' (from a clone: pip install -e '.[nets]')")


def run(a) -> int:
    """Run `byoldyn train` with the parsed flags `a`: 0 on success, 1 when the loss became NaN."""
    import dataclasses

    require_nets()

    from ..nets.augment import Augment
    from ..nets.config import Config
    from ..nets.data import detect_format, download_cifar10, load
    from ..nets.trainer import Diverged, train

    if a.no_ema:
        a.ema = 0.0
    apply_preset(a)
    cfg = Config(width=a.width, stage_sizes=(2, 2, 2, 2) if a.depth == "18" else (1, 1, 1, 1),
                 stem="cifar" if a.stem == "auto" else a.stem,
                 proj_hidden=a.proj_hidden, proj_dim=a.proj_dim, proj_out_bn=a.proj_out_bn,
                 predictor=predictor_from_flags(a, "discrete"), symmetric=a.symmetric, pred_hidden=a.pred_hidden,
                 bias=a.bias, head_norm=a.head_norm, predictor_reset=a.predictor_reset,
                 ema=a.ema, stop_grad=not a.no_stop_grad, loss=a.loss,
                 target_init=a.target_init,
                 optimizer=a.optimizer, lr=a.lr, momentum=a.momentum, wd=a.wd, alpha_p=a.alpha_p,
                 wd_p=a.wd_p, batch_size=a.batch_size, seed=a.seed)  # validates the flags
    check_output_dir(a.out, "--out")  # before reading any data
    from ..io import lock_output

    lock_output(a.out)  # a second run on the same --out is refused
    if a.download:
        kw = {}
        if a.download_url:
            kw["url"] = a.download_url
        if a.download_md5:
            kw["md5"] = a.download_md5
        download_cifar10(a.data, progress=progress(a), **kw)
    fmt = detect_format(a.data) if a.format == "auto" else a.format
    split = a.train_split or ("train+unlabeled" if fmt == "stl10" else "train")
    tr = load(a.data, split, fmt)
    if a.limit:
        tr = tr.first(a.limit)
    te = None if a.eval == "none" else load(a.data, "test", fmt, classes=tr.classes)  # one class map
    size = tr.images.shape[1]
    stem = a.stem if a.stem != "auto" else ("cifar" if size <= 64 else "imagenet")
    aug = Augment.stl10(size) if fmt == "stl10" else Augment.cifar10(size)
    cfg = dataclasses.replace(cfg, stem=stem, augment=aug)
    cfg = recipe(a, cfg, len(tr))  # schedules over the run's steps
    kinds = {"both": ("knn", "linear"), "none": ()}.get(a.eval, (a.eval,))
    started()  # an OSError from here on is a failed run (exit 1)
    try:
        r = train(cfg, tr, te, a.out, epochs=a.epochs, log_every=a.log_every, ckpt_every=a.ckpt_every,
                  resume=not a.no_resume, evaluate=kinds, progress=progress(a),
                  max_steps=0 if a.epochs == 0 else a.stop_at, eval_every=a.eval_every)  # --epochs 0: no step
    except Diverged as e:
        print(f"byoldyn train: stopped: {e}", file=sys.stderr)
        return 1
    what = f"resumed at step {r.resumed_from}, " if r.resumed_from is not None else ""
    ev = ", ".join(f"{k} = {v:.4f}" for k, v in r.eval.items() if k.endswith("_acc"))
    wrote = [str(f) for f in (r.log_path, Path(a.out) / "eval.json") if f.is_file()]
    print(f"{what}{r.steps} steps in {r.seconds:.0f} s; {ev or 'no evaluation'}"
          + (f"; wrote {' and '.join(wrote)}" if wrote else ""))
    return 0
