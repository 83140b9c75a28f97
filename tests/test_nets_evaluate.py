"""kNN (k = 200, cosine, T = 0.1) against a numpy reference, and the linear probe."""

import numpy as np
import pytest

pytest.importorskip("flax")

from byoldyn.nets import knn_accuracy, knn_predict, linear_probe


def _knn_ref(tr, ytr, te, k, T, C):
    n = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = n(te) @ n(tr).T
    out = []
    for row in sim:
        idx = np.argsort(-row)[:k]
        votes = np.zeros(C)
        np.add.at(votes, ytr[idx], np.exp(row[idx] / T))
        out.append(np.argmax(votes))
    return np.array(out)


def test_knn_matches_reference(rng):
    tr = rng.standard_normal((300, 8)).astype(np.float32)
    ytr = rng.integers(0, 4, 300)
    te = rng.standard_normal((50, 8)).astype(np.float32)
    for k in (200, 5):
        np.testing.assert_array_equal(knn_predict(tr, ytr, te, k=k, temperature=0.1, n_classes=4),
                                      _knn_ref(tr, ytr, te, k, 0.1, 4))


def test_knn_and_probe_separate_clusters(rng):
    centres = rng.standard_normal((3, 16)) * 4
    ytr, yte = rng.integers(0, 3, 240), rng.integers(0, 3, 60)
    tr = centres[ytr] + rng.standard_normal((240, 16))
    te = centres[yte] + rng.standard_normal((60, 16))
    assert knn_accuracy(tr, ytr, te, yte, k=20) == 1.0
    r = linear_probe(tr, ytr, te, yte, epochs=30, batch=32, lr=1e-2)
    assert r["train_acc"] >= 0.95 and r["test_acc"] >= 0.95
    chance = linear_probe(tr, rng.permutation(ytr), te, yte, epochs=5, batch=32)
    assert chance["test_acc"] < 0.8
