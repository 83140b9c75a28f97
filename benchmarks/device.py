#!/usr/bin/env python
"""The accelerator benchmark: every batched workload of byoldyn, each batching strategy side by side.

    python benchmarks/device.py [--out benchmarks/results/device.json] [--budget 270] [--tiny]

One script to run on a GPU/TPU (at most about 5 minutes on one H200-class GPU at the default sizes; a
time budget skips what would not fit, and the JSON is rewritten after every section, so a killed run
keeps what it measured). `--tiny` runs every section at tiny sizes on a CPU in seconds (the test suite
does, `tests/test_device_bench.py`). Sections, float64 unless `--dtype float32`:

1. `matmul`: the device's own batched (B, n, n) x (B, n, n) matmul throughput (n = 16, 32; float32 and
   float64), the yardstick of every GFLOP/s below.
2. `simulate`: `bd.simulate_batch`, adaptive Tsit5 (rtol 1e-5, atol 1e-8) on `--sim-members` BYOL
   configurations (n1 = n2 = `--sim-n`, t1 = `--sim-t1`), with `strategy="vmap"`, `"map-vmap"`
   (`--block`, default `byoldyn.batch.auto_block`) and `"map"` (on an accelerator timed on
   `--map-members` members and extrapolated linearly: a member loop launches its small kernels one
   after another); `"auto"` is reported as the strategy it resolves to. GFLOP/s counts
   (6 accepted + 3) evaluations of 6 n^3 + 7 n^2 + 3 n^2 flops per member (rejected steps not counted).
3. `sweep_matrix`, `sweep_modes`: `bd.sweep` at the matrix level (Lemma 1, RK4, `--sweep-members`
   members at n = `--sweep-n`, `--sweep-steps` steps) and the mode level (Eqs. 11-13, `--mode-members`
   members x 8 modes, `--mode-steps` steps), one chunk, with each strategy (`"map"` again on a subset on
   an accelerator); wall time includes the initial states, the observables (eigh per member) and the
   Dataset. Matrix GFLOP/s: 4 (6 n^3 + 10 n^2) flops per member-step.
4. `basin`: a `--grid` x `--grid` basin map of Eqs. 11-12 (RK4, dt 0.05 to t = 200): the whole grid in
   one lockstep program (`bd.phase.basin_map`, "vmap") and in blocks of rows ("map-vmap"). GFLOP/s counts
   98 flops per lane-step (4 evaluations of 14 flops and the RK4 combinations).
5. `resnet`: one BYOL training step of ResNet-18 (`byoldyn.nets`, `--resnet-batch` 32x32 images, width
   `--resnet-width`, float32, augmentation included); flops from XLA's cost analysis of the compiled step.
   Skipped when flax is not importable.

Every row: the first call (compile + run) and the best of the timed runs; members whose strategies
disagree are counted (`max_diff` against the first strategy of the section on the common members).
Printed at the start: the device, jax version; at the end a markdown table (also in the JSON, and in
OUT with the suffix .md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="default benchmarks/results/device.json (with --tiny: the "
                                                "temporary directory)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds (default 270; no limit with --tiny); what would not fit is skipped")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (a CPU smoke run of the whole script)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--sim-members", type=int, default=100_000)
    p.add_argument("--sim-n", type=int, default=32)
    p.add_argument("--sim-t1", type=float, default=50.0)
    p.add_argument("--map-members", type=int, default=64, help="members timed for 'map' on an accelerator")
    p.add_argument("--block", type=int, default=None, help="members per lockstep block of 'map-vmap'")
    p.add_argument("--sweep-members", type=int, default=100_000)
    p.add_argument("--sweep-n", type=int, default=32)
    p.add_argument("--sweep-steps", type=int, default=100)
    p.add_argument("--mode-members", type=int, default=1_000_000)
    p.add_argument("--mode-steps", type=int, default=1000)
    p.add_argument("--grid", type=int, default=2048)
    p.add_argument("--resnet-batch", type=int, default=512)
    p.add_argument("--resnet-width", type=float, default=1.0)
    p.add_argument("--resnet-steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2, help="timed runs after the first call (best is kept)")
    p.add_argument("--sections", default="matmul,simulate,sweep_matrix,sweep_modes,basin,resnet")
    a = p.parse_args(argv)
    if a.tiny:
        a.sim_members, a.sim_n, a.sim_t1, a.map_members = 8, 3, 5.0, 8
        a.sweep_members, a.sweep_n, a.sweep_steps = 12, 4, 10
        a.mode_members, a.mode_steps, a.grid = 64, 20, 16
        a.resnet_batch, a.resnet_width, a.resnet_steps, a.repeats = 8, 1 / 16, 1, 1
        a.block = a.block or 2
    a.budget = (float("inf") if a.tiny else 270.0) if a.budget is None else a.budget
    a.out = a.out or (os.path.join(tempfile.gettempdir(), "byoldyn-bench-tiny", "device.json") if a.tiny
                      else "benchmarks/results/device.json")
    return a


ARGS = parse_args()
NCORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    # one XLA CPU device per core (only the CPU backend reads it), as the other benchmarks
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={NCORES}").strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

import byoldyn as bd  # noqa: E402
from byoldyn.batch import auto_block, fixed_step_block, resolve_strategy, working_set  # noqa: E402
from byoldyn.io import atomic_write  # noqa: E402

T_START = time.perf_counter()
DTYPE = jnp.float64 if ARGS.dtype == "float64" else jnp.float32
DEVICES = jax.devices()  # all of them (on a CPU host: one per core), as simulate_batch and sweep by default
DEV = DEVICES[0]
NDEV = len(DEVICES)
ACCEL = DEV.platform != "cpu"
STRATS = ("vmap", "map-vmap", "map")


def log(*a):
    print(*a, flush=True)


def left() -> float:
    return ARGS.budget - (time.perf_counter() - T_START)


def block(x):
    return jax.block_until_ready(x)


def timed(fn, repeats):
    """(first call s, best of `repeats` further calls s, last output)."""
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    best = None
    for _ in range(repeats):
        if left() < 0 and best is not None:
            break
        t = time.perf_counter()
        out = fn()
        w = time.perf_counter() - t
        best = w if best is None else min(best, w)
    return first, (first if best is None else best), out


# ----------------------------------------------------------------------------------------------
# sections


def sec_matmul(res):
    """Batched matmul on every device at once (pmap; one device on a one-GPU machine): streaming operands of
    about 128 MB in all, and a chain of products on (64, n, n) blocks that stay in cache / on chip."""
    rows = []
    for n in (16, 32):
        for dt in ("float32", "float64"):
            B = 8 if ARGS.tiny else max(1024, int(2 ** 27 // (n * n * 8)))
            b = max(1, B // NDEV)
            k1, k2 = jax.random.split(jax.random.PRNGKey(0))
            A = jax.random.normal(k1, (NDEV, b, n, n), dt)
            C = (jax.random.normal(k2, (NDEV, b, n, n), dt) / np.sqrt(n)).astype(dt)
            f = jax.pmap(jnp.matmul)
            first, best, _ = timed(lambda: block(f(A, C)), 3 if ARGS.tiny else 10)
            g = 2 * n ** 3 * b * NDEV / best / 1e9
            chain = 8 if ARGS.tiny else 256
            h = jax.pmap(lambda X, Y: jax.lax.fori_loop(0, chain, lambda i, Z: jnp.matmul(Z, Y), X))
            A2, C2 = A[:, :64], C[:, :64]
            _, best2, _ = timed(lambda: block(h(A2, C2)), 3)
            g2 = 2 * n ** 3 * A2.shape[1] * NDEV * chain / best2 / 1e9
            rows.append(dict(n=n, dtype=dt, members=b * NDEV, devices=NDEV, wall_s=best, gflops=g, incache_gflops=g2))
            log(f"  matmul ({b * NDEV},{n},{n}) {dt} on {NDEV} device(s): {g:.1f} GFLOP/s streaming, "
                f"{g2:.1f} in cache")
    res["matmul"] = rows


def matmul_ref(res, n, dtype=None):
    dt = dtype or ARGS.dtype
    mm = res.get("matmul") if isinstance(res.get("matmul"), list) else []
    for r in mm:
        if r["n"] == n and r["dtype"] == dt:
            return r["gflops"]
    best = [r for r in mm if r["dtype"] == dt]
    return max((r["gflops"] for r in best), default=None)


def _problem(B, n):
    rng = np.random.default_rng(0)
    hyper = bd.Hyper(rng.uniform(0.5, 2.0, B).astype(DTYPE), rng.uniform(0.0, 0.05, B).astype(DTYPE),
                     rng.uniform(0.2, 2.0, B).astype(DTYPE))
    data = bd.Data.isotropic(n, rng.uniform(0.1, 1.0, B).astype(DTYPE))
    keys = jax.random.split(jax.random.PRNGKey(0), B)
    s0 = jax.vmap(lambda k: bd.State.random(k, n, n, scale=0.5, dtype=DTYPE))(keys)
    return s0, hyper, data


def _take(tree, k):
    return jax.tree.map(lambda a: a[:k] if hasattr(a, "ndim") and a.ndim and a.shape[0] > 1 else a, tree)


def row(section, strategy, resolved, members, timed_members, first, best, work_flops, ref_gflops, diff, extra=None):
    """One table row; `work_flops` for `timed_members` members; wall extrapolated to `members` if fewer."""
    scale = members / timed_members
    wall = best * scale
    g = None if work_flops is None else work_flops / best / 1e9
    r = dict(section=section, strategy=strategy, resolved=resolved, members=members, timed_members=timed_members,
             extrapolated=timed_members != members, first_call_s=first, wall_s=wall,
             members_per_s=members / wall, gflops=g,
             frac_matmul=None if g is None or not ref_gflops else g / ref_gflops, max_diff=diff, **(extra or {}))
    log(f"  {section} {strategy}{'' if resolved == strategy else ' -> ' + str(resolved)}: "
        f"{wall:.3f} s{f' (extrap. from {timed_members})' if r['extrapolated'] else ''}, first call {first:.1f} s"
        + ("" if g is None else f", {g:.3g} GFLOP/s") + ("" if diff is None else f", max diff {diff:.1e}"))
    return r


def sec_simulate(res):
    B, n, t1 = ARGS.sim_members, ARGS.sim_n, ARGS.sim_t1
    F = 6 * n ** 3 + 10 * n ** 2
    s0, hyper, data = _problem(B, n)
    ts = jnp.asarray([t1], DTYPE)
    ws = working_set(s0, 1)
    ndev = NDEV
    rows, ref = [], None
    auto = resolve_strategy("auto", DEV.platform, -(-B // ndev), ws, ARGS.block, DEV)
    for strategy in STRATS:
        if left() < 20:
            rows.append(dict(section="simulate", strategy=strategy, skipped="time budget"))
            continue
        k = min(B, ARGS.map_members) if (strategy == "map" and ACCEL) else B
        args = (s0, hyper, data) if k == B else (_take(s0, k), _take(hyper, k), _take(data, k))
        kind, blk = resolve_strategy(strategy, DEV.platform, -(-k // ndev), ws, ARGS.block, DEV)

        def run():
            sol = bd.simulate_batch(*args, t1, ts=ts, rtol=1e-5, atol=1e-8, strategy=strategy, block=ARGS.block,
                                    devices=DEVICES)
            return block((sol.states.W[:, -1], sol.num_steps, sol.status))

        first, best, (W, steps, status) = timed(run, ARGS.repeats)
        W, steps = np.asarray(W), np.asarray(steps)
        if ref is None:
            ref = (W, steps)
        m = min(len(W), len(ref[0]))
        diff = float(np.max(np.abs(W[:m] - ref[0][:m])))
        flops = float(np.sum(6 * steps + 3)) * F
        rows.append(row("simulate", strategy, kind + (f" (block {blk})" if blk else ""), B, k, first, best, flops,
                        matmul_ref(res, n), diff,
                        dict(n=n, t1=t1, accepted_steps_mean=float(steps.mean()), steps_max=int(steps.max()),
                             steps_mismatch=int(np.sum(steps[:m] != ref[1][:m])),
                             failed=int(np.sum(np.asarray(status) != 0)))))
    res["simulate"] = dict(rows=rows, auto=dict(zip(("strategy", "block"), auto)), devices=ndev,
                           flops_note="(6 accepted + 3) x (6 n^3 + 10 n^2) per member; rejected steps not counted")


def _sweep_rows(section, level, members, n, steps, flops_per_member_step, ref_gflops):
    rng = np.random.default_rng(1)
    pts = dict(alpha_p=rng.uniform(0.5, 2.0, members), eta=rng.uniform(0.0, 0.05, members))
    dt = 0.05
    kw = dict(sigma2=0.5, beta=1.0, n1=n, scale=0.5, t1=steps * dt, dt=dt, method="rk4", progress=False)
    state = {"modes": 3 * n, "matrix": 3 * n * n}[level] * np.dtype(DTYPE).itemsize * 8
    rows, ref = [], None
    for strategy in STRATS:
        if left() < 15:
            rows.append(dict(section=section, strategy=strategy, skipped="time budget"))
            continue
        k = min(members, 4 * ARGS.map_members) if (strategy == "map" and ACCEL) else members
        p = {key: v[:k] for key, v in pts.items()}
        blk = fixed_step_block(strategy, DEV.platform, -(-k // NDEV), state, ARGS.block, DEV)

        def run():
            return bd.sweep(level, points=p, seeds=1, chunk=k, devices=DEVICES, strategy=strategy, block=ARGS.block,
                            **kw)

        first, best, ds = timed(run, ARGS.repeats)
        v = ds["norm_W"].values.reshape(-1)
        if ref is None:
            ref = v
        m = min(len(v), len(ref))
        diff = float(np.nanmax(np.abs(v[:m] - ref[:m])))
        flops = None if flops_per_member_step is None else k * steps * flops_per_member_step
        resolved = "vmap" if blk is None else ("map" if blk == 1 else f"map-vmap (block {blk})")
        rows.append(row(section, strategy, resolved, members, k, first, best, flops, ref_gflops, diff,
                        dict(n=n, steps=steps, member_steps_per_s=members * steps / (best * members / k),
                             failed=int(np.sum(ds.status.values != 0)))))
    auto = fixed_step_block("auto", DEV.platform, -(-members // NDEV), state, ARGS.block, DEV)
    return dict(rows=rows, auto="vmap" if auto is None else f"map-vmap (block {auto})")


def sec_sweep_matrix(res):
    n = ARGS.sweep_n
    res["sweep_matrix"] = _sweep_rows("sweep_matrix", "matrix", ARGS.sweep_members, n, ARGS.sweep_steps,
                                      4 * (6 * n ** 3 + 10 * n ** 2), matmul_ref(res, n))


def sec_sweep_modes(res):
    res["sweep_modes"] = _sweep_rows("sweep_modes", "modes", ARGS.mode_members, 8, ARGS.mode_steps, None, None)


def sec_basin(res):
    from byoldyn.flows.modes import ModePST, pst_field

    G = ARGS.grid
    t1, dt = (200.0, 0.05) if not ARGS.tiny else (5.0, 0.05)
    nsteps = int(np.ceil(t1 / dt))
    P_, S_ = np.meshgrid(np.linspace(-0.4, 1.2, G), np.linspace(0.0, 1.0, G))
    y0 = ModePST(jnp.asarray(P_, DTYPE), jnp.asarray(S_, DTYPE), jnp.full(P_.shape, 1.0, DTYPE))
    hyper = bd.Hyper(alpha_p=1.0, eta=0.1)
    rows_b = max(1, min(G, int(2 ** 20 // G)))  # about 1e6 lanes per block
    while G % rows_b:
        rows_b -= 1

    def vmap_run():
        return bd.phase.basin_map(pst_field, y0, t1, args=(hyper, 1.5, False), dt=dt)[1]

    @jax.jit
    def blocks(y):
        yb = jax.tree.map(lambda a: a.reshape((G // rows_b, rows_b, G)), y)
        y1 = jax.lax.map(lambda b: bd.phase.rk4(pst_field, b, t1, args=(hyper, 1.5, False), dt=dt), yb)
        return ~(jnp.abs(y1.s.reshape(G, G)) >= 1e-4)

    rows, ref = [], None
    for strategy, fn in (("vmap", vmap_run), ("map-vmap", lambda: np.asarray(block(blocks(y0))))):
        if left() < 15:
            rows.append(dict(section="basin", strategy=strategy, skipped="time budget"))
            continue
        first, best, mask = timed(fn, ARGS.repeats)
        mask = np.asarray(mask)
        ref = mask if ref is None else ref
        rows.append(row("basin", strategy, strategy if strategy == "vmap" else f"map-vmap ({rows_b} rows)",
                        G * G, G * G, first, best, 98.0 * G * G * nsteps, matmul_ref(res, 32),
                        float(np.sum(mask != ref)),
                        dict(grid=G, steps=nsteps, collapsed_fraction=float(mask.mean()))))
    res["basin"] = dict(rows=rows, note="max_diff: starts classified differently from the first row")


def sec_resnet(res):
    try:
        import flax  # noqa: F401
    except ImportError:
        res["resnet"] = dict(skipped="flax is not importable")
        log("  resnet: skipped (flax is not importable)")
        return
    from byoldyn.nets import Augment, Config, build

    B, size = ARGS.resnet_batch, (16 if ARGS.tiny else 32)
    kw = dict(stage_sizes=(1, 1, 1, 1), proj_hidden=32, proj_dim=16) if ARGS.tiny else {}
    cfg = Config(width=ARGS.resnet_width, batch_size=B, augment=Augment.cifar10(size), **kw)
    m = build(cfg)
    s = m.init(jax.random.key(0, impl="rbg"))
    x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (B, size, size, 3), dtype=np.uint8))
    key = jax.random.key(1, impl="rbg")
    flops = None
    try:
        # a step's two programs: the update (compiled, as it runs) and the augmentation (its lowered HLO: compiling
        # it apart would be another program; 0.02 % of the update's flops at width 1, batch 128, 32 x 32)
        cas = [m.update.lower(s, m.views(x, key)).compile().cost_analysis(),
               jax.jit(m.views).lower(x, key).cost_analysis()]
        cas = [ca[0] if isinstance(ca, (list, tuple)) else ca for ca in cas]
        flops = sum(float(ca["flops"]) for ca in cas) if all(ca and ca.get("flops") for ca in cas) else None
    except Exception as e:  # noqa: BLE001 - cost analysis is optional per backend
        log(f"  resnet: no cost analysis ({type(e).__name__})")
    state = {"s": s}

    def run():
        state["s"], met = m.step(state["s"], x, key)
        return float(met["loss"])

    first, best, loss = timed(run, max(1, ARGS.resnet_steps))
    r = row("resnet", "-", "data on one device", B, B, first, best, flops, matmul_ref(res, 32, "float32"), None,
            dict(width=ARGS.resnet_width, image=size, images_per_s=B / best, steps_per_s=1 / best,
                 stage_sizes=list(cfg.stage_sizes), loss=loss, flops_source="XLA cost analysis of the step"))
    res["resnet"] = dict(rows=[r])


SECTIONS = {"matmul": sec_matmul, "simulate": sec_simulate, "sweep_matrix": sec_sweep_matrix,
            "sweep_modes": sec_sweep_modes, "basin": sec_basin, "resnet": sec_resnet}


def markdown(res) -> str:
    lines = [f"Device: {res['env']['device_kind']} ({res['env']['platform']}, {res['env']['devices']} device(s) "
             f"used), jax {res['env']['jax']}, {ARGS.dtype}"
             + (" (tiny sizes)" if ARGS.tiny else ""), "",
             "| benchmark | strategy (resolved) | members | wall s | first call s | GFLOP/s | % of batched matmul "
             "| max diff vs first row |", "|---|---|---|---|---|---|---|---|"]
    for name in ("simulate", "sweep_matrix", "sweep_modes", "basin", "resnet"):
        sec = res.get(name) or {}
        for r in sec.get("rows", []):
            if "skipped" in r:
                lines.append(f"| {name} | {r['strategy']} | | skipped: {r['skipped']} | | | | |")
                continue
            ext = f" (extrap. from {r['timed_members']})" if r["extrapolated"] else ""
            g = "-" if r["gflops"] is None else f"{r['gflops']:.3g}"
            fr = "-" if r["frac_matmul"] is None else f"{100 * r['frac_matmul']:.1f}%"
            d = "-" if r["max_diff"] is None else f"{r['max_diff']:.1e}"
            lines.append(f"| {name} | {r['strategy']} ({r['resolved']}) | {r['members']} | {r['wall_s']:.3f}{ext} | "
                         f"{r['first_call_s']:.1f} | {g} | {fr} | {d} |")
        if sec.get("skipped"):
            lines.append(f"| {name} | | | skipped: {sec['skipped']} | | | | |")
        if sec.get("error"):
            lines.append(f"| {name} | | | error: {sec['error'][:80]} | | | | |")
    mm = res.get("matmul") or []
    if isinstance(mm, list) and mm:
        lines += ["", "Batched matmul (the % column's yardstick; in cache in brackets): " + ", ".join(
            f"n = {r['n']} {r['dtype']} {r['gflops']:.1f} ({r['incache_gflops']:.1f}) GFLOP/s" for r in mm)]
    auto = [f"{k}: auto -> {res[k]['auto']}" for k in ("simulate", "sweep_matrix", "sweep_modes")
            if isinstance(res.get(k), dict) and "auto" in res[k]]
    if auto:
        lines.append("; ".join(str(a) for a in auto))
    return "\n".join(lines)


def save(res, out: Path):
    res["elapsed_s"] = time.perf_counter() - T_START
    res["markdown"] = markdown(res)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(res, indent=1, default=str)))
    md = out.with_suffix(".md")
    atomic_write(md, lambda tmp: Path(tmp).write_text(res["markdown"] + "\n"))


def main():
    a = ARGS
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    mem = None
    try:
        mem = (DEV.memory_stats() or {}).get("bytes_limit")
    except Exception:  # noqa: BLE001
        pass
    env = dict(platform=DEV.platform, device_kind=DEV.device_kind, devices=jax.device_count(), jax=jax.__version__,
               jaxlib=getattr(jax.lib, "__version__", None), python=sys.version.split()[0],
               host=platform.platform(), cores=NCORES, memory_bytes=mem, dtype=a.dtype, tiny=a.tiny,
               byoldyn=bd.__version__, load_avg=os.getloadavg())
    res = dict(env=env, args=vars(a))
    log(f"# byoldyn device benchmark on {env['device_kind']} ({env['platform']}, {env['devices']} device(s)), "
        f"jax {env['jax']}, {a.dtype}{' (tiny)' if a.tiny else ''}, budget {a.budget:.0f} s")
    for name in [s.strip() for s in a.sections.split(",") if s.strip()]:
        if name not in SECTIONS:
            raise SystemExit(f"device.py: unknown section {name!r}; choose from {', '.join(SECTIONS)}")
        if left() < 10:
            res[name] = dict(skipped="time budget")
            log(f"## {name}: skipped (time budget)")
            continue
        log(f"## {name}")
        t = time.perf_counter()
        try:
            SECTIONS[name](res)
        except Exception as e:  # noqa: BLE001 - one failing section (e.g. out of memory) must not lose the others
            res[name] = dict(error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                             traceback=traceback.format_exc()[-3000:])
            log(f"  {name} failed: {res[name]['error']}")
        if isinstance(res.get(name), dict):
            res[name]["section_s"] = time.perf_counter() - t
        save(res, out)
    res["auto_block_simulate"] = auto_block(working_set(_problem(1, a.sim_n)[0], 1), DEV)
    save(res, out)
    log("\n" + res["markdown"])
    log(f"\nwrote {out} and {out.with_suffix('.md')} in {res['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
