"""`byoldyn simulate`: integrate the Lemma 1 matrix flow (Eqs. 2-4) and save its observables."""

from __future__ import annotations

import math

from ..errors import RunFailed, one_line, started
from ..io import lock_output
from .common import (
    DEFAULTS,
    add_hyper,
    add_out,
    add_predictor_params,
    add_progress,
    add_seed,
    add_variant,
    add_x64,
    begin,
    check_memory,
    command,
    config_of,
    n_save_int,
    positive_int,
    predictor_from_flags,
    progress,
    real,
    state_line,
)

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """Add `simulate` to the `byoldyn` subcommands `sub`."""
    p = sub.add_parser(
        "simulate",
        help="integrate the Lemma 1 matrix flow (Eqs. 2-4) and save observables",
        description="Integrate the full-matrix linear BYOL flow (Lemma 1, Eqs. 2-4 of Tian, Chen & Ganguli "
        "2021) from a random initial state with Wa(0) = 0 on isotropic data (X = I, X' = sigma2 I). "
        "Writes a netCDF file of the observables over time and a summary PNG beside it.",
    )
    g = p.add_argument_group("hyperparameters (ratios to the online learning rate)")
    add_hyper(g, real)
    g = p.add_argument_group("data and model")
    g.add_argument("--sigma2", type=real, default=DEFAULTS["sigma2"], help="augmentation variance sigma^2 >= 0, X' = sigma2 I")
    g.add_argument("--n1", type=positive_int, default=16, help="input dimension n1")
    g.add_argument("--n2", type=positive_int, default=16, help="output dimension n2")
    g.add_argument("--scale", type=real, default=DEFAULTS["scale"], help="initial scale: W, Wp entries ~ N(0, scale^2/fan_in)")
    add_seed(g, "the initial state")
    g = p.add_argument_group("variant")
    add_variant(g, no_ema="SimSiam: the target is W itself (no EMA)",
                no_stop_grad="gradient through the target branch too (Theorem 2; implies --no-ema)",
                help="learned Wp (Eq. 2), symmetrized flow (Assumption 3), Wp = I, or DirectPred / DirectCopy "
                "(section 10) (default learned)")
    add_predictor_params(g, "ode")
    g = p.add_argument_group("integration")
    g.add_argument("--t1", type=real, default=DEFAULTS["t1"], help="final time in flow units")
    g.add_argument("--n-save", type=n_save_int, default=201, metavar="N",
                   help="N saved times, evenly spaced from t = 0 to t1 including both ends, N >= 2")
    g.add_argument("--rtol", type=real, default=1e-6, help="relative tolerance of the adaptive solver")
    g.add_argument("--atol", type=real, default=1e-9, help="absolute tolerance of the adaptive solver")
    g.add_argument("--dt", type=real, default=None,
                   help="fixed-step mode: Euler = full-batch GD with step dt (default: adaptive steps)")
    add_x64(g)
    g = p.add_argument_group("output")
    add_out(g, "byoldyn-simulate.nc", "result file (netCDF); the PNG is written beside it")
    add_progress(g)
    command(p, run)


def run(a) -> int:
    """Run `byoldyn simulate` with the parsed flags `a`: 0 on success; `RunFailed` (exit 1) when it diverged."""
    begin(a, png=True)
    lock_output(a.out)  # a second run on the same --out is refused
    import jax
    import jax.numpy as jnp

    from .. import Data, Hyper, State, Variant, simulate
    from ..io import save_figure, save_netcdf
    from ..observables import standard
    from ..report import simulation_dataset, summary_figure

    if a.dt is not None and not (math.isfinite(a.dt) and a.dt > 0):
        raise ValueError(f"--dt must be a finite number > 0, got {a.dt:g}")
    if a.dt is not None and math.isfinite(a.t1) and a.t1 > 0:  # the saves 0, t1/(N-1), ...: whole numbers of steps
        k = a.t1 / (a.n_save - 1) / a.dt
        if abs(k - round(k)) > 1e-9 * max(1.0, k) or round(k) < 1:
            raise ValueError(f"--dt must divide the save interval --t1/(--n-save - 1) = {a.t1 / (a.n_save - 1):g}, "
                             f"got --dt {a.dt:g}")
    # the solver's stages; the observables (F and its eigenvectors) of one save, or of every saved state where
    # the states are saved first (fixed steps, a Wp derived from F̂: `byoldyn.integrate`); the saves on the host
    state, n2 = 2 * a.n2 * a.n1 + a.n2 * a.n2, a.n2
    predictor = predictor_from_flags(a, "ode")  # the object carries the flags' ε, form, beta_F
    saved = a.n_save if a.dt is not None or predictor.direct else 0
    check_memory(f"simulate --n1 {a.n1} --n2 {a.n2} --n-save {a.n_save}",
                 12 * state + max(saved, 1) * 4 * n2 * n2 + saved * state + a.n_save * (3 * n2 + 16),
                 8 if a.x64 else 4)
    hyper = Hyper(alpha_p=a.alpha_p, eta=a.eta, beta=a.beta, eta_p=a.eta_p)
    data = Data.isotropic(a.n1, a.sigma2)
    state0 = State.random(jax.random.PRNGKey(a.seed), a.n1, a.n2, scale=a.scale)
    variant = Variant(ema=not (a.no_ema or a.no_stop_grad), stop_grad=not a.no_stop_grad, predictor=predictor)
    ts = jnp.linspace(0.0, a.t1, a.n_save)
    started()
    sol = simulate(state0, hyper, data, a.t1, ts=ts, rtol=a.rtol, atol=a.atol, dt=a.dt,
                   observe=standard(hyper, data, state0), progress=a.dt is None and progress(a), variant=variant)
    ds = simulation_dataset(sol, config_of(a))
    save_netcdf(ds, a.out)
    try:
        png = save_figure(summary_figure(ds), a.out.with_suffix(".png"), dpi=110)
    except OSError as e:  # the result is written: say so (a full disk)
        raise RunFailed(f"{one_line(e)}; the result {a.out} was written") from None
    status, t_final, n = str(ds.attrs["status"]), float(ds.attrs["t_final"]), int(ds.attrs["num_steps"])
    if status == "succeeded":
        print(f"succeeded: t = {t_final:g}, {n} steps; {state_line(ds, lambda i: '')}; wrote {a.out} and {png}")
        return 0
    last = state_line(ds, lambda i: f"last finite save t = {float(ds.time[i]):g}: ")
    what = {"max_steps": "ran out of solver steps (max_steps)",
            "no_step_accepted": "accepted no solver step (the initial step was rejected)"}.get(status, status)
    raise RunFailed(f"simulate {what} after t = {t_final:g} ({n} steps); {last}; wrote {a.out} and {png}")
