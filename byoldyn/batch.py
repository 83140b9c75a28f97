"""`simulate_batch`: many independent solves, one member at a time per device.

`jax.vmap(simulate)` runs an adaptive batch in lockstep: every member takes as many steps
as the slowest one and every step moves the whole batch through memory. Here instead each
member is integrated by its own solver loop (`lax.map`), so it takes only its own steps on
a cache-resident state, and the members are split over all JAX devices with `shard_map`
(on a CPU host, expose one device per core with
`XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`). Results equal those of
`simulate` member by member. See `benchmarks/bench_simulate.py` for the measured speed.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from .integrate import Solution, _checked, _solve
from .model import Data, Hyper, State

__all__ = ["simulate_batch", "member_count"]

_AXIS = "members"


def _batched_mask(state: State, hyper: Hyper, data: Data):
    """Per leaf: True if it carries one leading member axis, False if it is shared by all members."""
    d = 0 if data.is_isotropic else 2

    def mark(base):
        def f(a):
            if a.ndim == base + 1:
                return True
            if a.ndim == base:
                return False
            raise ValueError(f"every field must have {base} (shared) or {base + 1} (one member axis) dimensions, "
                             f"got shape {a.shape}")
        return f

    return (jax.tree.map(mark(2), state), jax.tree.map(mark(0), hyper), jax.tree.map(mark(d), data))


def member_count(state: State, hyper: Hyper, data: Data) -> int:
    """The number of members B: the common length of every batched field's leading axis."""
    mask = _batched_mask(state, hyper, data)
    sizes = {a.shape[0] for a, m in zip(jax.tree.leaves((state, hyper, data)), jax.tree.leaves(mask)) if m}
    if len(sizes) > 1:
        raise ValueError(f"batched fields disagree on the number of members: {sorted(sizes)}")
    if not sizes:
        raise ValueError("simulate_batch needs at least one field with a leading member axis")
    return sizes.pop()


@eqx.filter_jit
def _run(batched, shared, t0, t1, ts, options, mesh):
    def per_device(batched, shared, t0, t1, ts):
        def one(member):
            y0, hyper, data = eqx.combine(member, shared)
            return _solve(y0, hyper, data, t0, t1, ts, options)

        return jax.lax.map(one, batched)

    spec_b = jax.tree.map(lambda _: P(_AXIS), batched)
    spec_s = jax.tree.map(lambda _: P(), shared)
    f = jax.shard_map(per_device, mesh=mesh, in_specs=(spec_b, spec_s, P(), P(), P()), out_specs=P(_AXIS),
                      check_vma=False)
    return f(batched, shared, t0, t1, ts)


def simulate_batch(state0: State, hyper: Hyper, data: Data, t1: float, *, devices=None, **kwargs) -> Solution:
    """`simulate` for B independent members, sharded over devices.

    **Arguments:**

    - `state0`, `hyper`, `data`: model objects in which any field may carry a leading member
      axis of length B (the others are shared by all members), e.g. `Hyper(alpha_p=array_of_B)`.
    - `t1` and every keyword of `simulate` (`ts`, `ema`, `predictor`, `rtol`, `dt`, `observe`, ...),
      shared by all members.
    - `devices`: the devices to split the members over (default: all of `jax.devices()`).

    **Returns:** a `Solution` whose every field has a leading member axis of length B (`ts` too).
    A member that diverges or runs out of steps is marked in `status`; the others are unaffected.
    """
    if kwargs.pop("progress", False):
        raise ValueError("progress is not available in simulate_batch (members run inside one program)")
    y0, hyper, data, t0, t1, ts, options = _checked(state0, hyper, data, t1, **{
        "ts": None, "t0": 0.0, "ema": True, "stop_grad": True, "predictor": "learned", "solver": None,
        "rtol": 1e-6, "atol": 1e-9, "dt": None, "max_steps": 100_000, "observe": None, "max_norm": 1e8, **kwargs})
    B = member_count(y0, hyper, data)
    batched, shared = eqx.partition((y0, hyper, data), _batched_mask(y0, hyper, data))
    devices = list(jax.devices() if devices is None else devices)[:B]
    pad = (-B) % len(devices)
    if pad:  # repeat the last member so that every device gets the same number
        batched = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), batched)
    mesh = Mesh(np.asarray(devices), (_AXIS,))
    sol = _run(batched, shared, t0, t1, ts, options, mesh)
    return jax.tree.map(lambda a: a[:B], sol)
