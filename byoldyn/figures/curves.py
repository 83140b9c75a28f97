"""Learning curves of real-network runs against the baselines.

`byoldyn train --eval-every N` appends kNN points to `RUN/curve.json` (`byoldyn.nets.evaluate.curve_point`);
`byoldyn compare` draws them with `fig_curves` as `curve.png`, with the baselines of any untrained-network
run (`byoldyn train --epochs 0`) as horizontal lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt

from ..errors import one_line
from .common import seed_styles

__all__ = ["load_curve", "fig_curves", "BASELINES"]

#: eval.json keys of the baselines and their labels.
BASELINES = {"pixels_knn_acc": "raw pixels", "batch_bn_knn_acc": "random net, batch-stat BN",
             "knn_acc": "random net, eval-mode BN at initial stats (inflated)"}


def load_curve(directory) -> list[dict]:
    """The points of `directory/curve.json` (a list of {step, knn_acc, ...}); [] when there is none."""
    p = Path(directory) / "curve.json"
    if not p.is_file():
        return []
    try:
        pts = json.loads(p.read_text())
        assert isinstance(pts, list) and all(isinstance(q["step"], int) and 0 <= q["knn_acc"] <= 1 for q in pts)
    except Exception as e:  # noqa: BLE001 - any damage makes the file unusable
        raise ValueError(f"{str(p)!r} is not a learning curve (a JSON list of step / knn_acc points): "
                         f"{one_line(e) or 'bad values'}") from None
    return pts


def fig_curves(curves: dict, baselines: dict | None = None):
    """kNN % against training step for each run of `curves` (name -> points), the `baselines`
    (label -> accuracy fraction) dashed; the baselines a curve's first point carries (same bank and test
    images as the curve) are drawn for the first run that has them, in place of `baselines`. Runs named
    `METHOD-sN` share METHOD's colour and one legend entry; their seeds differ by line style."""
    own = next(({f"{label} (same images as the curve)": pts[0][k] for k, label in BASELINES.items()
                 if k != "knn_acc" and k in pts[0]} for pts in curves.values() if pts and "pixels_knn_acc" in pts[0]),
               None)
    baselines = own or baselines
    style = seed_styles(curves)
    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    for name, pts in curves.items():
        ax.plot([p["step"] for p in pts], [100 * p["knn_acc"] for p in pts], marker="o", ms=3, lw=1.2,
                **style[name])
    for m, (label, acc) in enumerate((baselines or {}).items()):
        ax.axhline(100 * acc, color=("0.4", "0.7", "k")[m % 3], ls="--", lw=1, label=label)
    pts = next((p for p in curves.values() if p), [{}])
    bank = f"bank {pts[0].get('n_train', '?')} train, {pts[0].get('n_test', '?')} test images"
    ax.set(xlabel="training step", ylabel="kNN accuracy %", title=f"Learning curves (kNN k = 200, T = 0.1; {bank})")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
