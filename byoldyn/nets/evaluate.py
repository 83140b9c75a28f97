"""Evaluation of frozen features: kNN and a linear probe (THEORY.md section 11, "Evaluation").

Both are fitted on the training split and reported on the test split once: there is no selection on
the test set (the official probe reports the best test accuracy over 50 epochs, section 15 item 9;
this one reports the last epoch).

* `knn_accuracy`: weighted kNN of Wu et al. (2018) as used across SSL codebases: cosine similarity,
  the k = 200 nearest training features vote with weight exp(sim / T), T = 0.1.
* `linear_probe`: standardize with the training mean/std (StandardScaler), then a softmax linear
  classifier trained with Adam (lr 3e-4, L2 weight decay 1e-3 as torch's Adam) for 50 epochs at
  batch 128, as the official probe.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["extract_features", "knn_accuracy", "knn_predict", "linear_probe"]


def extract_features(model, state, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """Online-encoder features (eval-mode BN, test transform) of uint8 images, in batches: (N, D)."""
    out = []
    for i in range(0, len(images), batch):
        out.append(np.asarray(model.features(state.online, state.online_bn, jnp.asarray(images[i:i + batch]))))
    return np.concatenate(out).astype(np.float32)


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
                u, s = opt.update(g, s, p)
                return (optax.apply_updates(p, u), s), None

            return jax.lax.scan(step, (p, s), perm)[0], None

        return jax.lax.scan(epoch, (params, opt.init(params)), jax.random.split(key, epochs))[0][0]

    p = fit(params, jnp.asarray(xtr), jnp.asarray(ytr), kp)
    acc = lambda x, y: float(np.mean(np.asarray(jnp.argmax(jnp.asarray(x) @ p["W"] + p["b"][None, :], -1)) == np.asarray(y)))
    return {"train_acc": acc(xtr, ytr), "test_acc": acc(xte, test_y)}
