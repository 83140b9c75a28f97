"""Evaluation of frozen features: kNN and a linear probe (THEORY.md section 11, "Evaluation").

Both are fitted on the training split and reported on the test split once: there is no selection on
the test set (the official probe reports the best test accuracy over 50 epochs, section 15 item 9;
this one reports the last epoch).

* `knn_accuracy`: weighted kNN of Wu et al. (2018) as used across SSL codebases: cosine similarity,
  the k = 200 nearest training features vote with weight exp(sim / T), T = 0.1.
* `linear_probe`: standardize with the training mean/std (StandardScaler), then a softmax linear
  classifier trained with Adam (lr 3e-4, L2 weight decay 1e-3 as torch's Adam) for 50 epochs at
  batch 128, as the official probe.

Features (`PROTOCOL`): the online encoder's pooled output (the projector's input) of the test
transform (no crop, per-channel normalization), with BatchNorm in eval mode (running statistics,
`bn="running"`) unless stated. `bn="batch"` normalizes with the statistics of each batch of 500
images instead: for an untrained network the running statistics are still at their initial values
(mean 0, variance 1, i.e. no normalization), so its "running" numbers are inflated. `pixel_features`
is the raw-pixel baseline: the normalized test-transform pixels, flattened (3072-d on CIFAR).
`evaluate_features` computes kNN / probe on any of these; `baselines` the three baselines at once;
`curve_point` a cheaper kNN for learning curves (a subset of train and test, `append_curve` writes it).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["extract_features", "pixel_features", "knn_accuracy", "knn_predict", "linear_probe",
           "evaluate_features", "baselines", "curve_point", "append_curve", "PROTOCOL"]

#: The evaluation protocol, written into every eval.json (see the module docstring).
PROTOCOL = ("features: online encoder output (projector input), test transform; BN: eval mode (running "
            "statistics) unless the key starts with batch_bn_ (per-batch statistics, batches of 500); pixels_: "
            "raw normalized pixels; kNN: cosine, k = 200, T = 0.1, weighted vote, bank = labelled training split; "
            "linear probe: StandardScaler, softmax linear layer, Adam lr 3e-4 wd 1e-3, 50 epochs, batch 128, seed 0; "
            "both reported once, at the last training step and the last probe epoch (no selection on the test set)")


def extract_features(model, state, images: np.ndarray, batch: int = 500, bn: str = "running") -> np.ndarray:
    """Online-encoder features (test transform) of uint8 images, in batches of `batch`: (N, D).

    `bn="running"`: eval-mode BatchNorm (running statistics); `"batch"`: each batch's own statistics, the
    batches drawn in a fixed random order (seed 0) so that each is a sample of the whole set (image folders
    are sorted by class: batches in file order would normalise the class away)."""
    if bn not in ("running", "batch"):
        raise ValueError(f"bn must be 'running' or 'batch', got {bn!r}")
    fn = model.features if bn == "running" else model.features_batch_bn
    order = np.arange(len(images)) if bn == "running" else np.random.default_rng(0).permutation(len(images))
    out = []
    for i in range(0, len(images), batch):
        out.append(np.asarray(fn(state.online, state.online_bn, jnp.asarray(images[order[i:i + batch]]))))
    feats = np.empty_like(np.concatenate(out).astype(np.float32))
    feats[order] = np.concatenate(out)
    return feats


def pixel_features(images: np.ndarray, augment, batch: int = 2000) -> np.ndarray:
    """Raw-pixel features: the test transform (per-channel normalization of `augment`), flattened: (N, H*W*3)."""
    from .augment import eval_transform

    out = [np.asarray(eval_transform(jnp.asarray(images[i:i + batch]), augment)).reshape(len(images[i:i + batch]), -1)
           for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.float32)


def evaluate_features(tr, ytr, te, yte, kinds=("knn", "linear"), n_classes: int | None = None,
                      prefix: str = "") -> dict:
    """`{prefix + "knn_acc": ..., prefix + "linear_acc": ...}` for the `kinds` asked."""
    out = {}
    if "knn" in kinds:
        out[f"{prefix}knn_acc"] = knn_accuracy(tr, ytr, te, yte, k=200, temperature=0.1, n_classes=n_classes)
    if "linear" in kinds:
        out[f"{prefix}linear_acc"] = linear_probe(tr, ytr, te, yte, n_classes=n_classes, seed=0)["test_acc"]
    return out


def baselines(model, state, train_data, test_data, kinds=("knn", "linear")) -> dict:
    """The baselines on (train_data, test_data): raw pixels (`pixels_knn_acc`,
    `pixels_linear_acc`) and the network of `state` with batch-statistics BN (`batch_bn_knn_acc`,
    `batch_bn_linear_acc`); the eval-mode numbers are the run's own `knn_acc` / `linear_acc`."""
    lab = train_data.labels >= 0
    ytr, yte = train_data.labels[lab], test_data.labels
    C = len(train_data.classes)
    aug = model.config.augment
    out = evaluate_features(pixel_features(train_data.images[lab], aug), ytr, pixel_features(test_data.images, aug),
                            yte, kinds, C, prefix="pixels_")
    out.update(evaluate_features(extract_features(model, state, train_data.images[lab], bn="batch"), ytr,
                                 extract_features(model, state, test_data.images, bn="batch"), yte, kinds, C,
                                 prefix="batch_bn_"))
    return out


