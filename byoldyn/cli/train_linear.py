"""`byoldyn train-linear`: minibatch SGD of the linear BYOL model on sampled data (byoldyn.sampled).

A diverged run writes its result file (the saves up to the divergence, the status in its attributes) and
raises `RunFailed` (exit 1, one line).
"""

from __future__ import annotations

import json

from ..errors import RunFailed, as_flags, one_line, started
from ..io import lock_output
from .common import (add_directpred, add_out, add_progress, add_seed, add_variant, add_x64, begin, config_of,
    positive_int, progress, real, state_line)

__all__ = ["add_parser", "run"]

FLAGS = {"lr": "--lr", "lr_p": "--lr-p", "wd": "--wd", "wd_p": "--wd-p", "gamma_a": "--ema", "momentum": "--momentum",
         "rho": "--rho", "eps": "--eps", "freq": "--freq", "batch": "--batch", "sigma2": "--sigma2", "n1": "--n1",
         "n2": "--n2", "scale": "--scale", "predictor": "--predictor", "directpred_form": "--directpred-form"}


def add_parser(sub) -> None:
    """Add `train-linear` to the `byoldyn` subcommands `sub`."""
    from ..sampled import LOSSES, VIEWS

    p = sub.add_parser(
        "train-linear",
        help="train the linear model by minibatch SGD on sampled data and save observables",
        description="Train linear BYOL (W, Wp, Wa) by minibatch SGD on x ~ N(0, I) with additive augmentation "
        "noise N(0, sigma2 I) (THEORY.md sections 1, 10, 11). Discrete hyperparameters as practitioners write "
        "them; the equivalent flow (alpha_p, eta, beta, t) is stored too. Writes a netCDF file of the "
        "observables over steps and a summary PNG beside it.",
    )
    g = p.add_argument_group("optimizer (discrete)")
    g.add_argument("--lr", type=real, default=0.05, help="learning rate of W (default 0.05)")
    g.add_argument("--lr-p", type=real, default=None, help="learning rate of Wp (default: --lr, alpha_p = 1)")
    g.add_argument("--batch", type=positive_int, default=128, help="minibatch size (default 128)")
    g.add_argument("--exact", action="store_true", help="exact expectations instead of samples (Euclidean loss)")
    g.add_argument("--momentum", type=real, default=0.0, help="SGD momentum in [0, 1) (default 0)")
    g.add_argument("--wd", type=real, default=0.01, help="coupled weight decay (torch weight_decay) = eta (default 0.01)")
    g.add_argument("--wd-p", type=real, default=None, help="predictor weight decay (default: --wd)")
    g.add_argument("--ema", type=real, default=0.99, help="EMA momentum gamma_a in [0, 1] (default 0.99)")
    g = p.add_argument_group("model and loss")
    add_variant(g, no_ema="SimSiam: the target is W itself")
    g.add_argument("--loss", choices=LOSSES, default="euclidean", help="loss (default euclidean)")
    g.add_argument("--views", choices=VIEWS, default="one", help="one-view or symmetric two-view loss")
    add_directpred(g)
    g.add_argument("--sigma2", type=real, default=0.5, help="augmentation noise variance sigma^2 >= 0 (default 0.5)")
    g.add_argument("--n1", type=positive_int, default=16, help="input dimension n1 (default 16)")
    g.add_argument("--n2", type=positive_int, default=16, help="output dimension n2 (default 16)")
    g.add_argument("--scale", type=real, default=0.5, help="initial W, Wp entries ~ N(0, scale^2/fan_in) (default 0.5)")
    g = p.add_argument_group("run")
    g.add_argument("--steps", type=positive_int, default=4000, help="SGD steps (default 4000)")
    g.add_argument("--n-save", type=positive_int, default=100, help="number of saves; must divide --steps (default 100)")
    add_seed(g, "the initial state and the samples")
    add_x64(g)
    g = p.add_argument_group("output")
    add_out(g, "byoldyn-train-linear.nc",
            "result file (netCDF); the PNG is written beside it (default byoldyn-train-linear.nc)")
    add_progress(g)
    p.set_defaults(func=run)


