#!/usr/bin/env python
"""Throughput of `byoldyn.simulate` on a batch of linear-BYOL configurations, against SciPy.

    python benchmarks/bench_simulate.py [--members 1024] [--n 32] [--t1 50] [--rtol 1e-5]
        [--loop-members 32] [--out benchmarks/results/simulate.json] [--tiny]

`--tiny` (a smoke run of every row and diagnostic, as in the test suite): B = 4, n = 3, t1 = 2,
written to the temporary directory unless --out is given.

Problem: B = --members configurations of the Lemma 1 flow (n1 = n2 = n, isotropic data
X = I, X' = sigma2 I, EMA target, stop-gradient, learned predictor), integrated from t = 0
to t1 with adaptive steps at the same rtol/atol for every method. Hyperparameters vary
across members (alpha_p ~ U[0.5, 2], eta = eta_p ~ U[0, 0.05], beta ~ U[0.2, 2],
sigma2 ~ U[0.1, 1]); initial states are `byoldyn.State.random(key_i, n, n, scale=--scale)`
with Wa(0) = 0.

Methods (all float64 unless marked):

- byoldyn: `byoldyn.simulate_batch` over (state0, hyper, data) (each member its own Tsit5 + PID
  solve in a `lax.map`, members split over all JAX devices with `shard_map`; the script exposes
  one CPU device per core), `ts=[t1]`. The first call (compile + one run) is timed separately;
  the timed runs are the median of max(--repeats, 5). Also a float32 row, and the lockstep
  `jax.jit(jax.vmap(simulate))` for comparison.
- scipy (a): `solve_ivp(RK45)` on the whole batch as ONE vectorised numpy ODE (np.matmul on
  stacked (B, n, n) arrays, state flattened). NB: one step size for all members, and the error
  norm is the RMS over all B members, so it is not the same controller as a per-member solve.
- scipy (b): `solve_ivp(RK45)` per configuration in a Python loop, timed on --loop-members
  members and extrapolated linearly to B (wall_B = wall_loop * B / loop_members).
- reference: `solve_ivp(DOP853, rtol=1e-10, atol=1e-12)` per configuration on the first
  --ref-members members; every method's final W is compared with it.

Step and flop accounting (stated, not inferred):

- accepted steps: byoldyn `Solution.num_steps`; scipy `len(sol.t) - 1` (no t_eval).
- attempted steps (accepted + rejected): byoldyn does not return rejected steps, so the
  same diffeqsolve (same term, Tsit5, PIDController, t0, t1, y0) is run once more through
  diffrax directly to read `stats["num_steps"]`; its accepted count is checked against
  byoldyn's. scipy RK45: attempts = (nfev - 2) / 6 (1 eval at t0 + 1 in the initial step
  selection, then 6 per attempt, FSAL).
- vector-field evaluations: Tsit5 (FSAL) 6 per attempt + 3 (2 in diffrax's initial step
  selection, 1 for the FSAL stage at t0); scipy: nfev.
- flops per vector-field evaluation (isotropic data; matmul = 2 m n k; every scalar*matrix,
  add, subtract counted once):
      Wp@W, Wp^T@G, G@W^T             3 * 2 n2^2 n1
      G = x*Wa - kappa*(Wp W)         3 n2 n1
      dW = Wp^T G - eta W             2 n2 n1
      dWp = alpha (G W^T) - eta_p Wp  3 n2^2
      dWa = beta (W - Wa)             2 n2 n1
      F = 6 n2^2 n1 + 7 n2 n1 + 3 n2^2        (n = 32: F = 206,848)
  The Runge-Kutta stage combinations and the error norm are NOT counted.
- useful flops of a batch = sum over members of evals_i * F. Under `vmap` the while loop runs
  in lockstep until the slowest member is done and every lane evaluates the field on every
  iteration, so the executed flops are B * (6 max_i attempts_i + 3) * F; the ratio is reported
  as the lockstep efficiency.
- GFLOP/s = useful flops / wall time. It is divided by this machine's batched n x n matmul
  throughput: `jax.jit(jnp.matmul)` on (B, n, n) x (B, n, n), best of --mm-repeats, in the same
  dtype. Also reported: the in-cache matmul peak over all cores (a chain of matmuls on (8, n, n)
  blocks, one per CPU device), which is the compute ceiling for data that stays in cache.

Diagnostics (skip with --no-diagnostics): alternative batch drivers of the same
`byoldyn.simulate` (sequential `lax.map` and one `lax.map` per CPU core), a decomposition of
the per-iteration cost of the vmapped diffrax loop on --diag-members members (event on/off,
trivial linear field, field alone), and a hand-written fused Tsit5 (this file only, not the
package) that shows how much of the time is diffrax's stage machinery.

The JSON with every number is written atomically (tmp file + os.replace) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=1024, help="batch size B")
    p.add_argument("--n", type=int, default=32, help="n1 = n2 = n")
    p.add_argument("--t1", type=float, default=50.0)
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--atol", type=float, default=1e-8)
    p.add_argument("--scale", type=float, default=0.5, help="State.random scale of W and Wp")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loop-members", type=int, default=32, help="members timed in the scipy per-config loop")
    p.add_argument("--ref-members", type=int, default=32, help="members integrated with the DOP853 reference")
    p.add_argument("--repeats", type=int, default=2, help="timed repeats (after a warm-up) of the byoldyn vmap rows")
    p.add_argument("--scipy-repeats", type=int, default=1, help="timed repeats of scipy (a) (one run is ~30 s at B=1024)")
    p.add_argument("--mm-repeats", type=int, default=20)
    p.add_argument("--diag-members", type=int, default=256, help="members in the vmap cost decomposition")
    p.add_argument("--no-diagnostics", action="store_true")
    p.add_argument("--no-float32", action="store_true")
    p.add_argument("--devices", type=int, default=None,
                   help="CPU devices for the per-core driver (default: usable cores); sets "
                        "--xla_force_host_platform_device_count before jax is imported")
    p.add_argument("--out", default=None, help="default benchmarks/results/simulate.json")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke run of the whole script)")
    a = p.parse_args(argv)
    if a.tiny:
        a.members, a.n, a.t1, a.loop_members, a.ref_members = 4, 3, 2.0, 2, 2
        a.repeats, a.scipy_repeats, a.mm_repeats, a.diag_members = 1, 1, 2, 4
        a.devices = a.devices or 2
    a.out = a.out or (os.path.join(tempfile.gettempdir(), "byoldyn-bench-tiny", "simulate.json") if a.tiny
                      else "benchmarks/results/simulate.json")
    return a


ARGS = parse_args()
NCORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
NDEV = ARGS.devices or NCORES
if NDEV > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    # Only affects this process; single-device jit/vmap code runs on device 0 as before.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={NDEV}").strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

jax.config.update("jax_enable_x64", True)  # float64 throughout, for a matched-accuracy comparison

import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import byoldyn as bd  # noqa: E402
from byoldyn.flows.matrix import vector_field  # noqa: E402

try:  # the package's divergence check (the stepper's blow-up rule), as used by simulate's event
    from byoldyn.stepper import blown as _blown
except ImportError:  # pragma: no cover - private helper; keep a copy if it moves
    def _blown(y, max_norm):
        leaves = jax.tree.leaves(y)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))
        big = jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in leaves]))
        return ~finite | (big > max_norm)


def log(*a):
    print(*a, flush=True)


def flops_per_eval(n1: int, n2: int) -> int:
    """Exact flop count of one `vector_field` evaluation (isotropic, EMA, stop-grad, learned Wp)."""
    return 6 * n2 * n2 * n1 + 7 * n2 * n1 + 3 * n2 * n2


TSIT5_EVALS_PER_ATTEMPT = 6  # FSAL: stage 1 of a step is the last stage of the previous one
DIFFRAX_EXTRA_EVALS = 3      # 2 in _select_initial_step + 1 FSAL stage at t0


def timeit(fn, repeats):
    """Median and all wall times of `fn()` (which must block)."""
    ts = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), ts, out


def block(x):
    return jax.block_until_ready(x)


# ----------------------------------------------------------------------------------------------
# Problem
# ----------------------------------------------------------------------------------------------

def build_problem(B, n, scale, seed):
    rng = np.random.default_rng(seed)
    hp = dict(
        alpha_p=rng.uniform(0.5, 2.0, B),
        eta=rng.uniform(0.0, 0.05, B),
        beta=rng.uniform(0.2, 2.0, B),
        sigma2=rng.uniform(0.1, 1.0, B),
    )
    hyper = bd.Hyper(hp["alpha_p"], hp["eta"], hp["beta"])  # eta_p = eta (Lemma 1)
    data = bd.Data.isotropic(n, hp["sigma2"], x=np.ones(B))
    keys = jax.random.split(jax.random.PRNGKey(seed), B)
    state0 = jax.vmap(lambda k: bd.State.random(k, n, n, scale=scale))(keys)
    return hp, hyper, data, state0


def cast(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if eqx.is_array(a) and jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def take(tree, idx):
    return jax.tree.map(lambda a: a[idx] if eqx.is_array(a) else a, tree)


# ----------------------------------------------------------------------------------------------
# byoldyn drivers
# ----------------------------------------------------------------------------------------------

def byoldyn_single(t1, rtol, atol):
    """One member: the public API, final W only."""
    def one(s, h, d):
        sol = bd.simulate(s, h, d, t1, ts=jnp.asarray([t1], s.W.dtype), rtol=rtol, atol=atol)
        return sol.states.W[-1], sol.status, sol.num_steps
    return one


def diffrax_single(t1, rtol, atol, *, event=True, field=None):
    """The same diffeqsolve as byoldyn's adaptive mode, returning diffrax's step statistics."""
    field = field or (lambda t, y, a: vector_field(y, a[0], a[1]))

    def one(s, h, d):
        dt = s.W.dtype
        ev = diffrax.Event(lambda t, y, args, **kw: _blown(y, 1e8)) if event else None
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), diffrax.Tsit5(), jnp.asarray(0.0, dt), jnp.asarray(t1, dt), None, s,
            args=(h, d), saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=100_000, throw=False, event=ev)
        st = sol.stats
        return sol.ys.W[-1], st["num_steps"], st["num_accepted_steps"], st["num_rejected_steps"]
    return one


def vmap_driver(one):
    return jax.jit(jax.vmap(one))


def map_driver(one):
    """Sequential over members inside one XLA program (no lockstep, cache-resident state)."""
    return jax.jit(lambda *a: jax.lax.map(lambda x: one(*x), a, batch_size=1))


class ShardedMap:
    """One sequential `lax.map` per CPU device (`pmap`), members split evenly (padded)."""

    def __init__(self, one, ndev):
        self.ndev = ndev
        self.f = jax.pmap(lambda *a: jax.lax.map(lambda x: one(*x), a, batch_size=1))

    def _split(self, args):
        B = jax.tree.leaves(args)[0].shape[0]
        pad = (-B) % self.ndev

        def r(a):
            if not eqx.is_array(a):
                return a
            if pad:
                a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)])
            return a.reshape((self.ndev, -1) + a.shape[1:])
        return B, jax.tree.map(r, args)

    def lower_compile(self, *args):
        _, a = self._split(args)
        return self.f.lower(*a).compile()

    def __call__(self, *args, compiled=None):
        B, a = self._split(args)
        out = (compiled or self.f)(*a)
        return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:])[:B], out)


class BatchDriver:
    """The package's batch path, `byoldyn.simulate_batch`: lax.map per member, shard_map over devices."""

    def __init__(self, t1, rtol, atol):
        self.t1, self.rtol, self.atol = t1, rtol, atol

    def __call__(self, s, h, d):
        sol = bd.simulate_batch(s, h, d, self.t1, ts=jnp.asarray([self.t1], s.W.dtype), rtol=self.rtol, atol=self.atol)
        return sol.states.W[:, -1], sol.status, sol.num_steps