def curve_point(model, state, train_data, test_data, n_train: int = 10000, n_test: int = 2000,
                baselines: bool = False) -> dict:
    """kNN accuracy (k = 200, T = 0.1, eval-mode BN) with `n_train` labelled training images as the bank and
    `n_test` test images, both fixed random subsets (seed 0; image folders are sorted by class): a cheap
    point of a learning curve (not the final number). `baselines`: also `pixels_knn_acc` and
    `batch_bn_knn_acc` on the same subsets (the curve's first point carries them)."""
    lab = np.flatnonzero(train_data.labels >= 0)
    lab = np.sort(np.random.default_rng(0).permutation(lab)[:n_train])
    ti = np.sort(np.random.default_rng(1).permutation(len(test_data.labels))[:n_test])
    tr = extract_features(model, state, train_data.images[lab])
    te = extract_features(model, state, test_data.images[ti])
    C, ytr, yte = len(train_data.classes), train_data.labels[lab], test_data.labels[ti]
    out = {"step": int(state.step), "knn_acc": knn_accuracy(tr, ytr, te, yte, n_classes=C),
           "n_train": int(len(lab)), "n_test": int(len(te))}
    if baselines:
        aug = model.config.augment
        out["pixels_knn_acc"] = knn_accuracy(pixel_features(train_data.images[lab], aug), ytr,
                                             pixel_features(test_data.images[ti], aug), yte, n_classes=C)
        out["batch_bn_knn_acc"] = knn_accuracy(extract_features(model, state, train_data.images[lab], bn="batch"), ytr,
                                               extract_features(model, state, test_data.images[ti], bn="batch"), yte,
                                               n_classes=C)
    return out


