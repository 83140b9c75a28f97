"""`byoldyn train-linear`: minibatch SGD of the linear BYOL model on sampled data (byoldyn.sampled).

A diverged run writes its result file (the saves up to the divergence, the status in its attributes) and
raises `RunFailed` (exit 1, one line).
"""

from __future__ import annotations

import json

from ..errors import RunFailed, one_line, started
from ..io import lock_output
from .common import (
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
    int_from,
    n_save_int,
    positive_int,
    predictor_from_flags,
    progress,
    real,
    state_line,
)

__all__ = ["add_parser", "run"]

# the library's names that differ from the flags (the others are the flags' own: `lr_p` -> `--lr-p`)
PARAMS = {"gamma_a": "--ema"}
# the step counter is int32 (float32 mode): a larger --steps would overflow it
MAX_STEPS = 2 ** 31 - 1


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
    g.add_argument("--lr", type=real, default=0.05, help="learning rate of W")
    g.add_argument("--lr-p", type=real, default=None, help="learning rate of Wp (default: --lr, alpha_p = 1)")
    g.add_argument("--batch", type=positive_int, default=128, help="minibatch size")
    g.add_argument("--exact", action="store_true", help="exact expectations instead of samples (Euclidean loss or IsoLoss)")
    g.add_argument("--momentum", type=real, default=0.0, help="SGD momentum in [0, 1)")
    g.add_argument("--wd", type=real, default=0.01, help="coupled weight decay (torch weight_decay) = eta")
    g.add_argument("--wd-p", type=real, default=None, help="predictor weight decay (default: --wd)")
    g.add_argument("--ema", type=real, default=0.99, help="EMA momentum gamma_a in [0, 1]")
    g = p.add_argument_group("model and loss")
    add_variant(g, no_ema="SimSiam: the target is W itself")
    g.add_argument("--loss", choices=LOSSES, default="euclidean",
                   help="loss: Eq. 1, the normalised one, or IsoLoss (Eq. 1 with the output error sent to W x1 without "
                   "Wpᵀ, docs/isoloss.md)")
    g.add_argument("--views", choices=VIEWS, default="one", help="one-view or symmetric two-view loss")
    add_predictor_params(g, "discrete")
    g.add_argument("--sigma2", type=real, default=0.5, help="augmentation noise variance sigma^2 >= 0")
    g.add_argument("--n1", type=positive_int, default=16, help="input dimension n1")
    g.add_argument("--n2", type=positive_int, default=16, help="output dimension n2")
    g.add_argument("--scale", type=real, default=0.5, help="initial W, Wp entries ~ N(0, scale^2/fan_in)")
    g = p.add_argument_group("run")
    g.add_argument("--steps", type=int_from(1, f"an integer in [1, {MAX_STEPS}] (the int32 step counter)", MAX_STEPS),
                   default=4000, help="SGD steps")
    g.add_argument("--n-save", type=n_save_int, default=101, metavar="N",
                   help="N saved steps, evenly spaced from step 0 to --steps including both ends, N >= 2; N - 1 must "
                   "divide --steps")
    add_seed(g, "the initial state and the samples")
    add_x64(g)
    g = p.add_argument_group("output")
    add_out(g, "byoldyn-train-linear.nc", "result file (netCDF); the PNG is written beside it")
    add_progress(g)
    command(p, run, PARAMS)


class _Solution:
    """The fields of a solution that `simulation_dataset` reads."""

    def __init__(self, observed, ts, status, t_final, num_steps):
        self.observed, self.ts, self.status, self.t_final, self.num_steps = observed, ts, status, t_final, num_steps


def run(a) -> int:
    """Run `byoldyn train-linear` with the parsed flags `a`: 0 on success; `RunFailed` (exit 1) when it diverged."""
    begin(a, png=True)
    lock_output(a.out)  # a second run on the same --out is refused
    import jax
    import numpy as np
    from tqdm.auto import tqdm

    from ..integrate import SUCCEEDED
    from ..io import save_figure, save_netcdf
    from ..model import State
    from ..observables import standard
    from ..report import simulation_dataset, summary_figure
    from ..sampled import SGD, Setup, Source, to_flow, train

    intervals = a.n_save - 1  # between the N saved steps
    if a.steps % intervals:
        raise ValueError(f"--n-save - 1 must divide --steps = {a.steps}: the saves are evenly spaced steps, got "
                         f"--n-save {a.n_save}")
    # a minibatch's samples, views and activations with their gradients; the state, optimizer and F's
    # eigenvectors; the saved observables on the device and on the host
    batch, n1, n2 = 0 if a.exact else a.batch, a.n1, a.n2
    check_memory(f"train-linear --batch {a.batch} --n1 {n1} --n2 {n2} --n-save {a.n_save}",
                 batch * (6 * n1 + 16 * n2) + 8 * (2 * n2 * n1 + n2 * n2) + 4 * n2 * n2
                 + 2 * a.n_save * (3 * n2 + 16), 8 if a.x64 else 4)
    sgd = SGD(lr=a.lr, lr_p=a.lr_p, wd=a.wd, wd_p=a.wd_p, gamma_a=a.ema, momentum=a.momentum)
    setup = Setup(loss=a.loss, views=a.views, predictor=predictor_from_flags(a, "discrete"), ema=not a.no_ema,
                  batch=None if a.exact else a.batch)
    source = Source.isotropic(a.n1, a.sigma2)
    key = jax.random.PRNGKey(a.seed)
    k0, k1 = jax.random.split(key)
    state0 = State.random(k0, a.n1, a.n2, scale=a.scale)
    hyper, dt = to_flow(sgd)
    observe = standard(hyper, source.moments(), state0)
    # progress: train in chunks (one compile; the state carries over exactly, keys fold in the global step)
    chunks = min(intervals, 20)
    while intervals % chunks:
        chunks -= 1
    per = a.steps // chunks
    save_every = a.steps // intervals
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
    except OSError as e:  # the result is written: say so (a full disk)
        raise RunFailed(f"{one_line(e)}; the result {a.out} was written") from None
    if status == SUCCEEDED:
        print(f"succeeded: {done} steps (t = {done * float(dt):g}); {state_line(ds, lambda i: '')}; "
              f"wrote {a.out} and {png}")
        return 0
    last = state_line(ds, lambda i: f"last finite save step {int(ds.step[i])}: ")
    raise RunFailed(f"train-linear {ds.attrs['status']} after step {done} (t = {done * float(dt):g}); {last}; "
                    f"wrote {a.out} and {png}")
