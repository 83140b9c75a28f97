"""Sampled training next to the ODE from the same initial state: where the ODE is right (THEORY.md section 1)."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .. import observables as ob
from ..integrate import simulate
from ..model import State
from .data import Source
from .dictionary import SGD, to_flow
from .train import Setup, flow_moments, train

__all__ = ["Comparison", "compare", "DISTANCES"]

DISTANCES = ("s", "p", "norm_W", "W", "Wp", "Wa")


@dataclass(frozen=True)
class Comparison:
    """Distances between sampled runs and the ODE over time (numpy arrays).

    - `steps`, `ts`: SGD step and flow time of each save, (T,).
    - `distance[name]`: (seeds, T) relative distances, for `name` in `DISTANCES`:
      `s`, `p`: ‖x − x_ode‖₂ / ‖x_ode‖₂ of the spectra of F = W X Wᵀ and of sym(Wp);
      `norm_W`: |‖W‖ − ‖W_ode‖| / ‖W_ode‖; `W`, `Wp`, `Wa`: ‖A − A_ode‖_F / ‖A_ode‖_F.
    - `sampled`, `ode`: the observables `s`, `p`, `norm_W`, `alignment` of both, (seeds, T, ...) and (T, ...).
    - `status`: (seeds,) sampled-run status codes.
    """

    steps: np.ndarray
    ts: np.ndarray
    distance: dict
    sampled: dict
    ode: dict
    status: np.ndarray

    def max_distance(self, name: str = "s") -> float:
        """The largest over time of the seed-mean distance `name`."""
        return float(np.max(np.mean(self.distance[name], axis=0)))


#: what both runs record (names of `observables.REGISTRY`)
OBSERVED = ("s", "p", "norm_W", "alignment", "W", "Wp", "Wa")


def _observe(data):
    def observe(t, st: State):
        return ob.measure(OBSERVED, ob.Inputs(W=st.W, Wp=st.Wp, Wa=st.Wa, data=data))
    return observe


def _rel(a, b, axes):
    num = np.sqrt(np.sum((a - b) ** 2, axis=axes))
    den = np.sqrt(np.sum(b ** 2, axis=axes))
    return num / np.maximum(den, 1e-300)


def compare(
    state0: State,
    sgd: SGD,
    source: Source,
    key,
    steps: int,
    *,
    setup: Setup | None = None,
    seeds: int = 1,
    save_every: int | None = None,
    rtol: float = 1e-9,
    atol: float = 1e-12,
) -> Comparison:
    """Run `seeds` sampled runs (`train`, vmapped over keys) and the ODE (`simulate` with `to_flow(sgd)`)
    from `state0`, saving at the same flow times, and measure their distance over time.

    Only the Euclidean loss with a learned, symmetric or identity predictor has an ODE (Lemma 1);
    `ema_form` and momentum enter the ODE only through the dictionary (their O(lr) effects are part
    of the measured distance). `ValueError` otherwise. With `setup.center` the ODE is the centered flow,
    Lemma 1 on `source.centered_moments(setup.batch)` (docs/centering.md).
    """
    setup = Setup() if setup is None else setup
    if setup.loss != "euclidean":
        raise ValueError(f"setup.loss must be 'euclidean' to compare with the ODE (Eq. 1), got {setup.loss!r}")
    if setup.predictor.direct:  # Wp = g(F̂): no Lemma 1 flow
        raise ValueError(f"setup.predictor must be learned, symmetric or identity to compare with the ODE, "
                         f"got {setup.predictor.name!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    data = flow_moments(source, setup)
    observe = _observe(data)
    keys = jax.random.split(key, seeds)
    run = jax.vmap(lambda k: train(state0, sgd, source, k, steps, setup=setup, save_every=save_every,
                                   observe=observe))(keys)
    hyper, dt = to_flow(sgd)
    ts = np.asarray(run.ts[0])
    sol = simulate(state0, hyper, data, float(ts[-1]), ts=jnp.asarray(ts), ema=setup.ema,
                   predictor=setup.predictor, rtol=rtol, atol=atol)
    st = sol.states
    o = jax.vmap(observe)(jnp.asarray(ts), st)
    ode = {k: np.asarray(v) for k, v in o.items()}
    smp = {k: np.asarray(v) for k, v in run.observed.items()}
    dist = {
        "s": _rel(smp["s"], ode["s"][None], -1),
        "p": _rel(smp["p"], ode["p"][None], -1),
        "norm_W": np.abs(smp["norm_W"] - ode["norm_W"][None]) / np.maximum(ode["norm_W"][None], 1e-300),
    }
    for k in ("W", "Wp", "Wa"):
        dist[k] = _rel(smp[k], ode[k][None], (-2, -1))
    keep = ("s", "p", "norm_W", "alignment")
    return Comparison(np.asarray(run.steps[0]), ts, dist, {k: smp[k] for k in keep}, {k: ode[k] for k in keep},
                      np.asarray(run.status))
