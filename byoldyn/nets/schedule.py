"""Learning-rate and EMA schedules, and named presets of `byoldyn train`.

* `lr_schedule(config, lr)`: `config.warmup_steps` steps of linear warmup from 0 to `lr`, then constant
  (`lr_schedule="constant"`, the official code: no schedule, section 11) or a half-cosine decay to 0 at
  `config.total_steps` (`"cosine"`, BYOL / SimSiam). With no warmup and a constant schedule it is the
  plain float `lr`, so the official recipe's optimizer is unchanged.
* `ema_at(config, k)`: the target's retention at step k. `"constant"`: `config.ema`. `"byol"`: BYOL's
  schedule `tau_k = 1 - (1 - tau_0)(cos(pi k / K) + 1) / 2` with `tau_0 = config.ema`, K =
  `config.total_steps` (tau rises from tau_0 to 1).
* `PRESETS` (in `byoldyn.nets.presets`, which needs no extra): named settings of `byoldyn train` flags (argparse dest names). `official` is the official
  code's CIFAR-10 recipe (the defaults); `paper-cifar10` the paper's App. C full-scale run (ResNet-18
  width 1, full CIFAR-10 50k, 100 epochs, the official optimizer); `cpu-hour` the CPU recipe search's best
  run (figures/nets/SEARCH.md: ResNet-10 w0.25, copy target, lr 0.2 warmup + cosine, BYOL EMA schedule,
  alpha_p 10, 4,000 steps, about one hour of one core).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import optax

__all__ = ["lr_schedule", "ema_at"]


def lr_schedule(config, lr: float):
    """The learning rate as an optax schedule (or a float when there is no schedule) for peak `lr`."""
    w, K = config.warmup_steps, config.total_steps
    if config.lr_schedule == "constant":
        if w == 0:
            return lr
        return optax.join_schedules([optax.linear_schedule(0.0, lr, w), optax.constant_schedule(lr)], [w])
    return optax.warmup_cosine_decay_schedule(0.0, lr, w, K, end_value=0.0) if w else \
        optax.cosine_decay_schedule(lr, K)


def ema_at(config, k):
    """Target retention at (0-based) step `k` (a float or a jax scalar); see the module docstring."""
    if config.ema_schedule == "constant" or config.ema == 0:
        return config.ema
    K = config.total_steps
    frac = jnp.minimum(jnp.asarray(k, jnp.float32) / K, 1.0)
    return 1.0 - (1.0 - config.ema) * (jnp.cos(math.pi * frac) + 1.0) / 2.0
