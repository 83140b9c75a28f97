"""On-device augmentations: torchvision's formulas, crop geometry, determinism under explicit keys."""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("flax")

import jax
import jax.numpy as jnp

from byoldyn.nets.augment import (
    Augment,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    augment_batch,
    eval_transform,
    gaussian_blur,
    grayscale,
    hsv_to_rgb,
    random_resized_crop_box,
    rgb_to_hsv,
)

KEY = lambda i: jax.random.key(i, impl="rbg")
PLAIN = dataclasses.replace(Augment.cifar10(16), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False, p_jitter=0.0,
                            p_gray=0.0)


@pytest.fixture(scope="module")
def images():
    return jnp.asarray(np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3)), jnp.uint8)


@pytest.fixture(scope="module")
def img01():
    return jnp.asarray(np.random.default_rng(1).random((7, 5, 3)), jnp.float32)


@pytest.mark.slow
def test_batch_shape_dtype_and_keys(images):
    """The official CIFAR-10 pipeline: float32 views, a function of the key only."""
    f = jax.jit(augment_batch, static_argnums=2)
    a = f(KEY(0), images, Augment.cifar10(16))
    assert a.shape == (12, 16, 16, 3) and a.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(a)))
    np.testing.assert_array_equal(a, f(KEY(0), images, Augment.cifar10(16)))  # same key, same views
    assert not np.allclose(a, f(KEY(1), images, Augment.cifar10(16)))
    assert not np.allclose(a[0], a[1])


@pytest.mark.slow
def test_crop_flip_grayscale_and_normalization(images):
    """Whole-image crop, no jitter: each view is x, flip(x), gray(x) or gray(flip(x)), normalized."""
    aug = dataclasses.replace(PLAIN, flip=True, p_gray=0.5)
    out = np.asarray(jax.jit(augment_batch, static_argnums=2)(KEY(3), images, aug))
    mean, std = np.array(aug.mean, np.float32), np.array(aug.std, np.float32)
    x = np.asarray(images, np.float64) / 255.0
    np.testing.assert_allclose(eval_transform(images, aug), (x - mean) / std, atol=1e-6)
    g = np.repeat((x @ np.array([0.299, 0.587, 0.114]))[..., None], 3, axis=-1)
    cands = {"id": x, "flip": x[:, :, ::-1], "gray": g, "gray+flip": g[:, :, ::-1]}
    seen = set()
    for i in range(len(out)):
        hits = [k for k, c in cands.items() if np.allclose(out[i], (c[i] - mean) / std, atol=1e-5)]
        assert hits, f"view {i} is none of {list(cands)}"
        seen.update(hits)
    assert len(seen) >= 2


@pytest.mark.slow
def test_colour_adjustments_match_torchvision_formulas(img01):
    x = np.asarray(img01, np.float64)
    gray = x @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(adjust_brightness(img01, 1.3), np.clip(1.3 * x, 0, 1), atol=1e-6)
    np.testing.assert_allclose(adjust_contrast(img01, 0.7), np.clip(0.7 * x + 0.3 * gray.mean(), 0, 1), atol=1e-6)
    np.testing.assert_allclose(adjust_saturation(img01, 1.4), np.clip(1.4 * x - 0.4 * gray[..., None], 0, 1), atol=1e-6)
    np.testing.assert_allclose(grayscale(img01)[..., 2], gray, atol=1e-6)
    np.testing.assert_allclose(hsv_to_rgb(rgb_to_hsv(img01)), x, atol=1e-5)
    np.testing.assert_allclose(adjust_hue(img01, 0.0), x, atol=1e-5)
    import colorsys

    h, s, v = colorsys.rgb_to_hsv(*x[0, 0])
    np.testing.assert_allclose(rgb_to_hsv(img01)[0, 0], [h, s, v], atol=1e-5)
    np.testing.assert_allclose(adjust_hue(img01, 0.25)[0, 0], colorsys.hsv_to_rgb((h + 0.25) % 1, s, v), atol=1e-5)


@pytest.mark.slow
def test_crop_box_within_bounds_and_scale():
    boxes = jax.vmap(lambda k: jnp.stack(random_resized_crop_box(k, 32, 24)))(jax.random.split(KEY(0), 500))
    top, left, h, w = np.asarray(boxes).T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 24).all()
    area = h * w / (32 * 24)
    assert area.min() >= 0.05 and area.max() <= 1.0 and np.ptp(area) > 0.5
    assert np.all(h == np.round(h)) and np.all(w == np.round(w))


@pytest.mark.slow
def test_blur_keeps_constants_and_mass(img01):
    c = jnp.full((9, 9, 3), 0.5, jnp.float32)
    np.testing.assert_allclose(gaussian_blur(c, 1.0), c, atol=1e-6)
    b = np.asarray(gaussian_blur(img01, 0.8, kernel=3))
    assert b.std() < np.asarray(img01).std()
