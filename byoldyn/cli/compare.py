"""`byoldyn compare`: figures and a results table of `byoldyn train` runs (needs no flax)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import check_output_dir, one_line
from .common import add_out, command

__all__ = ["add_parser", "run", "curves", "CLAIMS_NOTE"]

#: how the claims section of RESULTS.md is decided (byoldyn.figures.net_claims)
CLAIMS_NOTE = ("Seeds are paired (the same seed: the same initialisation, augmentations and batches). Each interval "
               "is the 95 % Student-t interval of the mean paired difference (or of the value, or of the log ratio "
               "for z_std) over the seeds both sides have; the decision rules are `byoldyn.figures.net_claims.CLAIMS`, "
               "fixed before the runs were read. kNN at a step is the learning curve's (`curve.json`: a random "
               "10,000-image bank of the training split, 2,000 test images, k = 200, T = 0.1); a log's first record "
               "is the control of a claim about change over training.\n\n")


def add_parser(sub) -> None:
    """Add `compare` to the `byoldyn` subcommands `sub`."""
    p = sub.add_parser(
        "compare",
        help="figures and a results table of byoldyn train runs",
        description="Read RUN/log.nc and RUN/eval.json of each run directory (or only eval.json: the untrained "
        "network of byoldyn train --epochs 0) and write, into --out, "
        "runs.png (loss, collapse indicators, accuracies side by side), alignment_NAME.png for every run with "
        "a predictor matrix (the Fig. 2 pattern) and RESULTS.md (one row per run). Needs no flax.",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directories (their names label the runs)")
    add_out(p, None, "output directory (default: the first run's parent)")
    p.add_argument("--export", action="store_true",
                   help="also write OUT/NAME/log.nc without the matrices F̂, Wp (keeping p_j = u_jᵀ Wp u_j) and "
                   "OUT/NAME/eval.json, small enough to commit")
    p.add_argument("--claims", action="store_true",
                   help="also decide the paper's real-network claims on the runs, seeds paired (RESULTS.md sections "
                   "'Seeds' and 'Claims'; byoldyn.figures.net_claims)")
    p.add_argument("--notes", type=Path, default=None,
                   help="a Markdown file (your reading of the results) appended to RESULTS.md")
    command(p, run)


def run(a) -> int:
    """Run `byoldyn compare` with the parsed flags `a`: refuses an unwritable --out before reading any run."""
    import matplotlib.pyplot as plt

    from ..figures.training import fig_alignment, fig_runs, load_run, results_table, slim
    from ..io import atomic_write, save_figure, save_netcdf

    out = check_output_dir(a.out or a.runs[0].resolve().parent, "--out")
    notes = ""
    if a.notes is not None:
        try:
            notes = "\n" + a.notes.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--notes: cannot read {str(a.notes)!r}: {one_line(e)}") from None
    runs = {d.resolve().name: load_run(d) for d in a.runs}
    if len(runs) < len(a.runs):
        raise ValueError("run directories must have distinct names")
    if a.export and any((out / d.resolve().name).resolve() == d.resolve() for d in a.runs):
        raise ValueError("--export would overwrite a run's own log; choose another --out")
    wrote = [save_figure(fig_runs(runs), out / "runs.png", dpi=110)]
    wrote += curves(a.runs, runs, out, a.export)  # learning curves against the baselines
    for name, (ds, ev) in runs.items():
        pred = json.loads(ds.attrs["config"])["predictor"] if ds is not None else None
        if pred in ("linear", "learned", "symmetric", "directpred", "directcopy") and "alignment" in ds:
            wrote.append(save_figure(fig_alignment(ds, name), out / f"alignment_{name}.png", dpi=110))
        if a.export and ds is not None:
            wrote.append(save_netcdf(slim(ds), out / name / "log.nc"))
        if a.export and ev:
            text = json.dumps(ev, indent=1)
            wrote.append(atomic_write(out / name / "eval.json", lambda tmp: Path(tmp).write_text(text)))
    plt.close("all")
    text = "# Real-network runs\n\nWritten by `byoldyn compare " + " ".join(str(d) for d in a.runs) + "`.\n\n"
    text += results_table(runs)
    if a.claims:  # the paper's claims: seeds, intervals and verdicts
        from ..figures.net_claims import claims_table, load_runs, seeds_table

        seeded = load_runs(a.runs, runs)
        px = next((100 * ev["pixels_knn_acc"] for ds, ev in runs.values() if ds is None and "pixels_knn_acc" in ev),
                  None)
        text += ("\n## Seeds\n\nThe final evaluation (eval.json) of each method, over its seeds"
                 + (f"; raw pixels on the same protocol: {px:.1f} %" if px is not None else "") + ".\n\n"
                 + seeds_table(seeded, px) + "\n## Claims\n\n" + CLAIMS_NOTE + claims_table(seeded))
    text += notes
    wrote.append(atomic_write(out / "RESULTS.md", lambda tmp: Path(tmp).write_text(text, encoding="utf-8")))
    print("wrote " + ", ".join(str(w) for w in wrote))
    return 0


def curves(dirs, runs, out, export) -> list:
    """curve.png of the runs `dirs` with a curve.json (baselines from any untrained-network run of `runs`) into
    `out`; with `export`, copies of those curve.json files beside the exported logs. The paths written."""
    from ..figures.curves import BASELINES, fig_curves, load_curve
    from ..io import atomic_write, save_figure

    found = {d.resolve().name: load_curve(d) for d in dirs}
    found = {k: v for k, v in found.items() if v}
    if not found:
        return []
    base = {}
    for name, (ds, ev) in runs.items():
        if ds is None and "pixels_knn_acc" in ev:
            base.update({f"{label} ({name})": ev[k] for k, label in BASELINES.items() if k in ev})
    wrote = [save_figure(fig_curves(found, base), out / "curve.png", dpi=110)]
    for name, pts in found.items() if export else ():
        text = json.dumps(pts, indent=1)
        wrote.append(atomic_write(out / name / "curve.json", lambda tmp, t=text: Path(tmp).write_text(t)))
    return wrote
