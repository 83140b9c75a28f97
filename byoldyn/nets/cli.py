"""`byoldyn train`: real-network BYOL / DirectPred runs (THEORY.md sections 10-11).

`add_parsers(sub)` adds the sub-command to the `byoldyn` parser; flax is imported only when the
command runs, so `byoldyn --help` works without the `nets` extra. `main(argv)` runs the sub-command
on its own (`python -m byoldyn.nets.cli train ...`) with the same conventions: bad flags or values
print one line and exit 2; a NaN loss prints one line and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import _float, _nonneg_int, _Parser, _positive_int as _pos_int, _UsageError
from ..errors import check_output_dir, started

__all__ = ["add_parsers", "main"]


def add_parsers(sub) -> None:
    """Add `train` and `compare` to an argparse sub-parser collection (from `byoldyn.cli._parser`)."""
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
    g.add_argument("--limit", type=_pos_int, default=None, help="use only the first N training images (smoke runs)")
    g = p.add_argument_group("model")
    g.add_argument("--width", type=_float, default=0.25, help="channel multiplier of ResNet-18 (default 0.25)")
    g.add_argument("--depth", choices=("18", "10"), default="18", help="ResNet-18 (2,2,2,2) or -10 (1,1,1,1)")
    g.add_argument("--stem", choices=("auto", "cifar", "imagenet"), default="auto",
                   help="auto: cifar for images <= 64 px, imagenet (7x7 + max-pool) above")
    g.add_argument("--proj-hidden", type=_pos_int, default=512, help="projector hidden width (default 512)")
    g.add_argument("--proj-dim", type=_pos_int, default=128, help="projection / predictor dimension (default 128)")
    g.add_argument("--proj-out-bn", action="store_true",
                   help="BN without affine on the projections (SimSiam's projector; not the official code)")
    g.add_argument("--predictor", choices=("linear", "mlp", "directpred", "directcopy", "none"), default="linear",
                   help="predictor (default linear)")
    g.add_argument("--pred-hidden", type=_pos_int, default=512, help="hidden width of --predictor mlp")
    g.add_argument("--bias", action="store_true", help="predictor with bias")
    g.add_argument("--symmetric", action="store_true", help="symmetrize Wp after every step (predictor_reg=symmetric)")
    g = p.add_argument_group("BYOL / DirectPred")
    g.add_argument("--ema", type=_float, default=0.996, help="target EMA retention m; 0 = no EMA, SimSiam (default 0.996)")
    g.add_argument("--no-stop-grad", action="store_true", help="gradient through the target branch (needs --ema 0)")
    g.add_argument("--loss", choices=("cosine", "euclidean"), default="cosine", help="(default cosine)")
    g.add_argument("--target-init", choices=("independent", "copy"), default="independent",
                   help="target initialised independently (official code) or as a copy (default independent)")
    g.add_argument("--rho", type=_float, default=0.3, help="F̂ retention rho (Eq. 19; default 0.3)")
    g.add_argument("--eps", type=_float, default=0.1, help="DirectPred/DirectCopy boost eps (default 0.1)")
    g.add_argument("--freq", type=_pos_int, default=1, help="set Wp from F̂ every FREQ steps (default 1)")
    g.add_argument("--dp-form", choices=("code", "paper"), default="code",
                   help="DirectPred eigenvalue map: official code (boost_scale) or Eq. 18 (default code)")
    g = p.add_argument_group("optimization")
    g.add_argument("--optimizer", choices=("sgd", "lars"), default="sgd", help="(default sgd)")
    g.add_argument("--lr", type=_float, default=0.03, help="learning rate (default 0.03)")
    g.add_argument("--momentum", type=_float, default=0.9, help="(default 0.9)")
    g.add_argument("--wd", type=_float, default=4e-4, help="weight decay (default 4e-4)")
    g.add_argument("--alpha-p", type=_float, default=1.0, help="predictor lr = alpha_p * lr (default 1)")
    g.add_argument("--predictor-wd", type=_float, default=None, help="predictor weight decay (default --wd)")
    g.add_argument("--batch-size", type=_pos_int, default=128, help="(default 128)")
    g.add_argument("--epochs", type=_nonneg_int, default=100,
                   help="(default 100); 0 evaluates the untrained network (a baseline)")
    g.add_argument("--seed", type=int, default=0, help="(default 0)")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=Path("runs/byol"), help="run folder (default runs/byol)")
    g.add_argument("--log-every", type=_pos_int, default=50, help="steps between observable records (default 50)")
    g.add_argument("--ckpt-every", type=_pos_int, default=None, help="steps between checkpoints (default 1 epoch)")
    g.add_argument("--no-resume", action="store_true", help="start afresh even if OUT/checkpoints exists")
    g.add_argument("--eval", choices=("both", "knn", "linear", "none"), default="both",
                   help="final evaluation on the test split (default both)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_recipe_args(p)
    p.set_defaults(func=_train)
    p.set_defaults(_train_defaults={x.dest: x.default for x in p._actions})
    _add_compare(sub)


def _add_recipe_args(p) -> None:
    """Recipe options beyond the official code and named presets (issue 13; `byoldyn.nets.schedule`)."""
    from .schedule import PRESETS

    g = p.add_argument_group("recipe (schedules, presets, precision, learning curve)")
    g.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="named settings: official (the defaults), paper-cifar10 (App. C: width 1, 100 epochs; "
                   "give --data the full CIFAR-10); flags that differ from their defaults override it")
    g.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                   help="constant (official) or half-cosine decay to 0 at --total-steps (default constant)")
    g.add_argument("--warmup-steps", type=_nonneg_int, default=0, help="linear lr warmup from 0 (default 0)")
    g.add_argument("--ema-schedule", choices=("constant", "byol"), default="constant",
                   help="byol: m_k = 1 - (1 - m0)(cos(pi k/K) + 1)/2 with m0 = --ema, K = --total-steps")
    g.add_argument("--total-steps", type=_pos_int, default=None,
                   help="length K of the cosine / EMA schedules (default: --epochs x steps per epoch)")
    g.add_argument("--stop-at", type=_pos_int, default=None,
                   help="stop at this global step (the schedules still run over --total-steps; resume later)")
    g.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="compute dtype of the ResNet and projector (bfloat16: mixed precision; default float32)")
    g.add_argument("--eval-every", type=_pos_int, default=None,
                   help="steps between learning-curve kNN points (random 10k-train bank, 2k test) -> OUT/curve.json")


def _apply_preset(a) -> None:
    """Fill the flags of `--preset` that were left at their defaults."""
    from .schedule import PRESETS

    for k, v in PRESETS.get(a.preset or "official", {}).items():
        if getattr(a, k) == a._train_defaults[k]:
            setattr(a, k, v)


def _recipe(a, cfg, n_train: int):
    """`cfg` with the schedule and precision flags (the schedules' length defaults to the whole run)."""
    import dataclasses

    spe = n_train // cfg.batch_size
    sched = a.lr_schedule != "constant" or a.ema_schedule != "constant"
    total = a.total_steps or (max(1, a.epochs * spe) if sched else None)
    return dataclasses.replace(cfg, lr_schedule=a.lr_schedule, warmup_steps=a.warmup_steps, total_steps=total,
                               ema_schedule=a.ema_schedule, dtype=a.dtype)


def _train(a) -> int:
    from .augment import Augment
    from .config import Config
    from .data import detect_format, download_cifar10, load
    from .trainer import Diverged, train

    import dataclasses

    _apply_preset(a)
    cfg = Config(width=a.width, stage_sizes=(2, 2, 2, 2) if a.depth == "18" else (1, 1, 1, 1),
                 stem="cifar" if a.stem == "auto" else a.stem,
                 proj_hidden=a.proj_hidden, proj_dim=a.proj_dim,
                 proj_out_bn=a.proj_out_bn, predictor=a.predictor, pred_hidden=a.pred_hidden,
                 bias=a.bias, symmetric=a.symmetric, ema=a.ema, stop_grad=not a.no_stop_grad, loss=a.loss,
                 target_init=a.target_init, rho=a.rho, eps=a.eps, freq=a.freq, dp_form=a.dp_form,
                 optimizer=a.optimizer, lr=a.lr, momentum=a.momentum, wd=a.wd, alpha_p=a.alpha_p,
                 predictor_wd=a.predictor_wd, batch_size=a.batch_size, seed=a.seed)  # validates the flags
    check_output_dir(a.out, "--out")  # before reading any data
    if a.download:
        kw = {}
        if a.download_url:
            kw["url"] = a.download_url
        if a.download_md5:
            kw["md5"] = a.download_md5
        download_cifar10(a.data, progress=not a.no_progress, **kw)
    fmt = detect_format(a.data) if a.format == "auto" else a.format
    split = a.train_split or ("train+unlabeled" if fmt == "stl10" else "train")
    tr = load(a.data, split, fmt)
    if a.limit:
        tr = tr.first(a.limit)
    te = None if a.eval == "none" else load(a.data, "test", fmt)
    size = tr.images.shape[1]
    stem = a.stem if a.stem != "auto" else ("cifar" if size <= 64 else "imagenet")
    aug = Augment.stl10(size) if fmt == "stl10" else Augment.cifar10(size)
    cfg = dataclasses.replace(cfg, stem=stem, augment=aug)
    cfg = _recipe(a, cfg, len(tr))  # schedules over the run's steps (issue 13)
    kinds = {"both": ("knn", "linear"), "none": ()}.get(a.eval, (a.eval,))
    started()  # an OSError from here on is a failed run (exit 1)
    try:
        r = train(cfg, tr, te, a.out, epochs=a.epochs, log_every=a.log_every, ckpt_every=a.ckpt_every,
                  resume=not a.no_resume, evaluate=kinds, progress=not a.no_progress,
                  max_steps=a.stop_at, eval_every=a.eval_every)
    except Diverged as e:
        print(f"byoldyn train: stopped: {e}", file=sys.stderr)
        return 1
    what = f"resumed at step {r.resumed_from}, " if r.resumed_from is not None else ""
    ev = ", ".join(f"{k} = {v:.4f}" for k, v in r.eval.items() if k.endswith("_acc"))
    wrote = [str(f) for f in (r.log_path, Path(a.out) / "eval.json") if f.is_file()]
    print(f"{what}{r.steps} steps in {r.seconds:.0f} s; {ev or 'no evaluation'}"
          + (f"; wrote {' and '.join(wrote)}" if wrote else ""))
    return 0


def _add_compare(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="figures and a results table of byoldyn train runs",
        description="Read RUN/log.nc and RUN/eval.json of each run directory (or only eval.json: the untrained "
        "network of byoldyn train --epochs 0) and write, into --out, "
        "runs.png (loss, collapse indicators, accuracies side by side), alignment_NAME.png for every run with "
        "a predictor matrix (the Fig. 2 pattern) and RESULTS.md (one row per run). Needs no flax.",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directories (their names label the runs)")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: the first run's parent)")
    p.add_argument("--export", action="store_true",
                   help="also write OUT/NAME/log.nc without the matrices F̂, Wp (keeping p_j = u_jᵀ Wp u_j) and "
                   "OUT/NAME/eval.json, small enough to commit")
    p.set_defaults(func=_compare)


def _compare(a) -> int:
    import matplotlib.pyplot as plt

    from ..figures.training import fig_alignment, fig_runs, load_run, results_table, slim
    from ..io import atomic_write, save_figure, save_netcdf

    out = check_output_dir(a.out or a.runs[0].resolve().parent, "--out")
    runs = {d.resolve().name: load_run(d) for d in a.runs}
    if len(runs) < len(a.runs):
        raise ValueError("run directories must have distinct names")
    if a.export and any((out / d.resolve().name).resolve() == d.resolve() for d in a.runs):
        raise ValueError("--export would overwrite a run's own log; choose another --out")
    wrote = [save_figure(fig_runs(runs), out / "runs.png", dpi=110)]
    wrote += _curves(a.runs, runs, out, a.export)  # learning curves against the baselines (issue 13)
    for name, (ds, ev) in runs.items():
        pred = json.loads(ds.attrs["config"])["predictor"] if ds is not None else None
        if pred in ("linear", "directpred", "directcopy") and "alignment" in ds:
            wrote.append(save_figure(fig_alignment(ds, name), out / f"alignment_{name}.png", dpi=110))
        if a.export and ds is not None:
            wrote.append(save_netcdf(slim(ds), out / name / "log.nc"))
        if a.export and ev:
            text = json.dumps(ev, indent=1)
            wrote.append(atomic_write(out / name / "eval.json", lambda tmp: Path(tmp).write_text(text)))
    plt.close("all")
    text = "# Real-network runs\n\nWritten by `byoldyn compare " + " ".join(str(d) for d in a.runs) + "`.\n\n"
    text += results_table(runs)
    wrote.append(atomic_write(out / "RESULTS.md", lambda tmp: Path(tmp).write_text(text, encoding="utf-8")))
    print("wrote " + ", ".join(str(w) for w in wrote))
    return 0


def _curves(dirs, runs, out, export) -> list:
    """curve.png of the runs with a curve.json (baselines from any untrained-network run); with
    `export`, copies of those curve.json files beside the exported logs."""
    from ..figures.curves import BASELINES, fig_curves, load_curve
    from ..io import atomic_write, save_figure

    curves = {d.resolve().name: load_curve(d) for d in dirs}
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return []
    base = {}
    for name, (ds, ev) in runs.items():
        if ds is None and "pixels_knn_acc" in ev:
            base.update({f"{label} ({name})": ev[k] for k, label in BASELINES.items() if k in ev})
    wrote = [save_figure(fig_curves(curves, base), out / "curve.png", dpi=110)]
    for name, pts in curves.items() if export else ():
        text = json.dumps(pts, indent=1)
        wrote.append(atomic_write(out / name / "curve.json", lambda tmp, t=text: Path(tmp).write_text(t)))
    return wrote


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="byoldyn", description="Real-network BYOL / DirectPred (byoldyn.nets).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run `byoldyn train ...` standalone: exit 0 on success, 1 on a NaN stop, 2 on bad flags/values/data."""
    from ..errors import run_command

    return run_command(lambda: (lambda a: a.func(a))(_parser().parse_args(argv)))

if __name__ == "__main__":
    sys.exit(main())
