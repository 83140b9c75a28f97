#!/usr/bin/env python
"""Training steps per second of one BYOL step on ResNet-18 (CIFAR stem), byoldyn vs PyTorch.

    python benchmarks/bench_train.py [--width 0.25] [--batch 128] [--size 32] [--steps 5]
        [--predictors linear directpred] [--depth 18|10] [--dtype float32|bfloat16]
        [--preset paper-cifar10] [--no-torch] [--out benchmarks/results/train.json] [--tiny]

`--preset paper-cifar10` is the paper's App. C step (ResNet-18 width 1, batch 128, 32 x 32): with
`--dtype bfloat16` (mixed precision) it times the full-scale run of `byoldyn train --preset
paper-cifar10` on whatever device JAX finds (GPU, TPU or CPU). Each row also reports the memory: the
device's peak bytes in use where JAX reports it (GPU / TPU), else the process's peak resident memory.

Same step in both (THEORY.md sections 10.2 and 11): two views through the online ResNet-18 +
projector (512-128, BN without affine) + linear predictor (128x128, no bias), target net (independent,
EMA 0.996, BN in train mode) under no-grad, symmetric cosine loss, SGD lr 0.03 momentum 0.9 wd 4e-4
on the online net and the predictor, EMA of the target parameters.

* byoldyn: `byoldyn.nets.build(config).step`, jitted, including the on-device augmentation of both
  views (crop, flip, jitter, grayscale, normalize) of a uint8 batch. Rows for each `--predictors`
  (directpred adds F̂'s update and an eigh per step).
* torch (optional: skipped when torch is missing): the same network written in plain torch
  (torchvision does not import beside the CPU torch wheel here), fed pre-augmented random float32
  views, so its row EXCLUDES augmentation, which favours torch. `torch.set_num_threads(os.cpu_count())`.

Each row: the first call (compile + run) timed apart, then the median over `--steps` timed steps
(after one more warm-up). Reports steps/s and images/s (= batch/s; each image is seen in two views).
`--tiny` (a smoke run, as in the test suite): ResNet-10 width 1/16, projector 32-16, batch 8, 16 x 16, 2 steps,
the linear predictor, no torch, written to the temporary directory unless --out is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def memory():
    """`(bytes, what)`: the device's peak bytes in use if JAX reports it, else this process's peak RSS."""
    import resource

    import jax

    stats = getattr(jax.local_devices()[0], "memory_stats", lambda: None)() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), f"{jax.local_devices()[0].platform} peak bytes in use"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host peak RSS"


def bench_byoldyn(width, batch, size, steps, predictor, depth=18, dtype="float32", proj=(512, 128)):
    import jax
    import numpy as np

    from byoldyn.nets import Augment, Config, build

    cfg = Config(width=width, batch_size=batch, augment=Augment.cifar10(size), predictor=predictor,
                 stage_sizes=(2, 2, 2, 2) if depth == 18 else (1, 1, 1, 1), dtype=dtype,
                 proj_hidden=proj[0], proj_dim=proj[1])
    m = build(cfg)
    s = m.init(jax.random.key(0, impl="rbg"))
    x = jax.numpy.asarray(np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
    t = time.perf_counter()
    s, met = m.step(s, x, jax.random.key(1, impl="rbg"))
    jax.block_until_ready(s)
    first = time.perf_counter() - t
    s, met = m.step(s, x, jax.random.key(2, impl="rbg"))
    jax.block_until_ready(s)
    times = []
    for i in range(steps):
        t = time.perf_counter()
        s, met = m.step(s, x, jax.random.key(3 + i, impl="rbg"))
        float(met["loss"])
        times.append(time.perf_counter() - t)
    return first, times


def bench_torch(width, batch, size, steps):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    ch = lambda b: max(1, round(b * width))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.sc = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                       if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            y = F.relu(self.b1(self.c1(x)))
            return F.relu(self.b2(self.c2(y)) + self.sc(x))

    class Net(nn.Module):  # torchvision resnet18 with the CIFAR stem, no fc, + projector
        def __init__(self):
            super().__init__()
            c0 = ch(64)
            layers = [nn.Conv2d(3, c0, 3, 1, 1, bias=False), nn.BatchNorm2d(c0), nn.ReLU()]
            cin = c0
            for i in range(4):
                cout = ch(64 * 2**i)
                for j in range(2):
                    layers.append(Block(cin, cout, 2 if i > 0 and j == 0 else 1))
                    cin = cout
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            self.enc = nn.Sequential(*layers)
            self.proj = nn.Sequential(nn.Linear(cin, 512), nn.BatchNorm1d(512, affine=False), nn.ReLU(),
                                      nn.Linear(512, 128))

        def forward(self, x):
            return self.proj(self.enc(x))

    online, target, pred = Net(), Net(), nn.Linear(128, 128, bias=False)
    opt = torch.optim.SGD(online.parameters(), lr=0.03, momentum=0.9, weight_decay=4e-4)
    popt = torch.optim.SGD(pred.parameters(), lr=0.03, momentum=0.9, weight_decay=4e-4)
    x1 = torch.randn(batch, 3, size, size)
    x2 = torch.randn(batch, 3, size, size)

    def loss_fn(y, z):
        return 2 - 2 * (F.normalize(y, dim=1) * F.normalize(z, dim=1)).sum(dim=1)

    def step():
        p1, p2 = pred(online(x1)), pred(online(x2))
        with torch.no_grad():
            z1, z2 = target(x1), target(x2)
        loss = (loss_fn(p1, z2) + loss_fn(p2, z1)).mean()
        opt.zero_grad()
        popt.zero_grad()
        loss.backward()
        opt.step()
        popt.step()
        with torch.no_grad():
            for pt, po in zip(target.parameters(), online.parameters()):
                pt.mul_(0.996).add_(po, alpha=0.004)
        return float(loss.detach())

    t = time.perf_counter()
    step()
    first = time.perf_counter() - t
    step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return first, times, torch.__version__


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--predictors", nargs="+", default=["linear", "directpred"])
    p.add_argument("--depth", type=int, choices=(18, 10), default=18)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--proj", type=int, nargs=2, default=(512, 128), metavar=("HIDDEN", "DIM"))
    p.add_argument("--preset", choices=("paper-cifar10",), default=None,
                   help="paper-cifar10: width 1, batch 128, 32x32, ResNet-18 (overrides those flags)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--out", default=None, help="default benchmarks/results/train.json")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke run of the whole script)")
    a = p.parse_args(argv)
    if a.tiny:  # the config of tests/_nets_tiny.TINY, so that the test suite compiles its step once
        a.width, a.depth, a.proj, a.batch, a.size, a.steps = 0.0625, 10, (32, 16), 8, 16, 2
        a.predictors, a.no_torch = ["linear"], True
    a.out = a.out or (os.path.join(tempfile.gettempdir(), "byoldyn-bench-tiny", "train.json") if a.tiny
                      else "benchmarks/results/train.json")
    if a.preset == "paper-cifar10":
        a.width, a.batch, a.size, a.depth = 1.0, 128, 32, 18
    import jax

    rows = []
    dev = f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind})"
    for pred in a.predictors:
        first, times = bench_byoldyn(a.width, a.batch, a.size, a.steps, pred, a.depth, a.dtype, tuple(a.proj))
        mem, what = memory()
        rows.append(dict(impl=f"byoldyn (jax {jax.__version__}, {dev}, {a.dtype}), predictor={pred}, incl. augmentation",
                         first_call_s=first, step_s=statistics.median(times), steps=times, memory_bytes=mem,
                         memory=what))
    if not a.no_torch and (a.depth, a.dtype, tuple(a.proj)) == (18, "float32", (512, 128)):
        try:
            first, times, tv = bench_torch(a.width, a.batch, a.size, a.steps)
            mem, what = memory()
            rows.append(dict(impl=f"torch {tv}, predictor=linear, excl. augmentation",
                             first_call_s=first, step_s=statistics.median(times), steps=times, memory_bytes=mem,
                             memory=what + " (whole process)"))
        except ImportError:
            print("torch not installed: torch row skipped", file=sys.stderr)
    for r in rows:
        r["steps_per_s"] = 1.0 / r["step_s"]
        r["images_per_s"] = a.batch / r["step_s"]
    print(f"ResNet-{a.depth} width {a.width}, batch {a.batch}, {a.size}x{a.size}, {a.dtype}, {os.cpu_count()} cores, "
          f"median of {a.steps} steps")
    print("| implementation | first call (s) | step (s) | steps/s | images/s | memory MiB |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['impl']} | {r['first_call_s']:.1f} | {r['step_s']:.3f} | {r['steps_per_s']:.2f} | "
              f"{r['images_per_s']:.0f} | {r['memory_bytes'] / 2**20:.0f} ({r['memory']}) |")
    res = dict(width=a.width, batch=a.batch, size=a.size, depth=a.depth, dtype=a.dtype, proj=list(a.proj),
               cores=os.cpu_count(), machine=platform.machine(), device=dev, load_avg=os.getloadavg(), rows=rows)
    from byoldyn.io import atomic_write

    atomic_write(a.out, lambda tmp: Path(tmp).write_text(json.dumps(res, indent=1)))
    print(f"wrote {a.out}")
    return res


if __name__ == "__main__":
    main()
