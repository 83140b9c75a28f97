"""The theory's observables measured on a real network during training (THEORY.md section 14).

Every `log_every` steps, `observe` reads F̂ (the EMA of E[ffᵀ] over the predictor inputs, Eq. 19) and
the predictor matrix Wp from a `TrainState` and evaluates the shared `byoldyn.observables` on them:
per-eigenvector alignment cos_j = u_jᵀ Wp u_j / ‖Wp u_j‖ (Fig. 2), asymmetry ‖Wp - Wpᵀ‖/‖Wp‖, the
scale-free commutator, spectra of F̂ and of sym(Wp), effective rank and surviving modes of F̂, and the
Fig. 7 analogue between target and online parameters (`wa_correlation`, `tau_hat` over all weights).
`RunLog` keeps the records and writes them as one labelled netCDF file atomically.

Wp is defined for the linear, DirectPred and DirectCopy predictors, is I for `predictor="none"`, and
is absent (NaN) for the two-layer MLP predictor.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import observables as obs
from ..errors import one_line
from ..io import save_netcdf
from .heads import predictor_matrix

__all__ = ["observe", "RunLog", "SCALARS"]

SCALARS = ("loss", "z_std", "h_std", "asymmetry", "commutator_normalized", "effective_rank", "n_modes",
           "norm_Wp", "lambda_min_sym_Wp", "wa_correlation", "tau_hat", "lr")


def _flat_dot(a, b):
    return sum(jnp.vdot(x.astype(jnp.float32), y.astype(jnp.float32))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@jax.jit
def _observe(corr, Wp, online, target):
    F = 0.5 * (corr + corr.T)
    s, cos = obs.eigen_alignment(F, Wp)
    spec_Wp = obs.spectrum_Wp(Wp)
    smax = jnp.max(s)
    oo, tt, to = _flat_dot(online, online), _flat_dot(target, target), _flat_dot(target, online)
    return dict(
        s=s, cos=cos, spec_Wp=spec_Wp,
        asymmetry=obs.asymmetry(Wp),
        commutator_normalized=obs.commutator_normalized(F, Wp),
        effective_rank=obs.effective_rank(F),
        n_modes=obs.n_modes(F / jnp.where(smax > 0, smax, 1.0), 1e-3),
        norm_Wp=jnp.sqrt(jnp.sum(Wp * Wp)),
        lambda_min_sym_Wp=spec_Wp[-1],
        wa_correlation=jnp.where(oo * tt > 0, to / jnp.sqrt(jnp.where(oo * tt > 0, oo * tt, 1.0)), 0.0),
        tau_hat=jnp.where(oo > 0, to / jnp.where(oo > 0, oo, 1.0), 0.0),
    )


def observe(state, predictor: str) -> dict[str, np.ndarray]:
    """The observables of one `TrainState` as numpy arrays (see the module docstring).

    **Returns:** scalars (`SCALARS` minus the step metrics) and per-mode arrays `s` (eigenvalues of F̂,
    decreasing), `cos` (alignment of Wp with each eigenvector), `spec_Wp`, plus the matrices `F` and `Wp`.
    """
    F = state.corr
    if predictor == "none":
        Wp = jnp.eye(F.shape[0], dtype=F.dtype)
    else:
        Wp = predictor_matrix(state.pred) if predictor != "mlp" else None
    nan = Wp is None
    if nan:
        Wp = jnp.full_like(F, jnp.nan)
    out = {k: np.asarray(v) for k, v in _observe(F, Wp.astype(F.dtype), state.online, state.target).items()}
    if nan:
        s = np.asarray(obs.spectrum_F(F))
        out.update(s=s, effective_rank=np.asarray(obs.effective_rank(F)))
    out["F"] = np.asarray(F)
    out["Wp"] = np.asarray(Wp)
    return out


class RunLog:
    """Instrumentation records of one run, written to netCDF (`byoldyn.io.save_netcdf`, atomic).

    Dimensions: `step` (the optimizer step after which the record was taken), `mode` (eigen-index of F̂,
    decreasing eigenvalue), `i`, `j` (matrix indices of F̂ and Wp). Attributes: the run's config (JSON).
    `RunLog.load(path, upto)` reopens a log on resume, keeping records with step <= `upto`.
    """

    def __init__(self, path, attrs: dict | None = None, records: list | None = None):
        self.path = Path(path)
        self.attrs = dict(attrs or {})
        self.records = list(records or [])

    def append(self, step: int, epoch: float, values: dict) -> None:
        self.records.append(dict(values, step=int(step), epoch=float(epoch)))

    def dataset(self):
        import xarray as xr

        r = self.records
        steps = np.array([x["step"] for x in r], np.int64)
        data = {"epoch": ("step", np.array([x["epoch"] for x in r]))}
        for k in SCALARS:
            if r and k in r[0]:
                data[k] = ("step", np.array([float(x[k]) for x in r]))
        for k in ("s", "cos", "spec_Wp"):
            if r and k in r[0]:
                data[k] = (("step", "mode"), np.stack([x[k] for x in r]).astype(np.float32))
        for k in ("F", "Wp"):
            if r and k in r[0]:
                data[k] = (("step", "i", "j"), np.stack([x[k] for x in r]).astype(np.float32))
        ds = xr.Dataset(data, coords={"step": steps}, attrs=self.attrs)
        desc = {"s": "eigenvalues of F̂ (decreasing)", "cos": "u_jᵀ Wp u_j / ‖Wp u_j‖ per eigenvector u_j of F̂",
                "spec_Wp": "eigenvalues of (Wp + Wpᵀ)/2", "F": "F̂, EMA of E[f fᵀ] over predictor inputs",
                "Wp": "predictor matrix (y = Wp f)", "loss": "mean BYOL loss since the previous record",
                "z_std": "batch std of normalized projections (≈ 1/√d healthy, 0 collapsed)",
                "h_std": "batch std of normalized backbone features"}
        for k, v in desc.items():
            if k in ds:
                ds[k].attrs["description"] = v
        return ds

    def save(self) -> Path:
        return save_netcdf(self.dataset(), self.path)

    @classmethod
    def load(cls, path, upto: int, attrs: dict | None = None) -> "RunLog":
        import xarray as xr

        path = Path(path)
        if not path.exists():
            return cls(path, attrs)
        try:
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                ds = ds.load()
        except Exception as e:  # noqa: BLE001 - h5py / h5netcdf / xarray raise many types for a damaged file
            raise ValueError(f"cannot read the training log {str(path)!r} (truncated or corrupt: "
                             f"{one_line(e)}); use another --out or --no-resume") from None
        if "step" not in ds.dims or "epoch" not in ds:
            raise ValueError(f"{str(path)!r} is not a byoldyn training log (no step / epoch)")
        recs = []
        for n in range(ds.sizes["step"]):
            step = int(ds.step[n])
            if step > upto:
                continue
            rec = {"step": step}
            for k, v in ds.data_vars.items():
                rec[k] = v.values[n] if v.ndim > 1 else v.values[n].item()
            recs.append(rec)
        return cls(path, attrs if attrs is not None else dict(ds.attrs), recs)
