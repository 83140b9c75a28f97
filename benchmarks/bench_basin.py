#!/usr/bin/env python
"""Time a 512 x 512 basin map of Eqs. 11-12 (fixed τ) against numpy and scipy peers.

    python benchmarks/bench_basin.py [--grid 512] [--t1 200] [--dt 0.05] [--tiny]

Work: every start (p, s) of a grid over p in [-0.4, 1.2], s in [0, 1] is integrated to t1 with
classical RK4 (equal steps dt) under τ = 1, κ = 1.5, α_p = 1, η = 0.1, then classified
collapsed if s < 1e-4. Rows (same work, same script):

- byoldyn `phase.basin_map`, float64 and float32 (one jitted XLA loop over the whole grid);
- numpy: the same RK4 on the whole grid as vectorised numpy arrays (the peer a user would write);
- scipy: `solve_ivp(RK45, rtol=1e-8)` per start, timed on 200 starts and extrapolated.

Every row's collapsed mask is compared with the float64 byoldyn mask. Results are written
atomically to benchmarks/results/basin.json. `--tiny` (a smoke run of the whole script, as in the test
suite) runs a 16 x 16 grid to t1 = 2 and writes to the temporary directory unless --out is given.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

import byoldyn as bd  # noqa: E402
from byoldyn.flows.modes import ModePST, pst_field  # noqa: E402

TAU, KAPPA, ALPHA_P, ETA = 1.0, 1.5, 1.0, 0.1


def numpy_field(p, s):
    g = TAU - KAPPA * p
    return ALPHA_P * s * g - ETA * p, 2.0 * s * (p * g - ETA)


def numpy_rk4(p, s, n, dt):
    for _ in range(n):
        a1, b1 = numpy_field(p, s)
        a2, b2 = numpy_field(p + dt / 2 * a1, s + dt / 2 * b1)
        a3, b3 = numpy_field(p + dt / 2 * a2, s + dt / 2 * b2)
        a4, b4 = numpy_field(p + dt * a3, s + dt * b3)
        p, s = p + dt / 6 * (a1 + 2 * a2 + 2 * a3 + a4), s + dt / 6 * (b1 + 2 * b2 + 2 * b3 + b4)
    return p, s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", type=int, default=512)
    ap.add_argument("--t1", type=float, default=200.0)
    ap.add_argument("--dt", type=float, default=0.05)
    ap.add_argument("--out", default=None, help="default benchmarks/results/basin.json")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke run of the whole script)")
    a = ap.parse_args(argv)
    if a.tiny:
        a.grid, a.t1, a.dt = 16, 2.0, 0.1
    a.out = a.out or (os.path.join(tempfile.gettempdir(), "byoldyn-bench-tiny", "basin.json") if a.tiny
                      else "benchmarks/results/basin.json")
    P, S = np.meshgrid(np.linspace(-0.4, 1.2, a.grid), np.linspace(0.0, 1.0, a.grid))
    n = int(np.ceil(a.t1 / a.dt))
    hyper = bd.Hyper(alpha_p=ALPHA_P, eta=ETA)
    rows = {}
    ref = None
    for name, dtype in (("byoldyn_f64", jnp.float64), ("byoldyn_f32", jnp.float32)):
        y0 = ModePST(jnp.asarray(P, dtype), jnp.asarray(S, dtype), jnp.full(P.shape, TAU, dtype))
        run = lambda: bd.phase.basin_map(pst_field, y0, a.t1, args=(hyper, KAPPA, False), dt=a.dt)  # noqa: E731
        t = time.perf_counter()
        run()
        first = time.perf_counter() - t
        times = []
        for _ in range(3):
            t = time.perf_counter()
            _, mask = run()
            times.append(time.perf_counter() - t)
        ref = mask if ref is None else ref
        rows[name] = dict(wall_s=min(times), first_call_s=first, collapsed_fraction=float(mask.mean()),
                          mismatch_vs_f64=int(np.sum(mask != ref)))
        print(f"{name}: {min(times):.3f} s (first call {first:.2f} s), collapsed {mask.mean():.4f}", flush=True)
    t = time.perf_counter()
    pn, sn = numpy_rk4(P.copy(), S.copy(), n, a.t1 / n)
    wall = time.perf_counter() - t
    mask = ~(np.abs(sn) >= 1e-4)
    rows["numpy_rk4"] = dict(wall_s=wall, collapsed_fraction=float(mask.mean()), mismatch_vs_f64=int(np.sum(mask != ref)))
    print(f"numpy vectorised RK4: {wall:.3f} s", flush=True)
    idx = np.random.default_rng(0).choice(P.size, min(200, P.size), replace=False)
    t = time.perf_counter()
    ends = [solve_ivp(lambda t, y: numpy_field(*y), (0, a.t1), [P.flat[i], S.flat[i]], rtol=1e-8, atol=1e-12).y[:, -1]
            for i in idx]
    wall = (time.perf_counter() - t) * P.size / len(idx)
    mask_s = np.array([not abs(e[1]) >= 1e-4 for e in ends])
    rows["scipy_rk45_per_start"] = dict(wall_s=wall, extrapolated_from=len(idx),
                                        mismatch_vs_f64_on_sample=int(np.sum(mask_s != ref.flat[idx])))
    print(f"scipy solve_ivp per start: {wall:.1f} s (extrapolated from {len(idx)})", flush=True)
    for r in rows.values():
        r["speedup_of_byoldyn_f32"] = r["wall_s"] / rows["byoldyn_f32"]["wall_s"]
    lanes = P.size * n * 4
    res = dict(args=vars(a), rk4_steps=n, field_evaluations=lanes, rows=rows,
               devices=[str(d) for d in jax.devices()], jax=jax.__version__)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = f"{a.out}.tmp.{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(res, fh, indent=2)
    os.replace(tmp, a.out)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
