"""Figures and a results table of real-network runs (`byoldyn train`; THEORY.md sections 9, 12, 14).

A run directory holds `log.nc` (the instrumentation of `byoldyn.nets.instrument`) and `eval.json`
(kNN and linear-probe accuracies). Reading them needs only xarray, so this works without the `nets`
extra, for example on logs committed to the repository.

- `fig_alignment`: the Fig. 2 pattern in one run with a predictor matrix: asymmetry of Wp falls, its
  eigenvectors align with those of F̂, and its eigenvalues follow those of F̂;
- `fig_runs`: several runs side by side: loss, collapse indicators, and accuracies;
- `results_table`: one Markdown row per run with the measured numbers;
- `slim`: a log without its matrices (a few kB a record instead of 130 kB), to share or commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .. import observables as ob
from ..errors import one_line, read_json
from ..predictors import PREDICTORS
from .common import note, seed_styles

__all__ = ["load_run", "describe", "aligned_fraction", "rayleigh_p", "loglog_fit", "p_fit", "p_slope", "slim",
           "fig_alignment", "fig_runs", "results_table"]


_LOG_VARS = ("epoch", "loss", "z_std", "effective_rank", "asymmetry", "commutator_normalized", "s", "alignment")


def _read_eval(path: Path) -> dict:
    ev = read_json(path, "evaluation")
    if not isinstance(ev, dict) or not all(isinstance(v, (int, float)) for k, v in ev.items() if k.endswith("_acc")):
        raise ValueError(f"{str(path)!r} is not a byoldyn evaluation (a JSON object of accuracies)")
    return ev


def load_run(directory):
    """`(log, eval)` of one run directory: the `log.nc` Dataset (loaded) and `eval.json` (or `{}`).

    A directory with only `eval.json` (`byoldyn train --epochs 0`, the untrained network) gives `(None, eval)`.
    A missing, corrupt or incomplete file (a variable of `_LOG_VARS` or the config missing) raises
    `ValueError` naming it.
    """
    import xarray as xr

    d = Path(directory)
    log, ev = d / "log.nc", d / "eval.json"
    if not log.is_file():
        if ev.is_file():
            return None, _read_eval(ev)
        raise ValueError(f"no training log {str(log)!r} (made by byoldyn train)")
    try:
        with xr.open_dataset(log, engine="h5netcdf") as ds:
            ds = ds.load()
    except Exception as e:  # noqa: BLE001 - h5py / h5netcdf / xarray raise many types for a damaged file
        raise ValueError(f"cannot read {str(log)!r} as netCDF: {one_line(e)}") from None
    if "config" not in ds.attrs or "step" not in ds.dims:
        raise ValueError(f"{str(log)!r} is not a byoldyn training log")
    ds = ob.upgrade_names(ds)  # logs written before the observables registry
    missing = [k for k in _LOG_VARS if k not in ds]
    if missing:
        raise ValueError(f"training log {str(log)!r} lacks variable{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing)}")
    if ds.sizes["step"] == 0:
        raise ValueError(f"training log {str(log)!r} has no records")
    try:
        c = json.loads(ds.attrs["config"])
        c["predictor"], c["ema"]
    except (TypeError, KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"training log {str(log)!r} has a corrupt config attribute ({one_line(e)})") from None
    return ds, (_read_eval(ev) if ev.is_file() else {})


def describe(ds) -> str:
    """A short label of a run's method from its config: predictor, EMA, α_p (when not 1), stop-gradient, the
    heads' normalisation and the predictor reset (when not the defaults: BatchNorm, never)."""
    if ds is None:
        return "untrained network (--epochs 0)"
    c = json.loads(ds.attrs["config"])
    pred = {"learned": "linear Wp", "symmetric": "symmetric linear Wp", "mlp": "2-layer MLP",
            "identity": "no predictor", "linear": "linear Wp", "none": "no predictor"}.get(c["predictor"])
    if pred is None:  # (linear, none: older logs) an F̂-derived predictor: its class's label, parameters off default
        cls = PREDICTORS[c["predictor"]]
        pars = c.get("predictor_object")
        pred = cls(**pars).label("discrete") if isinstance(pars, dict) else cls.title
    if c["predictor"] in ("linear", "learned") and c.get("symmetric"):
        pred = "symmetric linear Wp"
    if c.get("bias"):
        pred += " + bias"
    parts = [pred, f"EMA {c['ema']}" if c["ema"] > 0 else "no EMA"]
    if c["predictor"] in ("linear", "learned", "symmetric", "mlp") and float(c.get("alpha_p", 1.0)) != 1.0:
        parts.append(f"α_p {float(c['alpha_p']):g}")  # the predictor's lr ratio, shown off its default 1
    if not c.get("stop_grad", True):
        parts.append("no stop-grad")
    norm = c.get("head_norm", "bn")  # older logs: BatchNorm
    if norm != "bn":
        parts.append({"center": "heads centered (no BN)", "center-detach": "heads centered, mean detached (no BN)",
                      "none": "no BN in the heads"}.get(norm, f"heads: {norm}"))
    if c.get("predictor_reset"):
        parts.append(f"predictor reset every {c['predictor_reset']} steps")
    return ", ".join(parts)