def run_driver(name, driver, args, repeats, *, warmup=True):
    """Compile (timed separately), warm up once, then time `repeats` runs."""
    t = time.perf_counter()
    if isinstance(driver, BatchDriver):  # compiled on the first call (compile_s includes one run)
        block(driver(*args))
        call = lambda: block(driver(*args))  # noqa: E731
    elif isinstance(driver, ShardedMap):
        compiled = driver.lower_compile(*args)
        call = lambda: block(driver(*args, compiled=compiled))  # noqa: E731
    else:
        compiled = driver.lower(*args).compile()
        call = lambda: block(compiled(*args))  # noqa: E731
    compile_s = time.perf_counter() - t
    warm_s = None
    if warmup:
        warm_s, _, _ = timeit(call, 1)
    med, ts, out = timeit(call, repeats)
    warm = "no warm-up" if warm_s is None else f"warm-up {warm_s:.3f} s"
    log(f"  {name}: compile {compile_s:.2f} s, {warm}, runs {[round(x, 3) for x in ts]} s")
    return dict(compile_s=compile_s, warmup_s=warm_s, wall_s=med, runs_s=ts), out


# ----------------------------------------------------------------------------------------------
# SciPy
# ----------------------------------------------------------------------------------------------

def numpy_rhs(hp_idx, n1, n2):
    """Vectorised numpy field for members `hp_idx` (dict of (b,) arrays); y = [W, Wp, Wa] flattened."""
    b = len(hp_idx["alpha_p"])
    col = lambda v: np.asarray(v, np.float64).reshape(b, 1, 1)  # noqa: E731
    alpha, eta, beta = col(hp_idx["alpha_p"]), col(hp_idx["eta"]), col(hp_idx["beta"])
    eta_p = eta
    x = col(np.ones(b))
    kappa = x + col(hp_idx["sigma2"])
    sW, sP = b * n2 * n1, b * n2 * n2

    def rhs(t, y):
        W = y[:sW].reshape(b, n2, n1)
        Wp = y[sW:sW + sP].reshape(b, n2, n2)
        Wa = y[sW + sP:].reshape(b, n2, n1)
        out = np.empty_like(y)
        dW = out[:sW].reshape(b, n2, n1)
        dWp = out[sW:sW + sP].reshape(b, n2, n2)
        dWa = out[sW + sP:].reshape(b, n2, n1)
        G = x * Wa - kappa * np.matmul(Wp, W)
        np.matmul(Wp.transpose(0, 2, 1), G, out=dW)
        dW -= eta * W
        np.matmul(G, W.transpose(0, 2, 1), out=dWp)
        dWp *= alpha
        dWp -= eta_p * Wp
        np.subtract(W, Wa, out=dWa)
        dWa *= beta
        return out
    return rhs


