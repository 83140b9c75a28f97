#!/usr/bin/env python
"""Throughput, scaling and peak memory of `byoldyn.sweep`, against a NumPy peer on the same work.

    python benchmarks/bench_sweep.py [--quick | --tiny] [--out benchmarks/results/sweep.json]

`--quick`: small sizes; `--tiny`: a smoke run of every part (as in the test suite) at a few members and
steps, written to the temporary directory unless --out is given.

All runs are float64, fixed-step classical RK4 on isotropic data (X = I, X' = sigma2 I), BYOL
variant (EMA target, stop-gradient, learned predictor), members from `State.random(seed, n, n,
scale=0.5)` with Wa(0) = 0, hyperparameters on a grid (alpha_p x eta x seeds), final observables
only. The script exposes one XLA CPU device per core (set before JAX starts), so `sweep` shards
the member axis over all cores.

1. Throughput against NumPy (same members, same steps, same initial states taken from byoldyn):
   - matrix level (Lemma 1, Eqs. 2-4), B = --mat-members, n1 = n2 = 16, --mat-steps RK4 steps;
     the peer is a batched NumPy RK4 (np.matmul on stacked (B, n, n) arrays, 4 field evaluations
     per step), one process, NumPy's own BLAS threads;
   - mode level (Eqs. 11-13, scalar form), B = --mode-members members x 8 modes, --mode-steps steps;
     the peer is an elementwise NumPy RK4 on (B, 8) arrays.
   Reported: members x steps / s, the ratio, and max relative difference of the final ||W||.
   byoldyn's time is a warm call (compile timed separately); it includes drawing the initial
   states, the observables at the end (eigh of F per member) and assembling the Dataset.
2. Scaling of cost with the number of members (10 .. 100,000; matrix level, n = 16, --scale-steps
   steps, default chunking) and with the width n1 = n2 (8 .. 128; --width-members members,
   --width-steps steps). GFLOP/s counts 6 n^3 + 10 n^2 flops per field evaluation, 4 per step.
3. Peak memory: a 100,000-member matrix-level sweep at n1 = n2 = 16 (--mem-steps steps, written
   to a netCDF with its chunk files) in a fresh subprocess; peak RSS from getrusage(RUSAGE_CHILDREN).
4. Processes (`jax.distributed`): the same matrix-level sweep (--proc-members members, n = 16,
   --proc-steps RK4 steps, warm call) as 1, 2, 4 local processes started by `byoldyn.launch`, each with
   cores / P XLA CPU devices (at least one: with more processes than cores they share the cores);
   members x steps / s, the per-process cores stated.

Results JSON written atomically to --out; the scaling plot to benchmarks/results/sweep_scaling.png.
The machine is shared: timings vary by tens of percent between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mat-members", type=int, default=4096)
    p.add_argument("--mat-steps", type=int, default=100)
    p.add_argument("--mode-members", type=int, default=65536)
    p.add_argument("--mode-steps", type=int, default=1000)
    p.add_argument("--scale-steps", type=int, default=20)
    p.add_argument("--members", default="10,100,1000,10000,100000")
    p.add_argument("--widths", default="8,16,32,64,128")
    p.add_argument("--width-members", type=int, default=256)
    p.add_argument("--width-steps", type=int, default=20)
    p.add_argument("--mem-members", type=int, default=100_000)
    p.add_argument("--mem-steps", type=int, default=20)
    p.add_argument("--strat-members", type=int, default=4096, help="members of the strategy comparison")
    p.add_argument("--strat-steps", type=int, default=100)
    p.add_argument("--strat-mode-members", type=int, default=65536)
    p.add_argument("--strat-mode-steps", type=int, default=200)
    p.add_argument("--blocks", default="8,32,128,512", help="map-vmap block sizes compared")
    p.add_argument("--incache-members", type=int, default=4096,
                   help="members of the large block of the in-cache matmul ceiling (all devices together)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of the strategy rows and their numpy peer (min)")
    p.add_argument("--proc-members", type=int, default=4096, help="members of the processes row (matrix level)")
    p.add_argument("--proc-steps", type=int, default=50)
    p.add_argument("--processes", default="1,2,4", help="process counts of the jax.distributed row (byoldyn.launch)")
    p.add_argument("--only", default="throughput,strategies,scaling_members,scaling_width,peak_memory,processes",
                   help="parts to run (comma-separated)")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke test of the script)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke run of every part)")
    p.add_argument("--out", default=None, help="default benchmarks/results/sweep.json")
    a = p.parse_args(argv)
    if a.tiny:
        # one shape per level (8 matrix members at n = 16, 16 mode members, 2 steps) wherever a part allows it: a
        # part whose members, width and steps equal an earlier part's reuses its compiled programs (each distinct
        # shape compiles its own start, chunk program and observables, seconds each); every part still runs once
        a.mat_members, a.mat_steps, a.mode_members, a.mode_steps = 8, 2, 16, 2
        a.members, a.widths, a.width_members, a.width_steps, a.scale_steps = "8", "16", 8, 2, 2
        a.mem_members, a.mem_steps = 8, 2
        a.strat_members, a.strat_steps, a.strat_mode_members, a.strat_mode_steps = 8, 2, 16, 2
        a.blocks, a.repeats, a.incache_members = "2", 1, 8
        a.proc_members, a.proc_steps, a.processes = 8, 2, "1,2"
    a.out = a.out or (os.path.join(tempfile.gettempdir(), "byoldyn-bench-tiny", "sweep.json") if a.tiny
                      else "benchmarks/results/sweep.json")
    if a.quick:
        a.mat_members, a.mat_steps, a.mode_members, a.mode_steps = 256, 20, 4096, 100
        a.members, a.widths, a.width_members, a.mem_members = "10,100,1000", "8,16,32", 32, 2000
        a.strat_members, a.strat_steps, a.strat_mode_members, a.strat_mode_steps = 256, 10, 1024, 20
        a.blocks, a.repeats = "8,32", 1
        a.proc_members, a.proc_steps = 256, 10
    return a


ARGS = parse_args()
NCORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={NCORES}").strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

import byoldyn  # noqa: E402
from byoldyn.io import atomic_write, save_figure  # noqa: E402
from byoldyn.sweep_levels import initial as _initial  # noqa: E402
from byoldyn.sweeps import summary, sweep  # noqa: E402

SIGMA2, BETA, SCALE = 0.5, 1.0, 0.5
FLAGS = byoldyn.Variant()  # BYOL: EMA, stop-gradient, learned Wp


def log(*a):
    print(*a, flush=True)


def grid(B):
    """alpha_p x eta x seeds with about B members: (alpha_p values, eta values, seeds)."""
    na = max(1, int(round(B ** (1 / 3))))
    ne = max(1, int(round((B / na) ** 0.5)))
    ns = max(1, B // (na * ne))
    while na * ne * ns < B:
        ns += 1
    return np.geomspace(0.5, 2.0, na), np.linspace(0.0, 0.05, ne), ns


def members(a, e, ns):
    """The flat member table of sweep's grid order (seed fastest)."""
    A, E, S = np.meshgrid(a, e, np.arange(ns), indexing="ij")
    return A.ravel(), E.ravel(), S.ravel()


