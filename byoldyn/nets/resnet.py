"""ResNet-18 in Flax NNX with a CIFAR stem and a width multiplier (THEORY.md section 11).

The official code uses torchvision's `resnet18` with its fc layer removed. On CIFAR-10, conv1 is a 3x3
stride-1 conv without bias and the max-pool is removed (`stem="cifar"`); on STL-10 the ImageNet stem
(7x7 stride-2 conv + 3x3 max-pool) is kept (`stem="imagenet"`). `width` multiplies every channel count
(64, 128, 256, 512), so `width=0.25` gives 16..128 channels and a 128-d feature: small enough for a CPU.
Layout follows the Flax examples: `ResNet18 = partial(ResNet, stage_sizes=(2, 2, 2, 2))`. Images are NHWC.
BatchNorm matches torch's defaults (momentum 0.1 in torch = 0.9 here, eps 1e-5).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax.numpy as jnp
from flax import nnx

__all__ = ["ResNet", "ResNet18", "BasicBlock", "channels"]

_BN = partial(nnx.BatchNorm, momentum=0.9, epsilon=1e-5, dtype=jnp.float32)  # float32 whatever the convs compute in
# torchvision initialises convs with kaiming_normal(fan_out, relu)
_conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def channels(width: float, base: int = 64) -> int:
    """Channel count `max(1, round(base * width))` of a stage whose full-width count is `base`."""
    return max(1, int(round(base * width)))


class BasicBlock(nnx.Module):
    """Two 3x3 convs with BN and a residual connection (projection shortcut when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int, *, dtype=None, rngs: nnx.Rngs):
        conv = partial(nnx.Conv, use_bias=False, kernel_init=_conv_init, dtype=dtype, rngs=rngs)
        self.conv1 = conv(cin, cout, (3, 3), strides=stride, padding=1)
        self.bn1 = _BN(cout, rngs=rngs)
        self.conv2 = conv(cout, cout, (3, 3), strides=1, padding=1)
        self.bn2 = _BN(cout, rngs=rngs)
        if stride != 1 or cin != cout:
            self.proj = conv(cin, cout, (1, 1), strides=stride, padding=0)
            self.proj_bn = _BN(cout, rngs=rngs)
        else:
            self.proj = None
            self.proj_bn = None

    def __call__(self, x):
        y = nnx.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        r = x if self.proj is None else self.proj_bn(self.proj(x))
        return nnx.relu(y + r)


class ResNet(nnx.Module):
    """ResNet backbone without its classifier: images (N, H, W, 3) -> pooled features (N, `dim`).

    **Arguments:** `stage_sizes` (blocks per stage), `width` (channel multiplier), `stem` (`"cifar"`:
    3x3 stride-1 conv, no max-pool; `"imagenet"`: 7x7 stride-2 conv + max-pool), `dtype` (compute
    dtype of the convolutions, e.g. bfloat16; None: float32; parameters and BatchNorm stay float32), `rngs`.
    """

    def __init__(self, stage_sizes: Sequence[int] = (2, 2, 2, 2), *, width: float = 1.0,
                 stem: str = "cifar", in_channels: int = 3, dtype=None, rngs: nnx.Rngs):
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
        c0 = channels(width)
        self.stem = stem
        k, s, p = ((3, 3), 1, 1) if stem == "cifar" else ((7, 7), 2, 3)
        self.conv1 = nnx.Conv(in_channels, c0, k, strides=s, padding=p, use_bias=False,
                              kernel_init=_conv_init, dtype=dtype, rngs=rngs)
        self.bn1 = _BN(c0, rngs=rngs)
        blocks = []
        cin = c0
        for i, n in enumerate(stage_sizes):
            cout = channels(width, 64 * 2**i)
            for j in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1, dtype=dtype, rngs=rngs))
                cin = cout
        self.blocks = nnx.List(blocks)
        self.dim = cin

    def __call__(self, x):
        x = nnx.relu(self.bn1(self.conv1(x)))
        if self.stem == "imagenet":
            x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for b in self.blocks:
            x = b(x)
        return jnp.mean(x, axis=(1, 2))


ResNet18 = partial(ResNet, (2, 2, 2, 2))