def pack(W, Wp, Wa):
    return np.concatenate([np.asarray(W).ravel(), np.asarray(Wp).ravel(), np.asarray(Wa).ravel()])


def unpack_W(y, b, n1, n2):
    return y[: b * n2 * n1].reshape(b, n2, n1)


def sub_hp(hp, idx):
    return {k: np.asarray(v)[idx] for k, v in hp.items()}


def scipy_member(hp, s0, i, t1, method, rtol, atol, n1, n2):
    f = numpy_rhs(sub_hp(hp, [i]), n1, n2)
    y0 = pack(s0["W"][i], s0["Wp"][i], s0["Wa"][i])
    sol = solve_ivp(f, (0.0, t1), y0, method=method, rtol=rtol, atol=atol)
    return sol


# ----------------------------------------------------------------------------------------------
# Matmul throughput
# ----------------------------------------------------------------------------------------------

def matmul_throughput(B, n, dtype, repeats):
    k1, k2 = jax.random.split(jax.random.PRNGKey(123))
    A = jax.random.normal(k1, (B, n, n), dtype)
    C = jax.random.normal(k2, (B, n, n), dtype)
    f = jax.jit(jnp.matmul).lower(A, C).compile()
    block(f(A, C))
    _, ts, _ = timeit(lambda: block(f(A, C)), repeats)
    fl = 2 * n ** 3 * B
    return dict(best_gflops=fl / min(ts) / 1e9, median_gflops=fl / float(np.median(ts)) / 1e9,
                best_s=min(ts), median_s=float(np.median(ts)), flops=fl)