def aligned_fraction(ds, k: int = 10) -> np.ndarray:
    """Mean over the top `k` eigenvectors u_j of F̂ of cos(Wp u_j, u_j), per record (Fig. 2, right)."""
    return np.nanmean(ds.alignment.values[:, :k], axis=1)


def rayleigh_p(ds) -> np.ndarray:
    """p_j = u_jᵀ Wp u_j for the eigenvectors u_j of sym(F̂), per record, decreasing s_j: (step, mode).

    From the matrices F and Wp of the log, or its variable `p_rayleigh` if `slim` has replaced them.
    """
    if "p_rayleigh" in ds:
        return ds.p_rayleigh.values
    F = ds.F.values.astype(np.float64)
    Wp = ds.Wp.values.astype(np.float64)
    _, U = np.linalg.eigh(0.5 * (F + np.swapaxes(F, -1, -2)))
    U = U[..., ::-1]
    return np.einsum("tij,tik,tkj->tj", U, Wp, U)


def loglog_fit(x, p, k: int = 10) -> tuple[float, float, float]:
    """(slope, intercept, R²) of the least-squares line of log p_j on log x_j over the first `k` modes that have
    x_j, p_j > 0 and finite; NaNs with fewer than 3 such modes."""
    x, p = np.asarray(x, float)[:k], np.asarray(p, float)[:k]
    ok = (x > 0) & (p > 0) & np.isfinite(x) & np.isfinite(p)
    if ok.sum() < 3:
        return float("nan"), float("nan"), float("nan")
    lx, lp = np.log(x[ok]), np.log(p[ok])
    slope, icpt = np.polyfit(lx, lp, 1)
    ss = np.sum((lp - lp.mean()) ** 2)
    r2 = 1.0 - np.sum((lp - (slope * lx + icpt)) ** 2) / ss if ss > 0 else float("nan")
    return float(slope), float(icpt), float(r2)


def p_fit(s, p, k: int = 10) -> tuple[float, float]:
    """(slope, intercept) of log p_j against log s_j over the top `k` modes (`s` decreasing) that have
    s_j, p_j > 0; NaNs with fewer than 3 such modes. DirectPred's Eq. 18 sets the slope to 1/2."""
    return loglog_fit(s, p, k)[:2]


def p_slope(s, p, k: int = 10) -> float:
    """The slope of `p_fit`: the exponent in p_j ∝ s_j^slope over the top `k` modes (1/2 under Eq. 18)."""
    return p_fit(s, p, k)[0]


def slim(ds):
    """The log without the matrices F and Wp (the bulk of its size), keeping p_j = u_jᵀ Wp u_j as `p_rayleigh`."""
    if "F" not in ds or "Wp" not in ds:
        return ds
    out = ds.drop_vars(["F", "Wp"]).assign(p_rayleigh=(("step", "mode"), rayleigh_p(ds).astype(np.float32)))
    out.p_rayleigh.attrs.update(ob.attrs("p_rayleigh"))
    return out


