"""On-device image augmentations in JAX, one image at a time with an explicit key, vmapped over a batch.

Follows the official pipelines (THEORY.md section 11), with torchvision's semantics:

* CIFAR-10 (`Augment.cifar10()`): RandomResizedCrop(32, scale 0.08-1, ratio 3/4-4/3), horizontal flip,
  ColorJitter(0.4, 0.4, 0.4, 0.1) with p = 0.8 (the four adjustments in a random order), grayscale with
  p = 0.2, then Normalize(mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010)). No blur.
* STL-10 (`Augment.stl10()`): RandomResizedCrop(96), flip, ColorJitter(0.8, 0.8, 0.8, 0.2) with p = 0.8,
  grayscale p = 0.2, GaussianBlur(kernel 9, sigma ~ U[0.1, 2.0]) always, no normalization.

Images enter as uint8 (H, W, 3) and leave as float32 (size, size, 3). The crop is resampled bilinearly
with antialiasing (`jax.image.scale_and_translate`), like PIL's resize behind torchvision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

__all__ = ["Augment", "augment_image", "augment_batch", "eval_transform", "random_resized_crop_box",
           "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "grayscale",
           "gaussian_blur", "rgb_to_hsv", "hsv_to_rgb"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
_GRAY = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Augment:
    """Settings of the augmentation pipeline (hashable, so it can be a static argument of `jit`)."""

    size: int = 32
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    p_jitter: float = 0.8
    p_gray: float = 0.2
    blur: bool = False
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 9
    mean: tuple[float, float, float] | None = CIFAR10_MEAN
    std: tuple[float, float, float] | None = CIFAR10_STD

    @classmethod
    def cifar10(cls, size: int = 32) -> Augment:
        """The official CIFAR-10 pipeline (section 11)."""
        return cls(size=size)

    @classmethod
    def stl10(cls, size: int = 96) -> Augment:
        """The official STL-10 pipeline (section 11): strong jitter, blur always, no normalization."""
        return cls(size=size, jitter=(0.8, 0.8, 0.8, 0.2), blur=True, mean=None, std=None)


def _gray(img):
    w = jnp.asarray(_GRAY, img.dtype)
    return jnp.sum(img * w[None, None, :], axis=-1, keepdims=True)


def grayscale(img: jax.Array) -> jax.Array:
    """ITU-R 601 luma `0.299 R + 0.587 G + 0.114 B`, repeated on 3 channels (torchvision rgb_to_grayscale)."""
    return jnp.broadcast_to(_gray(img), img.shape)


def adjust_brightness(img, f):
    """torchvision adjust_brightness: `clip(f * img, 0, 1)`."""
    return jnp.clip(img * f, 0.0, 1.0)


def adjust_contrast(img, f):
    """torchvision adjust_contrast: blend with the mean of the grayscale image."""
    m = jnp.mean(_gray(img))
    return jnp.clip(f * img + (1.0 - f) * m, 0.0, 1.0)


def adjust_saturation(img, f):
    """torchvision adjust_saturation: blend with the per-pixel grayscale image."""
    return jnp.clip(f * img + (1.0 - f) * _gray(img), 0.0, 1.0)


def rgb_to_hsv(img):
    """RGB in [0, 1] (..., 3) to HSV in [0, 1] (..., 3), as torchvision's tensor implementation."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    maxc = jnp.max(img, axis=-1)
    minc = jnp.min(img, axis=-1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = jnp.ones_like(maxc)
    s = cr / jnp.where(eqc, ones, maxc)
    crd = jnp.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    hr = jnp.where(maxc == r, bc - gc, 0.0)
    hg = jnp.where((maxc == g) & (maxc != r), 2.0 + rc - bc, 0.0)
    hb = jnp.where((maxc != g) & (maxc != r), 4.0 + gc - rc, 0.0)
    h = jnp.mod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return jnp.stack([h, s, maxc], axis=-1)


def hsv_to_rgb(img):
    """Inverse of `rgb_to_hsv` (torchvision's tensor implementation)."""
    h, s, v = img[..., 0], img[..., 1], img[..., 2]
    i = jnp.floor(h * 6.0)
    f = h * 6.0 - i
    i = jnp.mod(i.astype(jnp.int32), 6)
    p = jnp.clip(v * (1.0 - s), 0.0, 1.0)
    q = jnp.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = jnp.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    r = jnp.select([i == 0, i == 1, i == 2, i == 3, i == 4], [v, q, p, p, t], v)
    g = jnp.select([i == 0, i == 1, i == 2, i == 3, i == 4], [t, v, v, q, p], p)
    b = jnp.select([i == 0, i == 1, i == 2, i == 3, i == 4], [p, p, t, v, v], q)
    return jnp.stack([r, g, b], axis=-1)


def adjust_hue(img, f):
    """torchvision adjust_hue: shift the hue by `f` in [-0.5, 0.5] (a fraction of the colour circle)."""
    hsv = rgb_to_hsv(img)
    h = jnp.mod(hsv[..., 0] + f, 1.0)
    return hsv_to_rgb(jnp.stack([h, hsv[..., 1], hsv[..., 2]], axis=-1))


def gaussian_blur(img, sigma, kernel: int = 9):
    """torchvision GaussianBlur: separable Gaussian of odd size `kernel`, reflect padding."""
    r = kernel // 2
    x = jnp.arange(-r, r + 1, dtype=img.dtype)
    k = jnp.exp(-0.5 * (x / sigma) ** 2)
    k = k / jnp.sum(k)
    H, W = img.shape[0], img.shape[1]
    p = jnp.pad(img, ((r, r), (0, 0), (0, 0)), mode="reflect")
    img = sum(k[i] * p[i:i + H] for i in range(kernel))
    p = jnp.pad(img, ((0, 0), (r, r), (0, 0)), mode="reflect")
    return sum(k[i] * p[:, i:i + W] for i in range(kernel))


def random_resized_crop_box(key, height: int, width: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), attempts: int = 10):
    """torchvision RandomResizedCrop.get_params: `(top, left, h, w)` as float32 scalars.

    Up to `attempts` tries of area ~ U(scale) x H W and log-ratio ~ U(log ratio); the first that fits wins,
    otherwise a centre crop with the ratio clamped to `ratio`. Sizes are rounded as in torchvision.
    """
    ka, kr, ki, kj = jax.random.split(key, 4)
    area = height * width
    target = area * jax.random.uniform(ka, (attempts,), jnp.float32, minval=scale[0], maxval=scale[1])
    logr = jax.random.uniform(kr, (attempts,), jnp.float32, minval=math.log(ratio[0]), maxval=math.log(ratio[1]))
    ar = jnp.exp(logr)
    w = jnp.round(jnp.sqrt(target * ar))
    h = jnp.round(jnp.sqrt(target / ar))
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    idx = jnp.argmax(ok)
    any_ok = jnp.any(ok)
    w, h = w[idx], h[idx]
    top = jnp.floor(jax.random.uniform(ki, dtype=jnp.float32) * (height - h + 1))
    left = jnp.floor(jax.random.uniform(kj, dtype=jnp.float32) * (width - w + 1))
    # fallback: whole image, ratio clamped (torchvision)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fh, fw = height, round(height * ratio[1])
    else:
        fw, fh = width, height
    ftop, fleft = (height - fh) // 2, (width - fw) // 2
    pick = lambda a, b: jnp.where(any_ok, a, jnp.asarray(b, a.dtype))
    return pick(top, ftop), pick(left, fleft), pick(h, fh), pick(w, fw)


