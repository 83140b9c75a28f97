"""The theory's observables measured on a real network during training (THEORY.md section 14).

Every `log_every` steps, `observe` reads F̂ (the EMA of E[ffᵀ] over the predictor inputs, Eq. 19) and
the predictor matrix Wp from a `TrainState` and evaluates the registry `byoldyn.observables.REGISTRY`
on them (`OBSERVED`: names, long names, units and functions all come from there): the per-eigenvector
alignment cos_j = u_jᵀ Wp u_j / ‖Wp u_j‖ (`alignment`, Fig. 2), along each u_j the predictor's `p_rayleigh`
u_jᵀ Wp u_j, the `two_view_ratio` u_jᵀ E[z_target z_onlineᵀ] u_j / s_j (the mode theory's τ/κ_j,
docs/anisotropic_modes.md A2) and the `gram` u_jᵀ W Wᵀ u_j of the projector's last layer (Theorem 1),
`asymmetry` ‖Wp - Wpᵀ‖/‖Wp‖, the scale-free commutator, the spectra `s` of F̂ and `p` of sym(Wp), effective
rank and surviving modes of F̂ (s_j > `observables.SURVIVAL` x max_k s_k: F̂ has no natural scale), and the Fig. 7 analogue between
target and online parameters (`wa_correlation`, `tau_hat` over all weights). `RunLog` keeps the records
and writes them as one labelled netCDF file atomically; logs written before the registry (`cos`,
`spec_Wp`) are read under the registry's names (`observables.LEGACY_NAMES`).

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
from .heads import predictor_matrix, projector_gram

__all__ = ["observe", "RunLog", "SCALARS", "OBSERVED"]

#: what `observe` computes from F̂, Wp and the parameters (names of `observables.REGISTRY`)
OBSERVED = ("s", "alignment", "p", "p_rayleigh", "two_view_ratio", "gram", "asymmetry", "commutator_normalized",
            "effective_rank", "n_modes", "norm_Wp", "lambda_min_sym_Wp", "wa_correlation", "tau_hat")
#: the scalars of a record: the step metrics of the training loop and the scalar observables
SCALARS = ("loss", "z_std", "h_std", "asymmetry", "commutator_normalized", "effective_rank", "n_modes",
           "norm_Wp", "lambda_min_sym_Wp", "wa_correlation", "tau_hat", "lr")
_MATRICES = ("F", "Wp")


def _flat_dot(a, b):
    return sum(jnp.vdot(x.astype(jnp.float32), y.astype(jnp.float32))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@jax.jit
def _observe(corr, cross, Wp, online, target):
    # the parameter pytrees stand for W (online) and Wa (target): ‖W‖², ⟨Wa, W⟩, ‖Wa‖² over all weights;
    # F̂ is E[z zᵀ] over augmented views (so F = F_views), G the Gram of the projector's last layer
    F = 0.5 * (corr + corr.T)
    q = obs.Inputs(F=F, F_views=F, F_cross=cross.astype(F.dtype), G=projector_gram(online).astype(F.dtype), Wp=Wp,
                   ww=_flat_dot(online, online), waw=_flat_dot(target, online), waa=_flat_dot(target, target),
                   relative=True)
    return obs.measure(OBSERVED, q)


def observe(state, predictor: str) -> dict[str, np.ndarray]:
    """The observables `OBSERVED` of one `TrainState` as numpy arrays (see the module docstring).

    **Returns:** the scalars, the per-mode arrays `s` (eigenvalues of F̂, decreasing), `alignment` (of Wp
    with each eigenvector) and `p` (eigenvalues of sym(Wp)), plus the matrices `F` and `Wp`. Without a
    predictor matrix (MLP) the observables of Wp are NaN; those of F̂ alone (`s`, `effective_rank`,
    `n_modes`) are measured.
    """
    F = state.corr
    if predictor in ("none", "identity"):  # "none": logs written before the shared vocabulary
        Wp = jnp.eye(F.shape[0], dtype=F.dtype)
    else:
        Wp = predictor_matrix(state.pred) if predictor != "mlp" else None
    if Wp is None:
        Wp = jnp.full_like(F, jnp.nan)
    out = {k: np.asarray(v) for k, v in _observe(F, state.cross, Wp.astype(F.dtype), state.online,
                                                 state.target).items()}
    out["F"] = np.asarray(F)
    out["Wp"] = np.asarray(Wp)
    return out


class RunLog:
    """Instrumentation records of one run, written to netCDF (`byoldyn.io.save_netcdf`, atomic).

    Dimensions: `step` (the optimizer step after which the record was taken), `mode` (eigen-index of F̂,
    decreasing eigenvalue), `i`, `j` (matrix indices of F̂ and Wp). Attributes: the run's config (JSON),
    the survival `threshold` (relative to the largest s_j); each variable's `long_name`, `units` from
    `observables.REGISTRY`.
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
        for k in OBSERVED:
            if obs.REGISTRY[k].per_mode and r and k in r[0]:
                data[k] = (("step", "mode"), np.stack([x[k] for x in r]).astype(np.float32))
        for k in _MATRICES:
            if r and k in r[0]:
                data[k] = (("step", "i", "j"), np.stack([x[k] for x in r]).astype(np.float32))
        ds = xr.Dataset(data, coords={"step": steps}, attrs=dict(self.attrs, threshold=obs.SURVIVAL))
        for k in ds.data_vars:
            if k in obs.REGISTRY:
                ds[k].attrs.update(obs.attrs(k))
        return ds

    def save(self) -> Path:
        return save_netcdf(self.dataset(), self.path)

    @classmethod
    def load(cls, path, upto: int, attrs: dict | None = None) -> RunLog:
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
                rec[obs.LEGACY_NAMES.get(k, k)] = v.values[n] if v.ndim > 1 else v.values[n].item()
            recs.append(rec)
        return cls(path, attrs if attrs is not None else dict(ds.attrs), recs)
