"""Phase portraits and basin maps of the mode systems (THEORY.md section 7; Figs. 3, 4, 10).

- `rk4`: a fixed-step classical Runge-Kutta solve (`byoldyn.stepper`) of an elementwise field over a whole
  grid of initial conditions at once (one XLA loop; every grid point is one lane, no adaptive lockstep),
  returning the end point or a saved path.
- `basin_map`: integrate a grid of starts together and classify each as collapsed or not.
- `portrait`: draw a 2-D field: flow lines, nullclines, fixed points coloured by stability,
  sample trajectories and the invariant parabola.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .stepper import fixed_solve, mask
from .validate import check_finite

__all__ = ["rk4", "basin_map", "portrait", "STABLE_COLOR", "UNSTABLE_COLOR"]

STABLE_COLOR, UNSTABLE_COLOR = "red", "green"  # the paper's Fig. 3 convention


@eqx.filter_jit
def _rk4(field, y0, args, n_save, n_per, dt, max_norm=np.inf):
    """`n_save` intervals of `n_per` RK4 steps over lanes (every entry one lane), checked at each save (the
    stepper's blow-up rule): `(y1, path)`, NaN from a lane's blow-up on."""
    r = fixed_solve(lambda y: field(y, *args), y0, dt, (n_save, n_per), method="rk4", max_norm=max_norm,
                    batch_ndim=None, check="save")
    return mask(r.y, r.alive[-1]), mask(r.ys, r.alive)


def rk4(field: Callable, y0, t1: float, *, args: tuple = (), dt: float = 0.05, n_save: int | None = None,
        max_norm: float = np.inf):
    """Classical RK4 for `dy/dt = field(y, *args)` from t = 0 with equal steps of about `dt`.

    `field` must act elementwise or per member (any field of `byoldyn.flows`), so `y0` may be a
    pytree of arrays of any shape (a grid of initial conditions; the leaves are broadcast to one shape).
    Every entry is a lane: a lane that turns non-finite or exceeds `max_norm` (checked at each save time:
    the blow-up rule of `byoldyn.stepper`) is NaN from there on and does not affect the others.

    **Returns:** y(t1); or, with `n_save`, `(ts, path)`: the times 0, t1/n_save, ..., t1 and the
    states there (a leading time axis of length n_save + 1).
    """
    if not (np.isfinite(t1) and t1 > 0 and np.isfinite(dt) and dt > 0):
        raise ValueError(f"t1 and dt must be finite and > 0, got t1={t1!r}, dt={dt!r}")
    if n_save is not None and (int(n_save) < 1):
        raise ValueError(f"n_save must be a positive integer, got {n_save!r}")
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    k = 1 if n_save is None else int(n_save)
    per = max(1, int(np.ceil(t1 / dt / k)))
    leaves, tree = jax.tree.flatten(y0)
    y0 = jax.tree.unflatten(tree, jnp.broadcast_arrays(*leaves))
    dtype = leaves[0].dtype
    y1, path = _rk4(field, y0, args, k, per, jnp.asarray(t1 / (k * per), dtype), float(max_norm))
    if n_save is None:
        return y1
    path = jax.tree.map(lambda a0, a: jnp.concatenate([a0[None], a]), y0, path)
    return np.linspace(0.0, t1, k + 1), path


def basin_map(field: Callable, y0, t1: float, *, args: tuple = (), dt: float = 0.05,
              collapsed: Callable | None = None, threshold: float = 1e-4):
    """Classify every start in the grid `y0` as collapsed or not after integrating to `t1`.

    **Arguments:**

    - `field`, `y0`, `args`, `dt`: as `rk4` (e.g. `pst_field` with `ModePST` grids).
    - `collapsed`: `collapsed(y_final) -> bool array`; default: |s| < `threshold` (s = w² for a
      `ModeState`; p for states without s, such as `ParabolaState` or a bare p array).

    **Returns:** `(y_final, collapsed_mask)`.

    Example (the cubic flow Eq. 16 with τ = 1, κ = 1.5 on a 3 x 8 grid of η and p(0): the first surviving p(0) of
    each row is the first grid point above the collapse boundary p*_−, which grows with η, Obs#4):

    >>> import numpy as np, byoldyn as bd
    >>> from byoldyn.flows.modes import cubic_field
    >>> eta, p0 = np.array([[0.03], [0.05], [0.1]]), np.tile(np.linspace(0.02, 0.16, 8), (3, 1))
    >>> _, dead = bd.phase.basin_map(cubic_field, p0, 500.0, args=(bd.Hyper(eta=eta), 1.5, 1.0))
    >>> np.round(p0[0, (~dead).argmax(axis=1)], 4).tolist(), np.round(np.asarray(bd.theory.p_star(
    ...     1.0, 1.5, eta[:, 0])[0]), 4).tolist()
    ([0.04, 0.06, 0.14], [0.0315, 0.0544, 0.1225])
    """
    for leaf in jax.tree.leaves(y0):
        check_finite("y0", leaf)
    y1 = rk4(field, y0, t1, args=args, dt=dt)
    if collapsed is None:
        scale = y1.s if hasattr(y1, "s") else getattr(y1, "p", y1)
        mask = ~(jnp.abs(scale) >= threshold)  # a NaN lane counts as collapsed
    else:
        mask = collapsed(y1)
    return y1, np.asarray(mask)


def portrait(ax, field2d: Callable, xlim: tuple[float, float], ylim: tuple[float, float], *, grid: int = 41,
             fixed_points=(), trajectories=(), parabola_alpha_p: float | None = None,
             nullclines: bool = True, labels=("p", "s")):
    """Draw the phase portrait of a 2-D field `field2d(x, y) -> (dx, dy)` (numpy-vectorised).

    - flow lines (blue streamlines) on a `grid` x `grid` mesh over `xlim` x `ylim`;
    - nullclines dx = 0 (solid grey) and dy = 0 (dotted grey);
    - `fixed_points`: iterable of `(x, y, stable)`, drawn red if stable and green if not;
      a fixed line is given as arrays x, y with a per-point bool array `stable`;
    - `trajectories`: iterable of `(xs, ys)` arrays, drawn in black with a start marker;
    - `parabola_alpha_p`: draw the invariant parabola s = p²/α_p dashed (Eq. 14).
    """
    x = np.linspace(*xlim, grid)
    y = np.linspace(*ylim, grid)
    X, Y = np.meshgrid(x, y)
    U, V = (np.asarray(a, dtype=float) for a in field2d(X, Y))
    speed = np.hypot(U, V)
    ax.streamplot(X, Y, U, V, color="tab:blue", density=1.1, linewidth=0.7, arrowsize=0.8)
    if nullclines:
        ax.contour(X, Y, U, levels=[0.0], colors="0.45", linewidths=0.9)
        ax.contour(X, Y, V, levels=[0.0], colors="0.45", linewidths=0.9, linestyles=":")
    if parabola_alpha_p is not None:
        ax.plot(x, x * x / parabola_alpha_p, "k--", lw=1.0)
    for xs, ys in trajectories:
        ax.plot(xs, ys, "k-", lw=1.2)
        ax.plot(xs[0], ys[0], "ko", ms=3)
    for px, py, stable in fixed_points:
        px, py, st = np.broadcast_arrays(np.asarray(px, float), np.asarray(py, float), np.asarray(stable, bool))
        ok = np.isfinite(px) & np.isfinite(py)
        for flag, color in ((True, STABLE_COLOR), (False, UNSTABLE_COLOR)):
            sel = ok & (st == flag)
            ax.plot(px[sel], py[sel], "o", color=color, ms=6 if px.size < 5 else 2.5, zorder=5,
                    markeredgecolor="k" if px.size < 5 else color, markeredgewidth=0.5)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    return speed