def flops_eval(n):
    return 6 * n ** 3 + 10 * n ** 2


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


# ----------------------------------------------------------------------------------------------
# NumPy peers


def numpy_matrix_rk4(W, Wp, Wa, alpha, eta, beta, kappa, dt, steps):
    """Batched RK4 of Lemma 1 (isotropic, EMA, stop-grad): W, Wp, Wa (B, n, n); params (B, 1, 1)."""
    T = lambda A: A.transpose(0, 2, 1)  # noqa: E731

    def f(W, Wp, Wa):
        G = Wa - kappa * (Wp @ W)
        return T(Wp) @ G - eta * W, alpha * (G @ T(W)) - eta * Wp, beta * (W - Wa)

    y = (W, Wp, Wa)
    for _ in range(steps):
        k1 = f(*y)
        k2 = f(*(a + dt / 2 * b for a, b in zip(y, k1)))
        k3 = f(*(a + dt / 2 * b for a, b in zip(y, k2)))
        k4 = f(*(a + dt * b for a, b in zip(y, k3)))
        y = tuple(a + dt / 6 * (b1 + 2 * b2 + 2 * b3 + b4) for a, b1, b2, b3, b4 in zip(y, k1, k2, k3, k4))
    return y


def numpy_modes_rk4(w, wp, wa, alpha, eta, beta, kappa, dt, steps):
    """Elementwise RK4 of the scalar form of Eqs. 11-13 (mode_field, BYOL); arrays (B, m), params (B, 1)."""
    def f(w, wp, wa):
        r = wa - kappa * wp * w
        return wp * r - eta * w, alpha * r * w - eta * wp, beta * (w - wa)

    y = (w, wp, wa)
    for _ in range(steps):
        k1 = f(*y)
        k2 = f(*(a + dt / 2 * b for a, b in zip(y, k1)))
        k3 = f(*(a + dt / 2 * b for a, b in zip(y, k2)))
        k4 = f(*(a + dt * b for a, b in zip(y, k3)))
        y = tuple(a + dt / 6 * (b1 + 2 * b2 + 2 * b3 + b4) for a, b1, b2, b3, b4 in zip(y, k1, k2, k3, k4))
    return y


