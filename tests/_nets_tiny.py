"""Shared tiny settings of the tests/test_nets_*.py files (equal configs share one compiled step)."""

import numpy as np

from byoldyn.nets import Augment, Config, Dataset

# ResNet-10 layout (one block per stage) at width 1/16 (4..32 channels) on 16x16 images; the CLI
# test's flags build exactly this config, so it reuses the compiled step.
TINY = Config(width=1 / 16, stage_sizes=(1, 1, 1, 1), proj_hidden=32, proj_dim=16, batch_size=8,
              augment=Augment.cifar10(16))


def tiny_dataset(n: int, seed: int = 0, size: int = 16, classes: int = 3) -> Dataset:
    """Random uint8 images whose mean colour depends on the label (so features carry some signal)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    base = (y[:, None, None, None] * 80 + 20).astype(np.int64)
    x = np.clip(base + rng.integers(-20, 21, (n, size, size, 3)), 0, 255).astype(np.uint8)
    return Dataset(x, y.astype(np.int32), tuple(f"c{i}" for i in range(classes)))