def incache_peak(n, dtype, ndev, repeats=5, b=8, chain=512):
    """All-core in-cache matmul rate: on each device, `chain` dependent (b, n, n) matmuls."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(7))
    A = jax.random.normal(k1, (ndev, b, n, n), dtype)
    C = (jax.random.normal(k2, (ndev, b, n, n), dtype) / np.sqrt(n)).astype(dtype)
    f = jax.pmap(lambda A, C: jax.lax.fori_loop(0, chain, lambda i, X: jnp.matmul(X, C), A))
    block(f(A, C))
    _, ts, _ = timeit(lambda: block(f(A, C)), repeats)
    fl = 2 * n ** 3 * b * chain * ndev
    return dict(best_gflops=fl / min(ts) / 1e9, median_gflops=fl / float(np.median(ts)) / 1e9, devices=ndev)


# ----------------------------------------------------------------------------------------------
# Diagnostics: a hand-written fused Tsit5 (NOT part of the package)
# ----------------------------------------------------------------------------------------------

def _tsit5_tableau():
    from diffrax._solver.tsit5 import _tsit5_tableau as tb  # same coefficients as diffrax.Tsit5
    return [list(map(float, r)) for r in tb.a_lower], list(map(float, tb.b_error))


def fused_tsit5(field, y0, t1, rtol, atol, max_steps=100_000, max_norm=1e8):
    """Adaptive Tsit5 with the stages unrolled (only nonzero tableau entries), FSAL, RMS error
    norm, and diffrax's I-controller (safety 0.9, factor in [0.2, 10], 0.9 after a rejection,
    exponent 1/5) and initial step; stops a member whose state blows up (like byoldyn's event).
    Returns (y, accepted, rejected)."""
    A, BERR = _tsit5_tableau()
    dt = jax.tree.leaves(y0)[0].dtype
    t1 = jnp.asarray(t1, dt)

    def comb(y, h, coefs, ks):
        pairs = [(c, k) for c, k in zip(coefs, ks) if c != 0.0]

        def leaf(*ls):
            base, rest = (ls[0], ls[1:]) if y is not None else (None, ls)
            acc = None
            for (c, _), l in zip(pairs, rest):
                acc = c * l if acc is None else acc + c * l
            return h * acc if base is None else base + h * acc
        return jax.tree.map(leaf, *(([y] if y is not None else []) + [k for _, k in pairs]))

    def rms(tree):
        ls = jax.tree.leaves(tree)
        return jnp.sqrt(sum(jnp.sum(l * l) for l in ls) / sum(l.size for l in ls))

    f0 = field(y0)
    scale = jax.tree.map(lambda y: atol + jnp.abs(y) * rtol, y0)
    d0 = rms(jax.tree.map(jnp.divide, y0, scale))
    d1 = rms(jax.tree.map(jnp.divide, f0, scale))
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = jnp.where(small, 1e-6, 0.01 * d0 / jnp.where(small, 1.0, d1))
    f1 = field(jax.tree.map(lambda y, k: y + h0 * k, y0, f0))
    d2 = rms(jax.tree.map(lambda a, b, s: (a - b) / s, f1, f0, scale)) / h0
    md = jnp.maximum(d1, d2)
    h = jnp.minimum(100 * h0, jnp.where(md <= 1e-15, jnp.maximum(1e-6, h0 * 1e-3), (0.01 / md) ** 0.2)).astype(dt)

    def cond(c):
        t, _, _, _, na, nr, bad = c
        return (t < t1) & (na + nr < max_steps) & ~bad

    def body(c):
        t, y, k0, h, na, nr, bad = c
        h = jnp.minimum(h, t1 - t)
        ks = [k0]
        for row in A:
            yi = comb(y, h, row, ks)
            ks.append(field(yi))
        y1 = yi  # Tsit5 is FSAL: the last stage point is the new state
        err = comb(None, h, BERR, ks)
        e = rms(jax.tree.map(lambda er, a, b: er / (atol + jnp.maximum(jnp.abs(a), jnp.abs(b)) * rtol), err, y, y1))
        keep = e < 1
        fac = jnp.clip(0.9 * (1 / e) ** 0.2, jnp.where(keep, 1.0, 0.2), jnp.where(keep, 10.0, 0.9))
        fac = jnp.where(jnp.isfinite(fac), fac, 0.2)
        sel = lambda a, b: jax.tree.map(lambda p, q: jnp.where(keep, p, q), a, b)  # noqa: E731
        t_new = jnp.where(keep, jnp.where(h >= t1 - t, t1, t + h), t)
        return (t_new, sel(y1, y), sel(ks[-1], k0), (h * fac).astype(dt),
                na + keep.astype(jnp.int32), nr + (~keep).astype(jnp.int32), keep & _blown(y1, max_norm))

    c = (jnp.asarray(0.0, dt), y0, f0, h, jnp.int32(0), jnp.int32(0), jnp.bool_(False))
    _, y, _, _, na, nr, _ = jax.lax.while_loop(cond, body, c)
    return y, na, nr


def fused_single(t1, rtol, atol):
    def one(s, h, d):
        y, na, nr = fused_tsit5(lambda y: vector_field(y, h, d), s, t1, rtol, atol)
        return y.W, na, nr
    return one


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------

def rel_err(W, Wref):
    W = np.asarray(W, np.float64)
    num = np.linalg.norm((W - Wref).reshape(len(Wref), -1), axis=1)
    den = np.linalg.norm(Wref.reshape(len(Wref), -1), axis=1)
    return dict(max=float(np.max(num / den)), median=float(np.median(num / den)))


def env_info():
    info = dict(
        python=sys.version.split()[0], platform=platform.platform(), machine=platform.machine(),
        cpu=None, usable_cores=NCORES, jax=jax.__version__, jaxlib=getattr(jax.lib, "__version__", None),
        diffrax=diffrax.__version__, equinox=eqx.__version__, numpy=np.__version__, scipy=scipy.__version__,
        byoldyn=getattr(bd, "__version__", None), devices=[str(d) for d in jax.devices()],
        XLA_FLAGS=os.environ.get("XLA_FLAGS"),
        env={k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))},
    )
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import threadpoolctl
        info["threadpoolctl"] = threadpoolctl.threadpool_info()
    except ImportError:
        info["threadpoolctl"] = "threadpoolctl not installed"
    return info


def main():
    a = ARGS
    B, n, t1, rtol, atol = a.members, a.n, a.t1, a.rtol, a.atol
    n1 = n2 = n
    F = flops_per_eval(n1, n2)
    T0 = time.perf_counter()
    res = dict(args=vars(a), env=env_info(), flops_per_eval=F,
               flops_formula="F = 6 n2^2 n1 + 7 n2 n1 + 3 n2^2 per vector-field evaluation; "
                             "Tsit5 evals = 6 (accepted+rejected) + 3; scipy evals = nfev",
               rows={}, diagnostics={}, notes=[])
    e = res["env"]
    log(f"# byoldyn simulate benchmark: B={B}, n1=n2={n}, t1={t1}, rtol={rtol}, atol={atol}, scale={a.scale}")
    log(f"cpu: {e['cpu']} ({NCORES} usable cores); jax {e['jax']}, diffrax {e['diffrax']}, numpy {e['numpy']}, scipy {e['scipy']}")
    log(f"env: {e['env']}  XLA_FLAGS={e['XLA_FLAGS']}")
    if isinstance(e["threadpoolctl"], list):
        for p in e["threadpoolctl"]:
            log(f"threadpool: {p.get('internal_api')} {p.get('version')} {p.get('architecture')} "
                f"threads={p.get('num_threads')} ({p.get('filepath')})")
    else:
        log(f"threadpool: {e['threadpoolctl']}")
    log(f"flops per vector-field evaluation F = 6 n^3 + 10 n^2 = {F}")

    hp, hyper, data, state0 = build_problem(B, n, a.scale, a.seed)
    s0 = {k: np.asarray(getattr(state0, k)) for k in ("W", "Wp", "Wa")}
    args64 = (state0, hyper, data)
    args32 = cast(args64, jnp.float32)

    # sanity: the numpy field is the package's field
    i = 3 % B
    f_np = numpy_rhs(sub_hp(hp, [i]), n1, n2)(0.0, pack(s0["W"][i], s0["Wp"][i], s0["Wa"][i]))
    d = vector_field(take(state0, i), take(hyper, i), take(data, i))
    f_jx = pack(d.W, d.Wp, d.Wa)
    assert np.allclose(f_np, f_jx, rtol=1e-12, atol=1e-14), "numpy field != byoldyn.vector_field"

    # ---------------- matmul throughput ----------------
    log("\n## batched matmul throughput")
    mm = {}
    for name, dt in (("float64", jnp.float64), ("float32", jnp.float32)):
        mm[name] = matmul_throughput(B, n, dt, a.mm_repeats)
        mm[name]["incache_all_cores"] = incache_peak(n, dt, jax.device_count())
        log(f"  {name}: jnp.matmul ({B},{n},{n})x({B},{n},{n}): best {mm[name]['best_gflops']:.1f} GFLOP/s "
            f"(median {mm[name]['median_gflops']:.1f}); in-cache chain on {jax.device_count()} device(s): "
            f"{mm[name]['incache_all_cores']['best_gflops']:.1f} GFLOP/s")
    res["matmul"] = mm

    # ---------------- reference ----------------
    R = min(a.ref_members, B)
    log(f"\n## reference: DOP853 rtol=1e-10 atol=1e-12 on members 0..{R - 1}")
    t = time.perf_counter()
    ref = [scipy_member(hp, s0, i, t1, "DOP853", 1e-10, 1e-12, n1, n2) for i in range(R)]
    ref_s = time.perf_counter() - t
    assert all(s.status == 0 for s in ref), "reference solve failed"
    Wref = np.stack([unpack_W(s.y[:, -1], 1, n1, n2)[0] for s in ref])
    log(f"  {ref_s:.2f} s, accepted steps {sum(len(s.t) - 1 for s in ref)}")
    res["reference"] = dict(method="DOP853", rtol=1e-10, atol=1e-12, members=R, wall_s=ref_s,
                            accepted_steps=int(sum(len(s.t) - 1 for s in ref)), nfev=int(sum(s.nfev for s in ref)))
    # sanity of the chosen scale: the dynamics change the state a lot but stay bounded
    W0n = np.linalg.norm(s0["W"][:R].reshape(R, -1), axis=1)
    W1n = np.linalg.norm(Wref.reshape(R, -1), axis=1)
    res["dynamics"] = dict(W0_fro_median=float(np.median(W0n)), W1_fro_median=float(np.median(W1n)),
                           W1_fro_max=float(np.max(W1n)),
                           rel_change_median=float(np.median(np.linalg.norm((Wref - s0["W"][:R]).reshape(R, -1), axis=1) / W0n)))
    log(f"  |W(0)|_F median {np.median(W0n):.3f} -> |W(t1)|_F median {np.median(W1n):.3f} (max {np.max(W1n):.3f}); "
        f"median |W(t1)-W(0)|/|W(0)| = {res['dynamics']['rel_change_median']:.2f}")

    rows = res["rows"]

    # ---------------- byoldyn vmap rows ----------------
    steps_cache = {}

    def diffrax_stats(args, tag):
        """Attempted/accepted/rejected steps per member from diffrax directly (fast per-core driver)."""
        drv = ShardedMap(diffrax_single(t1, rtol, atol), jax.device_count())
        c = drv.lower_compile(*args)
        W, ns, na, nr = block(drv(*args, compiled=c))
        steps_cache[tag] = dict(attempts=np.asarray(ns), accepted=np.asarray(na), rejected=np.asarray(nr))
        return steps_cache[tag]

    def byoldyn_row(label, driver, args, dtype, repeats, *, warmup=True, lockstep=True):
        log(f"\n## {label}")
        timing, (W, status, nacc) = run_driver(label, driver, args, repeats, warmup=warmup)
        status, nacc = np.asarray(status), np.asarray(nacc)
        ok = int(np.sum(status == bd.SUCCEEDED))
        if ok != B:
            log(f"  WARNING: only {ok}/{B} members succeeded: {np.bincount(status)}")
        st = steps_cache.get(dtype) or diffrax_stats(args, dtype)
        same = bool(np.array_equal(st["accepted"], nacc))
        att = st["attempts"] if same else nacc + st["rejected"]  # fall back: byoldyn accepted + diffrax rejected
        evals = TSIT5_EVALS_PER_ATTEMPT * att + DIFFRAX_EXTRA_EVALS
        useful = float(np.sum(evals)) * F
        executed = float(B * (TSIT5_EVALS_PER_ATTEMPT * att.max() + DIFFRAX_EXTRA_EVALS)) * F if lockstep else useful
        wall = timing["wall_s"]
        gf = useful / wall / 1e9
        row = dict(method="byoldyn", driver=label, dtype=dtype, members_timed=B, extrapolated=False, **timing,
                   succeeded=ok, accepted_steps=int(nacc.sum()), attempted_steps=int(att.sum()),
                   accepted_steps_per_member=dict(min=int(nacc.min()), median=float(np.median(nacc)), max=int(nacc.max())),
                   max_attempts=int(att.max()), evals=int(np.sum(evals)), useful_flops=useful,
                   executed_flops=executed, lockstep_efficiency=useful / executed,
                   diffrax_accepted_match=same,
                   attempts_source=("diffrax stats of the identical solve" if same else
                                    "byoldyn accepted + rejected from the identical solve run member by member "
                                    "(accepted counts differ slightly by rounding, so attempts are approximate)"),
                   config_steps_per_s=float(nacc.sum()) / wall, config_attempts_per_s=float(att.sum()) / wall,
                   gflops=gf, frac_matmul=gf / mm[dtype]["best_gflops"],
                   frac_incache_peak=gf / mm[dtype]["incache_all_cores"]["best_gflops"],
                   err_vs_ref=rel_err(np.asarray(W)[:R], Wref))
        log(f"  accepted steps/member {row['accepted_steps_per_member']}, attempts {row['attempted_steps']} "
            f"(max {row['max_attempts']}), diffrax accepted counts identical: {same}")
        log(f"  {gf:.2f} GFLOP/s useful = {100 * row['frac_matmul']:.1f}% of batched matmul; lockstep efficiency "
            f"{100 * row['lockstep_efficiency']:.1f}%; max rel err W {row['err_vs_ref']['max']:.2e}")
        return row

    one = byoldyn_single(t1, rtol, atol)
    nd = jax.device_count()
    rows["byoldyn_batch_f64"] = byoldyn_row(f"byoldyn f64, simulate_batch over {nd} device(s)",
                                            BatchDriver(t1, rtol, atol), args64, "float64", max(a.repeats, 5), lockstep=False)
    if not a.no_float32:
        rows["byoldyn_batch_f32"] = byoldyn_row(f"byoldyn f32, simulate_batch over {nd} device(s)",
                                                BatchDriver(t1, rtol, atol), args32, "float32", max(a.repeats, 5), lockstep=False)
    rows["byoldyn_vmap_f64"] = byoldyn_row("byoldyn f64, jit(vmap(simulate))", vmap_driver(one), args64, "float64", a.repeats)
    if not a.no_float32:
        rows["byoldyn_vmap_f32"] = byoldyn_row("byoldyn f32, jit(vmap(simulate))", vmap_driver(one), args32, "float32", a.repeats)

    # ---------------- scipy (a): vectorised batch ----------------
    log("\n## scipy (a): one vectorised RK45 over the stacked batch")
    rhs_b = numpy_rhs(hp, n1, n2)
    y0b = pack(s0["W"], s0["Wp"], s0["Wa"])
    wall_a, runs_a, sol_a = timeit(lambda: solve_ivp(rhs_b, (0.0, t1), y0b, method="RK45", rtol=rtol, atol=atol), a.scipy_repeats)
    acc_a = len(sol_a.t) - 1
    att_a = (sol_a.nfev - 2) / 6
    Wa_fin = unpack_W(sol_a.y[:, -1], B, n1, n2)
    rows["scipy_a_vectorised"] = dict(
        method="scipy RK45 (a) vectorised batch", dtype="float64", members_timed=B, extrapolated=False,
        wall_s=wall_a, runs_s=runs_a, compile_s=0.0, succeeded=B if sol_a.status == 0 else 0, status=int(sol_a.status),
        accepted_steps=int(acc_a * B), accepted_steps_shared=int(acc_a), attempted_steps=float(att_a * B),
        nfev=int(sol_a.nfev), evals=int(sol_a.nfev * B), useful_flops=float(sol_a.nfev) * B * F,
        config_steps_per_s=acc_a * B / wall_a, config_attempts_per_s=att_a * B / wall_a,
        gflops=float(sol_a.nfev) * B * F / wall_a / 1e9, err_vs_ref=rel_err(Wa_fin[:R], Wref))
    rows["scipy_a_vectorised"]["frac_matmul"] = rows["scipy_a_vectorised"]["gflops"] / mm["float64"]["best_gflops"]
    log(f"  runs {[round(x, 2) for x in runs_a]} s, {acc_a} shared accepted steps, nfev {sol_a.nfev}, status {sol_a.status}, "
        f"max rel err W {rows['scipy_a_vectorised']['err_vs_ref']['max']:.2e}")

    # ---------------- scipy (b): per-configuration loop ----------------
    L = min(a.loop_members, B)
    log(f"\n## scipy (b): RK45 per configuration, {L} members, extrapolated to {B}")
    t = time.perf_counter()
    sols_b = [scipy_member(hp, s0, i, t1, "RK45", rtol, atol, n1, n2) for i in range(L)]
    wall_loop = time.perf_counter() - t
    acc_b = np.array([len(s.t) - 1 for s in sols_b])
    nfev_b = np.array([s.nfev for s in sols_b])
    Wb = np.stack([unpack_W(s.y[:, -1], 1, n1, n2)[0] for s in sols_b])
    wall_b = wall_loop * B / L
    rows["scipy_b_loop"] = dict(
        method="scipy RK45 (b) per-config loop", dtype="float64", members_timed=L, extrapolated=L != B,
        extrapolation=f"wall_B = {wall_loop:.4f} s * {B} / {L}", wall_loop_s=wall_loop, wall_s=wall_b, compile_s=0.0,
        succeeded=int(sum(s.status == 0 for s in sols_b)), accepted_steps_timed=int(acc_b.sum()),
        attempted_steps_timed=float(((nfev_b - 2) / 6).sum()), nfev_timed=int(nfev_b.sum()),
        config_steps_per_s=float(acc_b.sum()) / wall_loop, config_attempts_per_s=float(((nfev_b - 2) / 6).sum()) / wall_loop,
        gflops=float(nfev_b.sum()) * F / wall_loop / 1e9,
        err_vs_ref=rel_err(Wb[: min(L, R)], Wref[: min(L, R)]))
    rows["scipy_b_loop"]["frac_matmul"] = rows["scipy_b_loop"]["gflops"] / mm["float64"]["best_gflops"]
    log(f"  {wall_loop:.3f} s for {L} -> {wall_b:.2f} s extrapolated; accepted/member median {np.median(acc_b)}, "
        f"max rel err W {rows['scipy_b_loop']['err_vs_ref']['max']:.2e}")

    # ---------------- diagnostics ----------------
    if not a.no_diagnostics:
        log("\n# diagnostics")
        rows["byoldyn_map_f64"] = byoldyn_row("byoldyn f64, jit(lax.map(simulate, batch_size=1)), 1 device",
                                              map_driver(one), args64, "float64", a.repeats, lockstep=False)
        if jax.device_count() > 1:
            nd = jax.device_count()
            rows["byoldyn_percore_f64"] = byoldyn_row(f"byoldyn f64, pmap over {nd} CPU devices of lax.map(simulate)",
                                                      ShardedMap(one, nd), args64, "float64", max(a.repeats, 5), lockstep=False)
            if not a.no_float32:
                rows["byoldyn_percore_f32"] = byoldyn_row(f"byoldyn f32, pmap over {nd} CPU devices of lax.map(simulate)",
                                                          ShardedMap(one, nd), args32, "float32", max(a.repeats, 5), lockstep=False)
        res["diagnostics"]["vmap_decomposition"] = vmap_decomposition(a, hp, F, t1, rtol, atol)
        rows.update(fused_rows(a, args64, F, t1, rtol, atol, mm, Wref, R))

    # ---------------- summary ----------------
    wa, wb = rows["scipy_a_vectorised"]["wall_s"], rows["scipy_b_loop"]["wall_s"]
    for r in rows.values():
        r["speedup_vs_a"] = wa / r["wall_s"]
        r["speedup_vs_b"] = wb / r["wall_s"]
    ea = rows["scipy_a_vectorised"]["err_vs_ref"]["max"]
    eb = rows["scipy_b_loop"]["err_vs_ref"]["max"]
    ej = rows["byoldyn_batch_f64"]["err_vs_ref"]["max"]
    for name, eo in (("scipy (a)", ea), ("scipy (b)", eb)):
        ratio = ej / eo
        if ratio > 10 or ratio < 0.1:
            res["notes"].append(f"accuracy NOT matched: byoldyn f64 max rel err {ej:.2e} vs {name} {eo:.2e} at the same rtol")
        else:
            res["notes"].append(f"accuracy matched within 10x: byoldyn f64 max rel err {ej:.2e} vs {name} {eo:.2e}")
    main_row = rows["byoldyn_batch_f64"]
    res["targets"] = dict(
        speedup_vs_a=dict(target=20.0, measured=main_row["speedup_vs_a"], met=main_row["speedup_vs_a"] >= 20),
        frac_matmul=dict(target=0.5, measured=main_row["frac_matmul"], met=main_row["frac_matmul"] >= 0.5))
    res["total_runtime_s"] = time.perf_counter() - T0

    table = markdown_table(rows, mm, B)
    res["markdown"] = table
    log("\n" + table)
    for note in res["notes"]:
        log(f"- {note}")
    log(f"- targets (byoldyn f64 simulate_batch row): >=20x over (a): {main_row['speedup_vs_a']:.2f}x "
        f"({'met' if res['targets']['speedup_vs_a']['met'] else 'MISSED'}); >=50% of batched matmul: "
        f"{100 * main_row['frac_matmul']:.1f}% ({'met' if res['targets']['frac_matmul']['met'] else 'MISSED'})")
    log(f"- total runtime {res['total_runtime_s']:.0f} s")

    out = a.out
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp.{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(res, fh, indent=2, default=_json_default)
        fh.write("\n")
    os.replace(tmp, out)
    log(f"wrote {out}")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def vmap_decomposition(a, hp_all, F, t1, rtol, atol):
    """Per-iteration cost of the vmapped diffrax loop on a sub-batch: what is the time spent on?"""
    Bd = min(a.diag_members, a.members)
    log(f"\n## vmap cost decomposition on {Bd} members (one timed run each, after compile)")
    _, hyper, data, state0 = build_problem(a.members, a.n, a.scale, a.seed)
    args = take((state0, hyper, data), slice(0, Bd))
    out = dict(members=Bd)
    linear = lambda t, y, args: jax.tree.map(lambda v: -0.2 * v, y)  # noqa: E731
    variants = [
        ("diffrax_event", diffrax_single(t1, rtol, atol, event=True), 1),
        ("diffrax_no_event", diffrax_single(t1, rtol, atol, event=False), 1),
        ("diffrax_linear_field_no_event", diffrax_single(t1, rtol, atol, event=False, field=linear), 1),
        ("fused_tsit5", fused_single(t1, rtol, atol), "fused"),
    ]
    for name, one, kind in variants:
        timing, o = run_driver(name, vmap_driver(one), args, 1, warmup=False)
        if kind == "fused":
            iters = int(np.max(np.asarray(o[1]) + np.asarray(o[2])))
        else:
            iters = int(np.max(np.asarray(o[1])))
        out[name] = dict(**timing, loop_iterations=iters,
                         ms_per_iteration=None if iters is None else 1e3 * timing["wall_s"] / iters,
                         us_per_iteration_per_member=None if iters is None else 1e6 * timing["wall_s"] / iters / Bd)
        if iters:
            log(f"    -> {iters} lockstep iterations, {out[name]['ms_per_iteration']:.2f} ms/iteration "
                f"({out[name]['us_per_iteration_per_member']:.1f} us per member)")
    # the vector field alone, batched: 6 evaluations per iteration
    vf = jax.vmap(vector_field)
    K = 30
    h, d = args[1], args[2]
    chain = jax.jit(lambda s: jax.lax.fori_loop(0, K, lambda i, y: jax.tree.map(lambda p, q: p + 1e-3 * q, y, vf(y, h, d)), s))
    c = chain.lower(args[0]).compile()
    block(c(args[0]))
    w, _, _ = timeit(lambda: block(c(args[0])), 3)
    out["field_only"] = dict(evals=K, wall_s=w, ms_per_6_evals=6e3 * w / K, gflops=K * Bd * F / w / 1e9)
    log(f"  field alone under vmap: {out['field_only']['ms_per_6_evals']:.2f} ms per 6 evaluations "
        f"({out['field_only']['gflops']:.1f} GFLOP/s)")
    ev, ne = out["diffrax_event"]["wall_s"], out["diffrax_no_event"]["wall_s"]
    out["event_overhead_frac"] = (ev - ne) / ne
    lin = out["diffrax_linear_field_no_event"]["ms_per_iteration"]
    real = out["diffrax_no_event"]["ms_per_iteration"]
    out["solver_overhead_frac"] = lin / real
    log(f"  event (_blown) overhead: {100 * out['event_overhead_frac']:+.1f}% ; diffrax machinery with a trivial field "
        f"= {100 * out['solver_overhead_frac']:.0f}% of the per-iteration cost with the real field")
    return out


def fused_rows(a, args64, F, t1, rtol, atol, mm, Wref, R):
    """The hand-written fused Tsit5 (benchmark-local prototype) with the same drivers."""
    log("\n## prototype: fused Tsit5 (this file only), float64")
    B = a.members
    out = {}
    one = fused_single(t1, rtol, atol)
    # (its vmap layout is timed on --diag-members members in the vmap decomposition above)
    nd = jax.device_count()
    drivers = [(f"pmap over {nd} CPU devices of lax.map", ShardedMap(one, nd))] if nd > 1 else [("lax.map", map_driver(one))]
    for name, drv in drivers:
        timing, (W, na, nr) = run_driver(f"fused Tsit5, {name}", drv, args64, max(a.repeats, 5))
        na, nr = np.asarray(na), np.asarray(nr)
        att = na + nr
        useful = float(np.sum(6 * att + 3)) * F
        gf = useful / timing["wall_s"] / 1e9
        out["prototype_fused_tsit5_percore_f64"] = dict(
                         method="prototype", driver=f"PROTOTYPE fused Tsit5 (benchmark-local, not byoldyn), {name}",
                         dtype="float64", members_timed=B, extrapolated=False,
                         **timing, accepted_steps=int(na.sum()), attempted_steps=int(att.sum()),
                         gflops=gf, frac_matmul=gf / mm["float64"]["best_gflops"],
                         config_steps_per_s=float(na.sum()) / timing["wall_s"],
                         err_vs_ref=rel_err(np.asarray(W)[:R], Wref))
        log(f"    -> {gf:.2f} GFLOP/s, accepted {int(na.sum())}, attempts {int(att.sum())}, "
            f"max rel err {rel_err(np.asarray(W)[:R], Wref)['max']:.2e}")
    return out


def markdown_table(rows, mm, B):
    hdr = (f"| method | dtype | wall s (B={B}) | compile s | accepted steps | attempts | config·steps/s "
           "| speedup vs (a) | speedup vs (b) | GFLOP/s | % batched matmul | max rel err W |")
    lines = [hdr, "|" + "---|" * 12]
    for r in rows.values():
        name = r.get("driver") or r["method"]
        acc = r.get("accepted_steps", r.get("accepted_steps_timed"))
        att = r.get("attempted_steps", r.get("attempted_steps_timed"))
        comp = "-" if r["method"].startswith("scipy") else f"{r['compile_s']:.1f}"
        wall = f"{r['wall_s']:.2f}" + (f" (extrap. from {r['members_timed']})" if r.get("extrapolated") else "")
        lines.append(
            f"| {name} | {r['dtype']} | {wall} | {comp} | {acc} | {att:.0f} | "
            f"{r['config_steps_per_s']:.3g} | {r['speedup_vs_a']:.2f}x | {r['speedup_vs_b']:.2f}x | "
            f"{r['gflops']:.2f} | {100 * r['frac_matmul']:.1f}% | {r['err_vs_ref']['max']:.2e} |")
    lines.append("")
    lines.append(f"batched matmul ({B},n,n) best: float64 {mm['float64']['best_gflops']:.1f} GFLOP/s, "
                 f"float32 {mm['float32']['best_gflops']:.1f} GFLOP/s; in-cache all-core peak: float64 "
                 f"{mm['float64']['incache_all_cores']['best_gflops']:.1f}, float32 {mm['float32']['incache_all_cores']['best_gflops']:.1f} GFLOP/s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