class _Solution:
    """The fields of a solution that `simulation_dataset` reads."""

    def __init__(self, observed, ts, status, t_final, num_steps):
        self.observed, self.ts, self.status, self.t_final, self.num_steps = observed, ts, status, t_final, num_steps


def run(a) -> int:
    """Run `byoldyn train-linear` with the parsed flags `a`: 0 on success; `RunFailed` (exit 1) when it diverged."""
    begin(a, png=True)
    lock_output(a.out)  # a second run on the same --out is refused (issue 29 item 7)
    import jax
    import numpy as np
    from tqdm.auto import tqdm

    from ..integrate import SUCCEEDED
    from ..io import save_figure, save_netcdf
    from ..model import State
    from ..observables import standard
    from ..report import simulation_dataset, summary_figure
    from ..sampled import SGD, Setup, Source, to_flow, train

    if a.steps % a.n_save:
        raise ValueError(f"--n-save must divide --steps = {a.steps}, got {a.n_save}")
    with as_flags(FLAGS):
        sgd = SGD(lr=a.lr, lr_p=a.lr_p, wd=a.wd, wd_p=a.wd_p, gamma_a=a.ema, momentum=a.momentum, rho=a.rho,
                  eps=a.eps)
        setup = Setup(loss=a.loss, views=a.views, predictor=a.predictor, ema=not a.no_ema,
                      batch=None if a.exact else a.batch, freq=a.freq,
                      directpred_form=a.directpred_form)
        source = Source.isotropic(a.n1, a.sigma2)
        key = jax.random.PRNGKey(a.seed)
        k0, k1 = jax.random.split(key)
        state0 = State.random(k0, a.n1, a.n2, scale=a.scale)
        hyper, dt = to_flow(sgd)
    observe = standard(hyper, source.moments(), state0)
    # progress: train in chunks (one compile; the state carries over exactly, keys fold in the global step)
    chunks = min(a.n_save, 20)
    while a.n_save % chunks:
        chunks -= 1
    per = a.steps // chunks
    save_every = a.steps // a.n_save
    obs, steps_all, status, resume = [], [], SUCCEEDED, None
    started()
    for c in tqdm(range(chunks), desc="train-linear", unit="chunk", disable=not progress(a)):
        r = train(state0, sgd, source, k1, per, setup=setup, save_every=save_every, observe=observe, resume=resume)
        sl = slice(0 if c == 0 else 1, None)
        obs.append({k: np.asarray(v)[sl] for k, v in r.observed.items()})
        steps_all.append(np.asarray(r.steps)[sl])
        resume = r.final
        if int(r.status) != SUCCEEDED:
            status = int(r.status)
            break
    observed = {k: np.concatenate([o[k] for o in obs]) for k in obs[0]}
    steps = np.concatenate(steps_all)
    done = int(resume.step)  # steps taken (after a divergence: the last good one)
    sol = _Solution(observed, steps * float(dt), status, done * float(dt), done)
    config = config_of(a)
    config["flow"] = {"alpha_p": float(hyper.alpha_p), "eta": float(hyper.eta), "eta_p": float(hyper.eta_p),
                      "beta": float(hyper.beta), "dt_per_step": float(dt)}
    ds = simulation_dataset(sol, config)
    ds = ds.assign_coords(step=("time", steps))
    ds.attrs["source"] = "byoldyn train-linear: minibatch SGD of linear BYOL on sampled data (Tian, Chen & Ganguli 2021)"
    ds.attrs["flow"] = json.dumps(config["flow"])
    save_netcdf(ds, a.out)
    try:
        png = save_figure(summary_figure(ds), a.out.with_suffix(".png"), dpi=110)
    except OSError as e:  # the result is written: say so (a full disk, issue 29 item 2)
        raise RunFailed(f"{one_line(e)}; the result {a.out} was written") from None
    if status == SUCCEEDED:
        print(f"succeeded: {done} steps (t = {done * float(dt):g}); {state_line(ds, lambda i: '')}; "
              f"wrote {a.out} and {png}")
        return 0
    last = state_line(ds, lambda i: f"last finite save step {int(ds.step[i])}: ")
    raise RunFailed(f"train-linear {ds.attrs['status']} after step {done} (t = {done * float(dt):g}); {last}; "
                    f"wrote {a.out} and {png}")