def append_curve(path, point: dict) -> list:
    """Append `point` to the JSON list at `path` (atomically), first dropping points at or after its step
    (those of an interrupted run that is being resumed). **Returns:** the list written."""
    import json
    from pathlib import Path

    from ..io import atomic_write

    path = Path(path)
    pts = json.loads(path.read_text()) if path.is_file() else []
    pts = [p for p in pts if p["step"] < point["step"]] + [point]
    text = json.dumps(pts, indent=1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return pts


def _l2n(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@partial(jax.jit, static_argnames=("k", "n_classes"))
def _knn_chunk(train_f, train_y, test_f, k, temperature, n_classes):
    sim = _l2n(test_f) @ _l2n(train_f).T
    top, idx = jax.lax.top_k(sim, k)
    w = jnp.exp(top / temperature)
    onehot = jax.nn.one_hot(train_y[idx], n_classes, dtype=w.dtype)
    return jnp.argmax(jnp.sum(onehot * w[..., None], axis=1), axis=-1)


def knn_predict(train_f, train_y, test_f, *, k: int = 200, temperature: float = 0.1, n_classes: int | None = None,
                chunk: int = 1000) -> np.ndarray:
    """Predicted labels of `test_f` by weighted cosine kNN over (`train_f`, `train_y`)."""
    train_f = jnp.asarray(train_f, jnp.float32)
    train_y = jnp.asarray(train_y, jnp.int32)
    n_classes = int(n_classes or int(train_y.max()) + 1)
    k = min(k, train_f.shape[0])
    test_f = np.asarray(test_f, np.float32)
    preds = [_knn_chunk(train_f, train_y, jnp.asarray(test_f[i:i + chunk]), k, temperature, n_classes)
             for i in range(0, len(test_f), chunk)]
    return np.asarray(jnp.concatenate(preds))


def knn_accuracy(train_f, train_y, test_f, test_y, *, k: int = 200, temperature: float = 0.1,
                 n_classes: int | None = None) -> float:
    """Top-1 accuracy (fraction) of `knn_predict` on the test split."""
    pred = knn_predict(train_f, train_y, test_f, k=k, temperature=temperature, n_classes=n_classes)
    return float(np.mean(pred == np.asarray(test_y)))


def linear_probe(train_f, train_y, test_f, test_y, *, epochs: int = 50, batch: int = 128, lr: float = 3e-4,
                 wd: float = 1e-3, n_classes: int | None = None, seed: int = 0) -> dict[str, float]:
    """Fit a softmax linear classifier on standardized training features; report both accuracies once.

    **Returns:** `{"train_acc": ..., "test_acc": ...}` (fractions), after the last epoch.
    """
    train_f = np.asarray(train_f, np.float32)
    test_f = np.asarray(test_f, np.float32)
    mu = train_f.mean(0, keepdims=True)
    sd = train_f.std(0, keepdims=True)
    sd = np.where(sd > 0, sd, 1.0)
    xtr, xte = (train_f - mu) / sd, (test_f - mu) / sd
    ytr = np.asarray(train_y, np.int32)
    C = int(n_classes or int(ytr.max()) + 1)
    n, D = xtr.shape
    batch = min(batch, n)
    nb = n // batch
    opt = optax.chain(optax.add_decayed_weights(wd), optax.adam(lr))
    key = jax.random.key(seed, impl="rbg")
    k0, kp = jax.random.split(key)
    bound = 1.0 / np.sqrt(D)
    params = {"W": jax.random.uniform(k0, (D, C), jnp.float32, -bound, bound), "b": jnp.zeros((C,), jnp.float32)}

    def loss_fn(p, x, y):
        logits = x @ p["W"] + p["b"][None, :]
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    @jax.jit
    def fit(params, xtr, ytr, key):
        def epoch(carry, k):
            p, s = carry
            perm = jax.random.permutation(k, n)[: nb * batch].reshape(nb, batch)

            def step(carry, idx):
                p, s = carry
                g = jax.grad(loss_fn)(p, xtr[idx], ytr[idx])
                with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats with its int32 count
                    u, s = opt.update(g, s, p)
                    return (optax.apply_updates(p, u), s), None

            return jax.lax.scan(step, (p, s), perm)[0], None

        return jax.lax.scan(epoch, (params, opt.init(params)), jax.random.split(key, epochs))[0][0]

    p = fit(params, jnp.asarray(xtr), jnp.asarray(ytr), kp)
    acc = lambda x, y: float(np.mean(np.asarray(jnp.argmax(jnp.asarray(x) @ p["W"] + p["b"][None, :], -1)) == np.asarray(y)))
    return {"train_acc": acc(xtr, ytr), "test_acc": acc(xte, test_y)}
