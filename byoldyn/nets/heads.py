"""Projector and predictor heads (THEORY.md sections 10.2 and 11).

* `Projector`: `Linear(d, hidden) -> BatchNorm(affine=False) -> ReLU -> Linear(hidden, out)`, as in the
  official code (its BN has no affine parameters, unlike BYOL's); `out_bn=True` appends SimSiam's output
  `BatchNorm(out, affine=False)` (Chen & He 2021), which removes the projections' batch mean.
* The heads' normalisation (`norm`, one of `HEAD_NORMS`; `Config.head_norm`): "bn" (the BatchNorm above),
  "center" (BN's zero-mean step alone, `x - mean_b x`, the batch mean differentiated: the step that the
  companion paper, arXiv 2010.00578, finds creates BYOL's implicit contrastive term), "center-detach" (the
  same with the batch mean under `stop_gradient`: the official code's custom BN with mean "detach" and std
  "omit") or "none" (no layer). It replaces every normalisation layer of the heads: the projector's hidden
  one, its output one (`out_bn`) and the mlp predictor's hidden one; the linear predictor has none.
* `LinearPredictor`: `y = Wp f (+ b)`, one `Linear(out, out)`. Also used by DirectPred / DirectCopy,
  whose `Wp` is overwritten from F̂ (`byoldyn.predictors`).
* `MLPPredictor`: `Linear(out, hidden) -> BN(affine=False) -> ReLU -> Linear(hidden, out)`.
* `IdentityPredictor`: no predictor (Wp = I, nothing to learn).

Flax stores a Linear's kernel K with `y = f K`, so the paper's Wp (`y = Wp f`) is `Kᵀ`; use
`predictor_matrix` / `set_predictor_matrix` rather than the kernel directly.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from flax import nnx

from .. import predictors as P
from .config import HEAD_NORMS

__all__ = ["Projector", "LinearPredictor", "MLPPredictor", "IdentityPredictor", "Center", "make_predictor",
           "head_norm_layer", "predictor_matrix", "set_predictor_matrix", "projector_gram", "symmetrize_predictor",
           "PREDICTORS", "HEAD_NORMS"]

PREDICTORS = (*P.PREDICTORS, "mlp")  # the shared registry plus the ResNet-only mlp (as nets.config)

# torch nn.Linear init: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias likewise
_lin_init = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _torch_bias_init(fan_in):
    bound = 1.0 / jnp.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def _linear(cin, cout, *, bias=True, dtype=None, rngs):
    return nnx.Linear(cin, cout, use_bias=bias, kernel_init=_lin_init,
                      bias_init=_torch_bias_init(cin), dtype=dtype, rngs=rngs)


_BN = partial(nnx.BatchNorm, momentum=0.9, epsilon=1e-5, use_bias=False, use_scale=False, dtype=jnp.float32)


class Center(nnx.Module):
    """`x - mean_b x`: BatchNorm's zero-mean step alone (no division by the batch std, no affine), in float32.

    `detach=True` takes the batch mean under `stop_gradient` (the gradient flows as if a constant were
    subtracted). Like BN it keeps a running mean (`mean`, a `nnx.BatchStat`, momentum 0.9 as every BN here)
    and subtracts it instead in eval mode (`use_running_average`, set by `nnx.view`)."""

    def __init__(self, n: int, *, detach: bool = False, momentum: float = 0.9, use_running_average: bool = False,
                 rngs: nnx.Rngs | None = None):
        self.mean = nnx.BatchStat(jnp.zeros((n,), jnp.float32))
        self.detach, self.momentum, self.use_running_average = detach, momentum, use_running_average

    def __call__(self, x):
        x = x.astype(jnp.float32)
        axes = tuple(range(x.ndim - 1))  # every axis but the features'
        if self.use_running_average:
            return x - jnp.expand_dims(self.mean[...], axes)
        mu = jnp.mean(x, axis=axes, keepdims=True)
        run = self.momentum * self.mean[...] + (1 - self.momentum) * mu.reshape(self.mean.shape)
        self.mean[...] = jax.lax.stop_gradient(run)
        return x - (jax.lax.stop_gradient(mu) if self.detach else mu)

    def set_view(self, use_running_average: bool | None = None):
        """`nnx.view(module, use_running_average=True)`: subtract the running mean (eval mode)."""
        if use_running_average is not None:
            self.use_running_average = use_running_average


def head_norm_layer(norm: str, n: int, *, rngs: nnx.Rngs) -> nnx.Module | None:
    """The heads' normalisation layer of kind `norm` (one of `HEAD_NORMS`) on `n` features; None for "none"."""
    if norm == "bn":
        return _BN(n, rngs=rngs)
    if norm in ("center", "center-detach"):
        return Center(n, detach=norm == "center-detach")
    if norm == "none":
        return None
    raise ValueError(f"head_norm must be one of {', '.join(HEAD_NORMS)}, got {norm!r}")


def _norm(layer, x):
    return x if layer is None else layer(x)