def throughput(level, B, n, steps, dt=0.05):
    a, e, ns = grid(B)
    B = len(a) * len(e) * ns
    kw = dict(alpha_p=a, eta=e, seeds=ns, sigma2=SIGMA2, beta=BETA, n1=n, scale=SCALE, t1=steps * dt, dt=dt,
              progress=False, chunk=B)
    first, _ = timed(lambda: sweep(level, **kw))
    wall, ds = timed(lambda: sweep(level, **kw))
    A, E, S = members(a, e, ns)
    y0 = _initial(level, FLAGS, jnp.asarray(S, jnp.int32), jnp.full(B, SCALE), n, n, jnp.float64)
    y0 = [np.asarray(v) for v in jax.tree.leaves(y0)]  # (W, Wp, Wa) or (w, w_p, w_a)
    if level == "matrix":
        col = lambda v: np.asarray(v, float).reshape(B, 1, 1)  # noqa: E731
        peer = lambda: numpy_matrix_rk4(*y0, col(A), col(E), BETA, 1 + SIGMA2, dt, steps)  # noqa: E731
        norm = lambda y: np.sqrt(np.sum(y[0] ** 2, axis=(1, 2)))  # noqa: E731
    else:
        col = lambda v: np.asarray(v, float).reshape(B, 1)  # noqa: E731
        peer = lambda: numpy_modes_rk4(*y0, col(A), col(E), BETA, 1 + SIGMA2, dt, steps)  # noqa: E731
        norm = lambda y: np.sqrt(np.sum(y[0] ** 2, axis=1))  # noqa: E731
    pwall, y = timed(peer)
    ref = norm(y)
    got = ds.norm_W.values.reshape(-1)
    err = float(np.max(np.abs(got - ref) / np.abs(ref)))
    ms = B * steps
    row = dict(level=level, members=B, n=n, steps=steps, dt=dt, first_call_s=first, wall_s=wall, numpy_wall_s=pwall,
               member_steps_per_s=ms / wall, numpy_member_steps_per_s=ms / pwall, speedup=pwall / wall,
               max_rel_diff_norm_W=err, failed=summary(ds)["failed"])
    if level == "matrix":
        row["gflops"] = ms * 4 * flops_eval(n) / wall / 1e9
        row["numpy_gflops"] = ms * 4 * flops_eval(n) / pwall / 1e9
    log(f"  {level}: B = {B}, n = {n}, {steps} RK4 steps: byoldyn {wall:.2f} s (first call {first:.2f} s), "
        f"numpy {pwall:.2f} s -> {row['speedup']:.1f}x; {ms / wall:.3g} vs {ms / pwall:.3g} member-steps/s; "
        f"max rel diff of ||W|| {err:.1e}")
    return row


