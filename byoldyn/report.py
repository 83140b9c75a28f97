"""Labelled results (xarray) and summary plots of a single simulation."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from . import observables as ob
from .integrate import STATUS_NAMES, Solution

__all__ = ["simulation_dataset", "summary_figure"]


def simulation_dataset(sol: Solution, config: dict) -> xr.Dataset:
    """An `xarray.Dataset` over `time` (and `mode`) of the observables saved by `observables.standard`, with
    the `long_name` and `units` of `observables.REGISTRY` (an unregistered key keeps its name as long name)."""
    if sol.observed is None:
        raise ValueError("simulation_dataset needs a Solution saved with observe=observables.standard(...)")
    data_vars = {}
    for k, v in sol.observed.items():
        v = np.asarray(v)
        kind = ob.REGISTRY[k].kind if k in ob.REGISTRY else ("scalar", "mode", "matrix")[min(max(v.ndim - 1, 0), 2)]
        dims = {"scalar": ("time",), "mode": ("time", "mode"), "matrix": ("time", "i", "j")}[kind]
        if v.ndim != len(dims):
            raise ValueError(f"observable {k!r} has shape {v.shape}; its registry kind {kind!r} needs {len(dims)} axes")
        data_vars[k] = xr.Variable(dims, v, attrs=ob.attrs(k) if k in ob.REGISTRY else {"long_name": k})
    status = int(np.asarray(sol.status))
    attrs = {
        "status": STATUS_NAMES[status],
        "t_final": float(np.asarray(sol.t_final)),
        "num_steps": int(np.asarray(sol.num_steps)),
        "threshold": float(config.get("threshold", ob.SURVIVAL)),  # survival, for n_modes
        "config": json.dumps(config, sort_keys=True),
        "source": "byoldyn simulate: Lemma 1 flow of Tian, Chen & Ganguli (2021)",
    }
    ds = xr.Dataset(data_vars, coords={"time": np.asarray(sol.ts)}, attrs=attrs)
    if "mode" in ds.dims:
        ds = ds.assign_coords(mode=np.arange(ds.sizes["mode"]))
    return ds


def summary_figure(ds: xr.Dataset):
    """Six panels over time: spectra of F and of sym(Wp), alignment, collapse, asymmetry/commutator, Theorem 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = json.loads(ds.attrs.get("config", "{}"))
    t = ds.time.values
    fig, ax = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    cmap = plt.get_cmap("viridis")
    nm = ds.sizes.get("mode", 0)
    for j in range(nm):
        c = cmap(j / max(nm - 1, 1))
        ax[0, 0].semilogy(t, np.clip(ds.s.values[:, j], 1e-12, None), color=c, lw=1)
        ax[0, 1].plot(t, ds.p.values[:, j], color=c, lw=1)
        ax[0, 2].plot(t, ds.alignment.values[:, j], color=c, lw=1)
    ax[0, 0].set(title="eigenvalues $s_j$ of $F = WXW^T$", xlabel="t", ylim=(1e-8, None))
    ax[0, 1].set(title="eigenvalues of sym($W_p$)", xlabel="t")
    ax[0, 2].set(title=r"alignment $u_j^T W_p u_j / \|W_p u_j\|$", xlabel="t", ylim=(-1.05, 1.05))
    ax[1, 0].plot(t, ds.norm_W, label=r"$\|W\|_F$")
    ax[1, 0].plot(t, ds.effective_rank, label="effective rank of F")
    thr = ds.attrs.get("threshold", ob.SURVIVAL)
    ax[1, 0].plot(t, ds.n_modes, "--", label=f"modes with $s_j > {thr:g}$")
    ax[1, 0].set(title="collapse indicators", xlabel="t")
    ax[1, 0].legend(fontsize=8)
    ax[1, 1].plot(t, ds.asymmetry, label=r"$\|W_p - W_p^T\| / \|W_p\|$")
    ax[1, 1].plot(t, ds.commutator_normalized, label=r"$\|[F, W_p]\| / \|F\|\|W_p\|$")
    ax[1, 1].plot(t, ds.wa_correlation, label=r"corr($W_a$, $W$)")
    ax[1, 1].plot(t, ds.tau_hat, ":", label=r"$\hat\tau$")
    ax[1, 1].set(title="asymmetry, commutator, EMA", xlabel="t")
    ax[1, 1].legend(fontsize=8)
    ax[1, 2].semilogy(t, np.clip(ds.theorem1_residual.values, 1e-18, None))
    ax[1, 2].set(title="Theorem 1 residual (relative)", xlabel="t")
    keys = ("alpha_p", "eta", "eta_p", "beta", "sigma2", "n1", "n2", "no_ema", "no_stop_grad", "predictor", "seed")
    fig.suptitle("byoldyn simulate: " + ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg)
                 + f"  [{ds.attrs.get('status', '?')}]", fontsize=10)
    return fig
