"""`simulate_batch`: many independent solves, with the batching strategy chosen per backend.

Strategies (`strategy=`), applied on each device to its share of the members (the members are
split over all JAX devices with `shard_map`; on a CPU host expose one device per core with
`XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`):

- `"map"`: each member in its own solver loop (`lax.map`), one after another. It takes only its
  own steps on a cache-resident state: the fastest on a CPU.
- `"vmap"`: all the device's members in lockstep (`jax.vmap` of the solver loop): one program
  whose every kernel works on the whole batch. The loop runs until the slowest member is done
  and every step moves the whole batch through memory: right for a GPU/TPU, slow on a CPU.
- `"map-vmap"`: blocks of `block` members, each block in lockstep, the blocks one after another
  (`lax.map(..., batch_size=block)`): a block waits only for its own slowest member and its state
  can fit in memory (or cache) however many members there are.
- `"auto"` (default): `"map"` on a CPU; on a GPU/TPU `"vmap"` when the device's members fit one
  block (`auto_block`), else `"map-vmap"`.

Step control is per member in every strategy: under `vmap`, diffrax's while loop keeps each
lane's own time, step size and controller state, and a finished lane is masked, not stepped.
So the accepted steps and results of a member are the same whichever strategy is used; the
only difference is rounding, because batched kernels may sum in another order: fixed-step
solves were bit-identical on CPU in every test, adaptive ones take the same steps and agree to
rounding (4e-16 in the tests, 2e-14 for 1024 members at n = 32 to t = 50; `tests/test_batch.py`). An accept/reject decision that lands
within rounding of the threshold could flip and then give a difference of order rtol; none was
seen.
See `benchmarks/bench_simulate.py` and `benchmarks/device.py` for the measured speed.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from .integrate import Solution, checked_args, solve_checked
from .model import Data, Hyper, State
from .predictors import Variant, as_variant

__all__ = ["simulate_batch", "member_count", "working_set", "STRATEGIES", "resolve_strategy", "auto_block", "fixed_step_block",
           "CPU_BLOCK_BYTES"]

_AXIS = "members"
STRATEGIES = ("auto", "map", "vmap", "map-vmap")
_SIMULATE_KEYWORDS = ("ts", "t0", "variant", "ema", "stop_grad", "predictor", "solver", "rtol", "atol", "dt", "max_steps",
                      "observe", "max_norm")


def batched_mask(state: State, hyper: Hyper, data: Data, variant: Variant | None = None):
    """Per leaf: True if it carries one leading member axis, False if it is shared by all members (the variant's
    array leaves: its predictor's parameters, scalars or one per member)."""
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

    masks = (jax.tree.map(mark(2), state), jax.tree.map(mark(0), hyper), jax.tree.map(mark(d), data))
    if variant is None:
        return masks
    return masks + (jax.tree.map(mark(0), eqx.filter(variant, eqx.is_array)),)


def member_count(state: State, hyper: Hyper, data: Data, variant: Variant | None = None) -> int:
    """The number of members B: the common length of every batched field's leading axis."""
    objs = (state, hyper, data) + (() if variant is None else (eqx.filter(variant, eqx.is_array),))
    mask = batched_mask(state, hyper, data, variant)
    sizes = {a.shape[0] for a, m in zip(jax.tree.leaves(objs), jax.tree.leaves(mask)) if m}
    if len(sizes) > 1:
        raise ValueError(f"batched fields disagree on the number of members: {sorted(sizes)}")
    if not sizes:
        raise ValueError("simulate_batch needs at least one field with a leading member axis")
    B = sizes.pop()
    if B < 1:
        raise ValueError(f"simulate_batch needs at least one member: the member axis (B) has length {B}")
    return B


def auto_block(per_member_bytes: int, device=None) -> int:
    """Members per lockstep block on an accelerator: about 1/16 of the device's memory (4 GiB if
    the device does not say) divided by a member's working set (`per_member_bytes`), at least 1."""
    limit = None
    try:
        stats = (device or jax.devices()[0]).memory_stats() or {}
        limit = stats.get("bytes_limit")
    except Exception:  # noqa: BLE001 - CPU devices and some plugins have no memory stats
        limit = None
    budget = (int(limit) // 16) if limit else 4 << 30
    return max(1, budget // max(1, int(per_member_bytes)))


def resolve_strategy(strategy: str, platform: str, members_per_device: int, per_member_bytes: int,
                     block: int | None = None, device=None) -> tuple[str, int | None]:
    """The strategy actually run, `("map" | "vmap" | "map-vmap", block)`, for `strategy` on a device of
    `platform` ("cpu", "gpu", "tpu", ...) holding `members_per_device` members."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if block is not None and (isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1):
        raise ValueError(f"block must be None or a positive integer, got {block!r}")
    if strategy == "auto":
        if platform == "cpu":
            return "map", None
        cap = int(block) if block is not None else auto_block(per_member_bytes, device)
        return ("vmap", None) if members_per_device <= cap else ("map-vmap", cap)
    if strategy == "map-vmap":
        b = int(block) if block is not None else (
            auto_block(per_member_bytes, device) if platform != "cpu" else 8)
        return "map-vmap", max(1, min(b, members_per_device))
    return strategy, None


#: the working set of one lockstep block of fixed-step members on a CPU: a block this big stays in the
#: caches while it takes all its steps (measured in `benchmarks/bench_sweep.py`, section "blocks")
CPU_BLOCK_BYTES = 1 << 21


def fixed_step_block(strategy: str, platform: str, members_per_device: int, per_member_bytes: int,
                     block: int | None = None, device=None) -> int | None:
    """Members per lockstep block of a fixed-step program (`byoldyn.sweeps`), None for the whole batch at once.

    A fixed-step batch has no lockstep waste (every member takes the same steps), so what matters is where
    the state lives: `"map"` is blocks of 1, `"vmap"` the whole batch, `"map-vmap"` blocks of `block`
    members; `"auto"` on a CPU is cache-sized blocks (`CPU_BLOCK_BYTES` of working set, a power of two),
    on a GPU/TPU the whole batch (`auto_block` blocks if it does not fit).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if block is not None and (isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1):
        raise ValueError(f"block must be None or a positive integer, got {block!r}")
    m = int(members_per_device)
    if strategy == "vmap":
        return None
    if strategy == "map":
        return 1 if m > 1 else None
    if block is not None:
        b = int(block)
    elif platform == "cpu":
        b = 2 ** max(0, int(np.floor(np.log2(max(1, CPU_BLOCK_BYTES // max(1, int(per_member_bytes)))))))
    else:
        b = auto_block(per_member_bytes, device)
    return None if b >= m else b


def working_set(y0: State, n_save: int) -> int:
    """Bytes a member's solve keeps in flight: its state times (saves + about 12 solver copies)."""
    per_state = sum(int(np.prod(a.shape[1:] if a.ndim == 3 else a.shape)) * a.dtype.itemsize
                    for a in jax.tree.leaves(y0))
    return per_state * (int(n_save) + 12)


@eqx.filter_jit
def _run(batched, shared, static_variant, t0, t1, ts, options, mesh, kind, block):
    def per_device(batched, shared, t0, t1, ts):
        def one(member):
            y0, hyper, data, variant = eqx.combine(member, shared)
            return solve_checked(y0, hyper, data, eqx.combine(variant, static_variant), t0, t1, ts, options)

        if kind == "vmap":
            return jax.vmap(one)(batched)
        if kind == "map-vmap":
            return jax.lax.map(one, batched, batch_size=block)
        return jax.lax.map(one, batched)

    spec_b = jax.tree.map(lambda _: P(_AXIS), batched)
    spec_s = jax.tree.map(lambda _: P(), shared)
    f = jax.shard_map(per_device, mesh=mesh, in_specs=(spec_b, spec_s, P(), P(), P()), out_specs=P(_AXIS),
                      check_vma=False)
    return f(batched, shared, t0, t1, ts)


def simulate_batch(state0: State, hyper: Hyper, data: Data, t1: float, *, devices=None, strategy: str = "auto",
                   block: int | None = None, **kwargs) -> Solution:
    """`simulate` for B independent members, sharded over devices, batched by `strategy`.

    **Arguments:**

    - `state0`, `hyper`, `data`: model objects in which any field may carry a leading member
      axis of length B >= 1 (the others are shared by all members), e.g. `Hyper(alpha_p=array_of_B)`.
    - `t1` and every keyword of `simulate` (`ts`, `variant` or its shorthands `ema`, `stop_grad`, `predictor`,
      `rtol`, `dt`, `observe`, ...), shared by all members, except a predictor parameter given as an array
      with one value per member (e.g. `predictor=bd.DirectPred(eps=jnp.array([0.1, 0.2]))`).
    - `devices`: a non-empty list of devices to split the members over (default: all of `jax.devices()`).
    - `strategy`: `"auto"`, `"map"`, `"vmap"` or `"map-vmap"` (module docstring); `block`: members
      per lockstep block of `"map-vmap"` (and the largest lockstep batch of `"auto"` on an accelerator;
      default from the device's memory, 8 on a CPU).

    **Returns:** a `Solution` whose every field has a leading member axis of length B (`ts` too).
    A member that diverges or runs out of steps is marked in `status`; the others are unaffected.

    Example (SimSiam, σ² = 0.5: η_c = 1/(4κ) = 1/6; two members, η = 0.05 and 0.3, from W = Wp = 0.5 I on the
    parabola above p*_−; fixed steps keep the flow's fixed points): the first ends at s = p*_+², the second
    collapses (Obs#5):

    >>> import jax.numpy as jnp, numpy as np, byoldyn as bd
    >>> s0, hyper = bd.State(0.5 * jnp.eye(4), 0.5 * jnp.eye(4)), bd.Hyper(eta=jnp.array([0.05, 0.3]))
    >>> sol = bd.simulate_batch(s0, hyper, bd.Data.isotropic(4, sigma2=0.5), 60.0, ts=[60.0], ema=False, dt=0.1)
    >>> W = np.asarray(sol.states.W[:, -1])                   # (members, n2, n1) at t = 60
    >>> np.round(np.linalg.eigvalsh(W @ W.transpose(0, 2, 1)), 4).tolist(), round(float(bd.theory.p_star(
    ...     1.0, 1.5, 0.05)[1]) ** 2, 4)
    ([[0.3748, 0.3748, 0.3748, 0.3748], [0.0, 0.0, 0.0, 0.0]], 0.3748)
    """
    if kwargs.pop("progress", False):
        raise ValueError("progress is not available in simulate_batch (members run inside one program)")
    unknown = sorted(set(kwargs) - set(_SIMULATE_KEYWORDS))
    if unknown:
        raise ValueError(f"simulate_batch got unknown keyword(s) {', '.join(unknown)}; "
                         f"choose from devices, strategy, block, {', '.join(_SIMULATE_KEYWORDS)}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    variant = as_variant(kwargs.pop("variant", None), **{k: kwargs.pop(k, None) for k in ("ema", "stop_grad",
                                                                                         "predictor")})
    y0, hyper, data, variant, t0, t1, ts, options = checked_args(state0, hyper, data, t1, **{
        "ts": None, "t0": 0.0, "variant": variant, "solver": None, "rtol": 1e-6, "atol": 1e-9, "dt": None,
        "max_steps": 100_000, "observe": None, "max_norm": 1e8, **kwargs})
    B = member_count(y0, hyper, data, variant)
    if devices is not None:
        devices = list(devices) if not isinstance(devices, jax.Device) else [devices]
        if not devices or not all(isinstance(d, jax.Device) for d in devices):
            raise ValueError(f"devices must be a non-empty list of JAX devices, got {devices!r}")
    dyn_variant, static_variant = eqx.partition(variant, eqx.is_array)
    batched, shared = eqx.partition((y0, hyper, data, dyn_variant), batched_mask(y0, hyper, data, variant))
    devices = list(jax.devices() if devices is None else devices)[:B]
    per_device = -(-B // len(devices))
    kind, blk = resolve_strategy(strategy, devices[0].platform, per_device, working_set(y0, len(ts)), block,
                                 devices[0])
    pad = (-B) % len(devices)
    if pad:  # repeat the last member so that every device gets the same number
        batched = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), batched)
    mesh = Mesh(np.asarray(devices), (_AXIS,))
    sol = _run(batched, shared, static_variant, t0, t1, ts, options, mesh, kind, blk)
    return jax.tree.map(lambda a: a[:B], sol)