def scaling_members(counts, n, steps, dt=0.05):
    rows = []
    for B in counts:
        a, e, ns = grid(B)
        kw = dict(alpha_p=a, eta=e, seeds=ns, sigma2=SIGMA2, beta=BETA, n1=n, scale=SCALE, t1=steps * dt, dt=dt,
                  progress=False)
        first, ds = timed(lambda: sweep("matrix", **kw))
        M = summary(ds)["members"]
        wall = first
        if M <= 20_000:  # warm repeat (the 100k run reuses the compiled 10k chunk program)
            wall, ds = timed(lambda: sweep("matrix", **kw))
        r = dict(members=M, n=n, steps=steps, chunk=json.loads(ds.attrs["config"])["chunk"], first_call_s=first,
                 wall_s=wall, member_steps_per_s=M * steps / wall, gflops=M * steps * 4 * flops_eval(n) / wall / 1e9)
        rows.append(r)
        log(f"  members {M:>7}: {wall:8.3f} s (first {first:.2f} s), {r['member_steps_per_s']:.3g} member-steps/s, "
            f"{r['gflops']:.1f} GFLOP/s")
    return rows


def scaling_width(widths, B, steps, dt=0.05):
    rows = []
    for n in widths:
        a, e, ns = grid(B)
        kw = dict(alpha_p=a, eta=e, seeds=ns, sigma2=SIGMA2, beta=BETA, n1=n, scale=SCALE, t1=steps * dt, dt=dt,
                  progress=False)
        first, ds = timed(lambda: sweep("matrix", **kw))
        wall, ds = timed(lambda: sweep("matrix", **kw))
        M = summary(ds)["members"]
        r = dict(members=M, n=n, steps=steps, first_call_s=first, wall_s=wall, member_steps_per_s=M * steps / wall,
                 gflops=M * steps * 4 * flops_eval(n) / wall / 1e9, us_per_member_step=1e6 * wall / (M * steps))
        rows.append(r)
        log(f"  n = {n:>3}: {wall:8.3f} s (first {first:.2f} s), {r['us_per_member_step']:.2f} us per member-step, "
            f"{r['gflops']:.1f} GFLOP/s")
    return rows


def best_of(fn, repeats):
    ts, out = [], None
    for _ in range(max(1, repeats)):
        t, out = timed(fn)
        ts.append(t)
    return min(ts), ts, out


def incache_matmul(n, b, repeats, chain=256):
    """The rate of XLA's batched (b, n, n) matmul with the data in cache, all devices at once: on each device a
    chain of `chain` dependent products (the ceiling of the field's products in a block of b members)."""
    nd = jax.device_count()
    k1, k2 = jax.random.split(jax.random.PRNGKey(7))
    A = jax.random.normal(k1, (nd, b, n, n), jnp.float64)
    C = jax.random.normal(k2, (nd, b, n, n), jnp.float64) / np.sqrt(n)
    f = jax.pmap(lambda A, C: jax.lax.fori_loop(0, chain, lambda i, X: jnp.matmul(X, C), A))
    jax.block_until_ready(f(A, C))
    t, _, _ = best_of(lambda: jax.block_until_ready(f(A, C)), repeats)
    return 2 * n ** 3 * b * chain * nd / t / 1e9