def fig_alignment(ds, name: str = "", k: int = 10):
    """Four panels over training: asymmetry, per-eigenvector alignment, spectra of F̂, and p_j against s_j."""
    ep = ds.epoch.values
    k = min(k, ds.sizes["mode"])
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.8))
    ax[0].plot(ep, ds.asymmetry, color="C1", label=r"$\|W_p - W_p^T\| / \|W_p\|$")
    ax[0].plot(ep, ds.commutator_normalized, color="C0", label=r"$\|[\hat F, W_p]\| / \|\hat F\|\|W_p\|$")
    ax[0].set(title="asymmetry and commutator", xlabel="epoch", ylim=(0, None))
    ax[0].legend(fontsize=7)
    cmap = plt.get_cmap("viridis")
    for j in range(k):
        ax[1].plot(ep, ds.alignment.values[:, j], color=cmap(j / max(k - 1, 1)), lw=1)
    ax[1].plot(ep, aligned_fraction(ds, k), "k--", lw=2, label=f"mean of top {k}")
    ax[1].set(title=r"alignment $u_j^T W_p u_j / \|W_p u_j\|$, top modes of $\hat F$", xlabel="epoch",
              ylim=(-1.05, 1.05))
    ax[1].legend(fontsize=7)
    s = np.clip(ds.s.values, 1e-12, None)
    picks = sorted({0, len(ep) // 4, len(ep) // 2, len(ep) - 1})
    for n, t in enumerate(picks):
        ax[2].semilogy(s[t] / s[t, 0], color=cmap(n / max(len(picks) - 1, 1)), label=f"epoch {ep[t]:.1f}")
    ax[2].set(title=r"eigenvalues of $\hat F$ / largest", xlabel="j", ylim=(1e-6, 2))
    ax[2].legend(fontsize=7)
    if "p_rayleigh" in ds or ("F" in ds and "Wp" in ds):
        p = rayleigh_p(ds)[-1]
        ok = p > 0
        ax[3].loglog(s[-1][ok], p[ok], ".", ms=4, label=r"$p_j = u_j^T W_p u_j > 0$")
        slope, icpt = p_fit(s[-1], p, k)
        if np.isfinite(slope):
            xs = np.geomspace(s[-1][ok].min(), s[-1][ok].max(), 20)
            ax[3].loglog(xs, np.exp(icpt) * xs ** slope, "k--", lw=1, label=f"fit on top {k}: slope {slope:.2f}")
            ax[3].loglog(xs, np.exp(icpt) * xs[0] ** (slope - 0.5) * xs ** 0.5, ":", color="0.5", lw=1,
                         label="slope 1/2 (Eq. 18)")
        ax[3].set(title=f"p_j against s_j at epoch {ep[-1]:.1f}", xlabel="$s_j$")
        ax[3].legend(fontsize=7)
    fig.suptitle(f"Real network{': ' + name if name else ''} ({describe(ds)}): the Fig. 2 pattern")
    c = json.loads(ds.attrs["config"])
    depth = {(1, 1, 1, 1): 10}.get(tuple(c.get("stage_sizes", (2, 2, 2, 2))), 18)
    note(fig, f"ResNet-{depth} width {c['width']}, {ds.attrs.get('n_train', '?')} training images, batch {c['batch_size']}, "
         f"lr {c['lr']}, wd {c['wd']}, loss {c['loss']}; F̂ = EMA of E[ffᵀ] over predictor inputs (ρ = {c['rho']})")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def fig_runs(runs: dict):
    """Runs side by side over training: loss, feature spread, effective rank of F̂, and accuracies.

    `runs` maps a name to `(log, eval)` from `load_run`; runs without a log appear in the accuracies only.
    """
    many = len(runs) > 12  # then the accuracy panel is wider and its labels vertical, so that they stay legible
    w = min(2.0, len(runs) / 15) if many else 1.0
    fig, ax = plt.subplots(1, 4, figsize=(13 + 4 * w, 4.8 if many else 3.9), gridspec_kw={"width_ratios": (1, 1, 1, w)})
    d = None
    style = seed_styles([name for name, (ds, _) in runs.items() if ds is not None])
    for name, (ds, _) in runs.items():
        if ds is None:
            continue
        ep, d = ds.epoch.values, ds.sizes["mode"]
        st = {k: v for k, v in style[name].items() if k != "label"}
        ax[0].plot(ep, ds.loss, label=style[name]["label"], **st)
        ax[1].semilogy(ep, np.clip(ds.z_std.values, 1e-8, None), **st)
        ax[2].plot(ep, ds.effective_rank, **st)
    ax[0].set(title="BYOL loss", xlabel="epoch")
    ax[0].legend(fontsize=7)
    if d:
        ax[1].axhline(1 / np.sqrt(d), color="0.5", ls=":", lw=1)
    ax[1].set(title=f"batch std of normalized projections ($1/\\sqrt{{{d}}}$ dotted)", xlabel="epoch")
    ax[2].set(title=r"effective rank of $\hat F$", xlabel="epoch")
    names = list(runs)
    x = np.arange(len(names))
    for off, key, label in ((-0.2, "knn_acc", "kNN (k = 200)"), (0.2, "linear_acc", "linear probe")):
        acc = [100 * runs[k][1].get(key, np.nan) for k in names]
        ax[3].bar(x + off, acc, width=0.4, label=label)
    ax[3].axhline(10, color="0.5", ls=":", lw=1)
    ax[3].set_xticks(x, names, rotation=90 if many else 30, ha="center" if many else "right", fontsize=7)
    ax[3].set_xlim(-0.6, len(names) - 0.4)
    ax[3].set(title="test accuracy % (chance 10 dotted)", ylim=(0, None))
    ax[3].legend(fontsize=7)
    fig.suptitle("Real networks: which variants collapse")
    fig.tight_layout()
    return fig


def results_table(runs: dict, k: int = 10) -> str:
    """Markdown table, one row per run: method, epochs, accuracies, collapse and alignment indicators
    (first → last record)."""
    rows = ["| run | method | epochs | kNN % | linear % | eff. rank of F̂ | z std | asymmetry | "
            f"alignment (top {k}) |",
            "|---|---|---|---|---|---|---|---|---|"]

    def pct(e, key):
        return f"{100 * e[key]:.1f}" if key in e else "–"

    def span(v, f=".2f"):
        v = np.asarray(v, float)
        return "–" if not np.isfinite(v).all() else f"{v[0]:{f}} → {v[-1]:{f}}"

    for name, (ds, ev) in runs.items():
        if ds is None:
            base = " (eval-mode BN, initial running stats: no normalization)" if "batch_bn_knn_acc" in ev else ""
            rows.append(f"| {name} | {describe(ds)}{base} | 0 | {pct(ev, 'knn_acc')} | {pct(ev, 'linear_acc')} "
                        "| – | – | – | – |")
            for pre, what in (("batch_bn_", "untrained network, batch-statistics BN"),
                              ("pixels_", "raw pixels (per-channel normalized)")):  # baselines
                if f"{pre}knn_acc" in ev or f"{pre}linear_acc" in ev:
                    rows.append(f"| {name} | {what} | 0 | {pct(ev, pre + 'knn_acc')} | {pct(ev, pre + 'linear_acc')} "
                                "| – | – | – | – |")
            continue
        wp = json.loads(ds.attrs["config"])["predictor"] not in ("none", "identity")  # Wp = I: nothing to measure
        rows.append(f"| {name} | {describe(ds)} | {ds.epoch.values[-1]:.0f} | {pct(ev, 'knn_acc')} | "
                    f"{pct(ev, 'linear_acc')} | {span(ds.effective_rank.values)} | {span(ds.z_std.values, '.4f')} | "
                    f"{span(ds.asymmetry.values) if wp else '–'} | {span(aligned_fraction(ds, k)) if wp else '–'} |")
    return "\n".join(rows) + "\n"