class Projector(nnx.Module):
    """`Linear(d, hidden) -> BN(hidden, affine=False) -> ReLU -> Linear(hidden, out)` (section 11).

    `dtype`: compute dtype of the two matmuls (None: float32; bfloat16 for mixed precision).
    `out_bn`: append a normalisation of the projections (SimSiam's projector ends with `BN(out, affine=False)`;
    not the official code). `norm`: the kind of both layers (`HEAD_NORMS`; "none" drops the hidden one and
    refuses `out_bn`)."""

    def __init__(self, d: int, hidden: int = 512, out: int = 128, *, dtype=None, out_bn: bool = False,
                 norm: str = "bn", rngs: nnx.Rngs):
        if out_bn and norm == "none":
            raise ValueError("proj_out_bn must be False when head_norm is none (no normalisation in the heads)")
        self.fc1 = _linear(d, hidden, dtype=dtype, rngs=rngs)
        self.bn = head_norm_layer(norm, hidden, rngs=rngs)
        self.fc2 = _linear(hidden, out, dtype=dtype, rngs=rngs)
        self.out_bn = head_norm_layer(norm, out, rngs=rngs) if out_bn else None

    def __call__(self, x):
        z = self.fc2(nnx.relu(_norm(self.bn, self.fc1(x))))
        return _norm(self.out_bn, z)


class LinearPredictor(nnx.Module):
    """`y = Wp f (+ b)`: the one-layer linear predictor of the theory (Eq. 1) and of DirectPred."""

    def __init__(self, d: int, *, bias: bool = False, rngs: nnx.Rngs):
        self.fc = _linear(d, d, bias=bias, rngs=rngs)

    def __call__(self, f):
        return self.fc(f)


class MLPPredictor(nnx.Module):
    """`Linear(d, hidden) -> BN(affine=False) -> ReLU -> Linear(hidden, d)`, BYOL's default predictor; `norm`
    the kind of its normalisation (`HEAD_NORMS`)."""

    def __init__(self, d: int, hidden: int = 512, *, bias: bool = True, norm: str = "bn", rngs: nnx.Rngs):
        self.fc1 = _linear(d, hidden, bias=bias, rngs=rngs)
        self.bn = head_norm_layer(norm, hidden, rngs=rngs)
        self.fc2 = _linear(hidden, d, bias=bias, rngs=rngs)

    def __call__(self, f):
        return self.fc2(nnx.relu(_norm(self.bn, self.fc1(f))))


class IdentityPredictor(nnx.Module):
    """No predictor: `y = f`."""

    def __init__(self, d: int, *, rngs: nnx.Rngs | None = None):
        self.d = d

    def __call__(self, f):
        return f


def make_predictor(kind: str, d: int, *, bias: bool = False, hidden: int = 512, norm: str = "bn",
                   rngs: nnx.Rngs) -> nnx.Module:
    """The predictor named `kind` (one of `PREDICTORS`) acting on `d`-dimensional projections; `norm` the
    normalisation of the mlp's hidden layer (the others have none)."""
    kind = P.ALIASES.get(kind, kind)  # the former "linear", "none"
    if kind == "mlp":
        return MLPPredictor(d, hidden, bias=bias, norm=norm, rngs=rngs)
    if kind == "identity":
        return IdentityPredictor(d)
    if kind in P.PREDICTORS:  # learned, symmetric, DirectPred, DirectCopy: a linear Wp
        return LinearPredictor(d, bias=bias, rngs=rngs)
    raise ValueError(f"predictor must be one of {', '.join(PREDICTORS)}; got {kind!r}")


def predictor_matrix(params) -> jax.Array | None:
    """The paper's Wp (`y = Wp f`) from a linear predictor's parameter state; None for other predictors."""
    try:
        return params["fc"]["kernel"][...].T
    except (KeyError, TypeError):
        return None


def projector_gram(params) -> jax.Array:
    """W Wᵀ (proj_dim, proj_dim) of the projector's last layer (`f = W h`), the layer that feeds the predictor,
    from the online network's parameter state; in float32."""
    K = params["projector"]["fc2"]["kernel"][...].astype(jnp.float32)
    return K.T @ K


def set_predictor_matrix(params, Wp: jax.Array):
    """A copy of a linear predictor's parameter state with Wp (`y = Wp f`) written into its kernel."""
    return _replace(params, ("fc", "kernel"), Wp.T)


def symmetrize_predictor(params):
    """The official `predictor_reg=symmetric` projection after each step (THEORY.md section 11).

    One layer: `W <- (W + Wᵀ)/2`. Two layers (torch weights W0: hidden x d, W1: d x hidden):
    `W0 <- (W0 + W1ᵀ)/2`, `W1 <- W0ᵀ` (tied). Identity predictors are returned unchanged.
    """
    if "fc" in params:
        K = params["fc"]["kernel"][...]
        return _replace(params, ("fc", "kernel"), 0.5 * (K + K.T))
    if "fc1" in params:
        K0, K1 = params["fc1"]["kernel"][...], params["fc2"]["kernel"][...]
        K0n = 0.5 * (K0 + K1.T)
        return _replace(_replace(params, ("fc1", "kernel"), K0n), ("fc2", "kernel"), K0n.T)
    return params


def _replace(state, path, value):
    """Copy of an nnx.State with the leaf at `path` (a tuple of keys) replaced by `value`."""
    def f(p, leaf):
        keys = tuple(k.key for k in p if isinstance(k, jax.tree_util.DictKey))
        return value.astype(leaf.dtype) if keys == path else leaf
    return jax.tree_util.tree_map_with_path(f, state)