def strategies(level, B, n, steps, blocks, repeats, incache_members=4096, dt=0.05):
    """Each batching strategy of `sweep` (byoldyn.batch.fixed_step_block) on the same work, beside the NumPy peer
    timed in the same run (min of `repeats`); the auto row is broken down into its parts."""
    from byoldyn.batch import fixed_step_block
    from byoldyn.sweeps.run import global_array, make_mesh, observe, program, start

    a, e, ns = grid(B)
    B = len(a) * len(e) * ns
    kw = dict(alpha_p=a, eta=e, seeds=ns, sigma2=SIGMA2, beta=BETA, n1=n, scale=SCALE, t1=steps * dt, dt=dt,
              progress=False, chunk=B)
    A, E, S = members(a, e, ns)
    y0 = _initial(level, FLAGS, jnp.asarray(S, jnp.int32), jnp.full(B, SCALE), n, n, jnp.float64)
    y0 = [np.asarray(v) for v in jax.tree.leaves(y0)]
    shape = (B, 1, 1) if level == "matrix" else (B, 1)
    col = lambda v: np.asarray(v, float).reshape(shape)  # noqa: E731
    peer = numpy_matrix_rk4 if level == "matrix" else numpy_modes_rk4
    pwall, pts, y = best_of(lambda: peer(*y0, col(A), col(E), BETA, 1 + SIGMA2, dt, steps), repeats)
    ref_norm = np.sqrt(np.sum(y[0] ** 2, axis=tuple(range(1, y[0].ndim))))
    flops = B * steps * 4 * flops_eval(n) if level == "matrix" else None
    ndev = jax.device_count()
    per_member = (3 * n * n if level == "matrix" else 3 * n) * 8 * 8
    auto_block = fixed_step_block("auto", "cpu", B // ndev, per_member)
    rows = [dict(strategy="numpy", block=None, wall_s=pwall, runs_s=pts, speedup_vs_numpy=1.0,
                 gflops=None if flops is None else flops / pwall / 1e9)]
    log(f"  {level}: B = {B}, n = {n}, {steps} RK4 steps; numpy {pwall:.3f} s (runs {[round(t, 3) for t in pts]})")
    cases = [("vmap", None), ("map", None)] + [("map-vmap", b) for b in blocks] + [("auto", None)]
    ref = None
    for strategy, blk in cases:
        first, _ = timed(lambda: sweep(level, strategy=strategy, block=blk, **kw))
        wall, ts, ds = best_of(lambda: sweep(level, strategy=strategy, block=blk, **kw), repeats)
        got = ds.norm_W.values.reshape(-1)
        ref = got if ref is None else ref
        r = dict(strategy=strategy, block=auto_block if strategy == "auto" else blk, first_call_s=first, wall_s=wall,
                 runs_s=ts, speedup_vs_numpy=pwall / wall, member_steps_per_s=B * steps / wall,
                 gflops=None if flops is None else flops / wall / 1e9,
                 bit_identical_to_vmap=bool(np.array_equal(got, ref)),
                 max_rel_diff_vs_vmap=float(np.max(np.abs(got - ref) / np.abs(ref))),
                 max_rel_diff_vs_numpy=float(np.max(np.abs(got - ref_norm) / np.abs(ref_norm))))
        rows.append(r)
        log(f"  {strategy:>8} block {str(r['block']):>5}: {wall:.3f} s ({pwall / wall:.2f}x numpy"
            + ("" if flops is None else f", {r['gflops']:.1f} GFLOP/s") + f"), first call {first:.1f} s, "
            f"bit-identical to vmap: {r['bit_identical_to_vmap']}")
    # where the time of the auto row goes: the parts of one chunk (byoldyn.sweeps.run.run_chunk), each timed alone
    mesh = make_mesh(None)
    one = mesh.devices.ravel()[0]
    prog = program(level, FLAGS, "rk4", 1, steps, False, 1e8, mesh, auto_block)
    seeds, scale = jnp.asarray(S, jnp.uint32), jnp.full(B, SCALE)
    with jax.default_device(one):  # each part warmed up (compiled) before it is timed
        jax.block_until_ready(start(level, FLAGS, seeds, scale, n, n))
        t_start, _, ys = best_of(lambda: jax.block_until_ready(start(level, FLAGS, seeds, scale, n, n)), repeats)
    yg = jax.tree.map(lambda v: global_array(np.asarray(v), mesh), ys)
    put = lambda v: global_array(np.asarray(v, float), mesh)  # noqa: E731
    args = (jax.tree.map(put, byoldyn.Hyper(A, E, np.full(B, BETA), E)), put(np.full(B, SIGMA2)), None)
    jax.block_until_ready(prog(yg, *args, jnp.asarray(dt)))
    t_prog, _, out = best_of(lambda: jax.block_until_ready(prog(yg, *args, jnp.asarray(dt))), repeats)
    y1 = jax.tree.map(np.asarray, out[0])
    ok = np.asarray(out[2])[-1]
    with jax.default_device(one):
        jax.block_until_ready(observe(level, y1, ok, 1e-4))
        t_obs, _, _ = best_of(lambda: jax.block_until_ready(observe(level, y1, ok, 1e-4)), repeats)
    auto_row = rows[-1]
    parts = dict(start_s=t_start, program_s=t_prog, observables_s=t_obs,
                 rest_s=auto_row["wall_s"] - t_start - t_prog - t_obs,
                 program_gflops=None if flops is None else flops / t_prog / 1e9,
                 program_speedup_vs_numpy=pwall / t_prog)
    log(f"  auto row, parts: start {t_start:.3f} s, program {t_prog:.3f} s, observables {t_obs:.3f} s, "
        f"rest (transfers, Dataset) {parts['rest_s']:.3f} s")
    if level == "matrix":
        parts["incache_matmul_gflops"] = {str(b): incache_matmul(n, b, repeats)
                                         for b in (auto_block or max(1, B // ndev), max(1, incache_members // ndev))}  # None: one vmap
        log(f"  XLA batched {n}x{n} matmul in cache on {ndev} devices: "
            + ", ".join(f"blocks of {b}: {g:.1f} GFLOP/s" for b, g in parts["incache_matmul_gflops"].items()))
    return dict(level=level, members=B, n=n, steps=steps, dt=dt, auto_block=auto_block, rows=rows, auto_parts=parts,
                load_avg=os.getloadavg())


_MEM_SCRIPT = """
import sys, time, json, jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from byoldyn.sweeps import sweep, summary
B, steps, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
na = ne = 50 if B >= 2500 else max(1, int(B ** 0.5))
ns = -(-B // (na * ne))
t = time.perf_counter()
ds = sweep("matrix", alpha_p=np.geomspace(0.5, 2.0, na), eta=np.linspace(0.0, 0.05, ne), seeds=ns, sigma2=0.5,
           beta=1.0, n1=16, scale=0.5, t1=steps * 0.05, dt=0.05, out=out, progress=False)
print(json.dumps(dict(summary(ds), wall_total_s=time.perf_counter() - t, devices=jax.device_count(),
                      chunk=json.loads(ds.attrs["config"])["chunk"], file_bytes=__import__("os").path.getsize(out))))
"""


def peak_memory(B, steps):
    with tempfile.TemporaryDirectory() as d:
        out = str(Path(d) / "mem.nc")
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", _MEM_SCRIPT, str(B), str(steps), out], capture_output=True,
                           text=True, env=os.environ.copy())
        wall = time.perf_counter() - t
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-3000:])
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        info = json.loads(r.stdout.strip().splitlines()[-1])
    row = dict(info, steps=steps, n=16, process_wall_s=wall, peak_rss_mb=peak_kb / 1024,
               note="ru_maxrss of the largest child so far" if before else "ru_maxrss of the child")
    log(f"  {info['members']} members, n = 16, {steps} RK4 steps, chunk {info['chunk']}: peak RSS "
        f"{row['peak_rss_mb']:.0f} MB, process wall {wall:.1f} s (sweep {info['wall_total_s']:.1f} s), "
        f"{info['failed']} failed, file {info['file_bytes'] / 1e6:.1f} MB")
    return row


_PROC_SCRIPT = r"""
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
from byoldyn.launch import initialize_from_env
initialize_from_env()
import numpy as np
from byoldyn.sweeps import summary, sweep
na, ne, ns, steps = map(int, sys.argv[1:5])
kw = dict(alpha_p=np.geomspace(0.5, 2.0, na), eta=np.linspace(0.0, 0.05, ne), seeds=ns, sigma2=0.5, beta=1.0, n1=16,
          scale=0.5, t1=steps * 0.05, dt=0.05, progress=False)
sweep("matrix", **kw)  # compile
ds = sweep("matrix", **kw)
if jax.process_index() == 0:
    print(json.dumps(dict(summary(ds), local_devices=jax.local_device_count())))
"""


def processes(counts, B, steps):
    """The same matrix-level sweep (n = 16, RK4) as 1, 2, 4 local jax.distributed processes (byoldyn.launch), each
    with NCORES // P XLA CPU devices (at least 1: more processes than cores share them); warm call timed."""
    a, e, ns = grid(B)
    rows = []
    for P_ in counts:
        env = os.environ.copy()
        own = f"--xla_force_host_platform_device_count={NCORES}"
        env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if f != own)
        cmd = [sys.executable, "-m", "byoldyn.launch", "-n", str(P_), "--timeout", "1200", "--", sys.executable, "-c",
               _PROC_SCRIPT, str(len(a)), str(len(e)), str(ns), str(steps)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-3000:])
        info = json.loads([x for x in r.stdout.splitlines() if x.startswith("{")][-1])
        rate = info["members"] * steps / info["wall_s"]
        row = dict(processes=P_, members=info["members"], steps=steps, n=16, wall_s=info["wall_s"],
                   member_steps_per_s=rate, devices=info["devices"], devices_per_process=info["local_devices"],
                   cores_per_process=NCORES / P_)
        rows.append(row)
        log(f"  {P_} process(es), {NCORES / P_:g} core(s) each ({info['local_devices']} device(s) each): "
            f"{info['members']} members x {steps} steps in {info['wall_s']:.2f} s = {rate:.3g} member-steps/s")
    return rows


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    m = res["scaling_members"]
    x = [r["members"] for r in m]
    ax[0].loglog(x, [r["wall_s"] for r in m], "o-", label="byoldyn.sweep wall time")
    ax[0].loglog(x, [x[-1] and r["members"] * m[-1]["wall_s"] / m[-1]["members"] for r in m], "k:", label="linear in members")
    ax[0].set(xlabel="members", ylabel="wall s", title=f"matrix level, n = 16, {m[0]['steps']} RK4 steps")
    ax[0].legend(fontsize=8)
    ax[1].semilogx(x, [r["member_steps_per_s"] for r in m], "o-")
    ax[1].set(xlabel="members", ylabel="member-steps / s", title="throughput against members")
    w = res["scaling_width"]
    nn = [r["n"] for r in w]
    ax[2].loglog(nn, [r["us_per_member_step"] for r in w], "o-", label="µs per member-step")
    ax[2].loglog(nn, [r["gflops"] for r in w], "s-", label="GFLOP/s")
    ax[2].set(xlabel="n1 = n2", title=f"against width ({w[0]['members']} members, {w[0]['steps']} steps)")
    ax[2].legend(fontsize=8)
    fig.suptitle(f"byoldyn.sweep scaling on {NCORES} CPU cores (float64, RK4; {jax.device_count()} XLA devices)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main():
    a = ARGS
    t0 = time.perf_counter()
    res = dict(machine=dict(platform=platform.platform(), processor=platform.processor(), cores=NCORES,
                            devices=jax.device_count(), jax=jax.__version__, numpy=np.__version__,
                            byoldyn=byoldyn.__version__, python=sys.version.split()[0]),
               args=vars(a))
    log(f"# byoldyn.sweep benchmark: {NCORES} cores, {jax.device_count()} XLA CPU devices, float64")
    only = {x.strip() for x in a.only.split(",")}
    res["load_avg_start"] = os.getloadavg()
    if "throughput" in only:
        log("## throughput against NumPy (same members, steps, initial states)")
        res["throughput"] = [throughput("matrix", a.mat_members, 16, a.mat_steps),
                             throughput("modes", a.mode_members, 8, a.mode_steps)]
    if "strategies" in only:
        log(f"## batching strategies against NumPy in the same run (min of {a.repeats})")
        blocks = [int(x) for x in a.blocks.split(",")]
        res["strategies"] = [strategies("matrix", a.strat_members, 16, a.strat_steps, blocks, a.repeats,
                                        a.incache_members),
                             strategies("modes", a.strat_mode_members, 8, a.strat_mode_steps, blocks, a.repeats)]
    if "scaling_members" in only:
        log("## scaling with the number of members (matrix level, n = 16)")
        res["scaling_members"] = scaling_members([int(x) for x in a.members.split(",")], 16, a.scale_steps)
    if "scaling_width" in only:
        log("## scaling with the width (matrix level)")
        res["scaling_width"] = scaling_width([int(x) for x in a.widths.split(",")], a.width_members, a.width_steps)
    if "peak_memory" in only:
        log("## peak memory of a large sweep (fresh process)")
        res["peak_memory"] = peak_memory(a.mem_members, a.mem_steps)
    if "processes" in only:
        log("## jax.distributed: the same sweep as several local processes (matrix level, n = 16)")
        res["processes"] = processes([int(x) for x in a.processes.split(",")], a.proc_members, a.proc_steps)
    res["load_avg_end"] = os.getloadavg()
    res["total_s"] = time.perf_counter() - t0
    out = Path(a.out)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(res, indent=1, default=float)))
    msg = f"wrote {out}"
    if "scaling_members" in res and "scaling_width" in res:
        png = out.with_name(out.stem + "_scaling.png")
        plot(res, png)
        msg += f" and {png}"
    log(f"{msg} in {res['total_s']:.0f} s")


if __name__ == "__main__":
    main()