def _resized_crop(img, top, left, h, w, size):
    sy, sx = size / h, size / w
    scale = jnp.stack([sy, sx]).astype(img.dtype)
    trans = jnp.stack([-top * sy, -left * sx]).astype(img.dtype)
    return jax.image.scale_and_translate(img, (size, size, img.shape[2]), (0, 1), scale, trans,
                                         method="linear", antialias=True)


def _normalize(img, aug: Augment):
    if aug.mean is None:
        return img
    shape = (1,) * (img.ndim - 1) + (3,)
    mean = jnp.asarray(aug.mean, img.dtype).reshape(shape)
    std = jnp.asarray(aug.std, img.dtype).reshape(shape)
    return (img - mean) / std


def augment_image(key: jax.Array, image: jax.Array, aug: Augment) -> jax.Array:
    """One augmented view of one uint8 (H, W, 3) image: float32 (size, size, 3)."""
    kc, kf, kj, kjp, ko, kg, kb = jax.random.split(key, 7)
    img = image.astype(jnp.float32) / 255.0
    top, left, h, w = random_resized_crop_box(kc, image.shape[0], image.shape[1], aug.scale, aug.ratio)
    img = jnp.clip(_resized_crop(img, top, left, h, w, aug.size), 0.0, 1.0)
    if aug.flip:
        img = jnp.where(jax.random.uniform(kf, dtype=jnp.float32) < 0.5, img[:, ::-1], img)
    b, c, s, hue = aug.jitter
    lo = jnp.asarray([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -hue], jnp.float32)
    hi = jnp.asarray([1 + b, 1 + c, 1 + s, hue], jnp.float32)
    fac = jax.random.uniform(kj, (4,), jnp.float32, minval=lo, maxval=hi)
    fns = [lambda x: adjust_brightness(x, fac[0]), lambda x: adjust_contrast(x, fac[1]),
           lambda x: adjust_saturation(x, fac[2]), lambda x: adjust_hue(x, fac[3])]
    order = jax.random.permutation(ko, 4)
    jit_img = jax.lax.fori_loop(0, 4, lambda i, x: jax.lax.switch(order[i], fns, x), img)
    img = jnp.where(jax.random.uniform(kjp, dtype=jnp.float32) < aug.p_jitter, jit_img, img)
    img = jnp.where(jax.random.uniform(kg, dtype=jnp.float32) < aug.p_gray, grayscale(img), img)
    if aug.blur:
        sigma = jax.random.uniform(kb, dtype=jnp.float32, minval=aug.blur_sigma[0], maxval=aug.blur_sigma[1])
        img = gaussian_blur(img, sigma, aug.blur_kernel)
    return _normalize(img, aug)


def augment_batch(key: jax.Array, images: jax.Array, aug: Augment) -> jax.Array:
    """`augment_image` vmapped over a uint8 batch (B, H, W, 3) with keys `split(key, B)`."""
    keys = jax.random.split(key, images.shape[0])
    return jax.vmap(augment_image, in_axes=(0, 0, None))(keys, images, aug)


def eval_transform(images: jax.Array, aug: Augment) -> jax.Array:
    """Test-time transform: uint8 -> float32 in [0, 1], then the pipeline's normalization (no crop)."""
    return _normalize(images.astype(jnp.float32) / 255.0, aug)
