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


@pytest.mark.slow
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


def test_pixel_features_are_the_normalized_test_transform():
    from byoldyn.nets import Augment
    from byoldyn.nets.evaluate import pixel_features

    aug = Augment.cifar10(8)
    x = np.full((3, 8, 8, 3), 255, np.uint8)
    f = pixel_features(x, aug, batch=2)  # two batches
    want = (1.0 - np.array([0.4914, 0.4822, 0.4465])) / np.array([0.2023, 0.1994, 0.2010])
    assert f.shape == (3, 192)
    np.testing.assert_allclose(f.reshape(3, 8, 8, 3), np.broadcast_to(want, (3, 8, 8, 3)), rtol=1e-5)


@pytest.mark.slow
def test_untrained_baselines_batch_bn_and_protocol(tmp_path):
    """--epochs 0: eval-mode numbers (initial running stats, i.e. no normalization) plus raw pixels and
    batch-statistics BN, and the protocol, in eval.json; batch-BN features are the per-batch normalized ones."""
    import json

    import jax
    from _nets_tiny import TINY, tiny_dataset

    from byoldyn.nets import build
    from byoldyn.nets.evaluate import PROTOCOL, extract_features, pixel_features
    from byoldyn.nets.trainer import train

    tr, te = tiny_dataset(24, seed=0), tiny_dataset(12, seed=1)
    train(TINY, tr, te, tmp_path / "b", epochs=0, progress=False, evaluate=("knn",))
    ev = json.loads((tmp_path / "b" / "eval.json").read_text())
    assert set(k for k in ev if k.endswith("_acc")) == {"knn_acc", "pixels_knn_acc", "batch_bn_knn_acc"}
    assert ev["protocol"] == PROTOCOL and "k = 200, T = 0.1" in PROTOCOL and ev["step"] == 0
    m = build(TINY)
    s = m.init(jax.random.key(0, impl="rbg"))
    knn = lambda a, b: knn_accuracy(a, tr.labels, b, te.labels, n_classes=3)
    assert ev["pixels_knn_acc"] == knn(pixel_features(tr.images, TINY.augment), pixel_features(te.images, TINY.augment))
    assert ev["batch_bn_knn_acc"] == knn(extract_features(m, s, tr.images, bn="batch"),
                                         extract_features(m, s, te.images, bn="batch"))
    assert ev["knn_acc"] == knn(extract_features(m, s, tr.images), extract_features(m, s, te.images))
    run, bat = (extract_features(m, s, tr.images, batch=12, bn=b) for b in ("running", "batch"))
    assert not np.allclose(run, bat)
    # batch-BN batches are drawn in a random order (class-sorted folders), and row i is still image i
    one = np.asarray(m.features_batch_bn(s.online, s.online_bn, jax.numpy.asarray(tr.images)))
    np.testing.assert_allclose(extract_features(m, s, tr.images, batch=24, bn="batch"), one, rtol=1e-5, atol=1e-6)
    sorted_ = tr.images[np.argsort(tr.labels, kind="stable")]
    in_file_order = np.concatenate([np.asarray(m.features_batch_bn(s.online, s.online_bn, jax.numpy.asarray(b)))
                                    for b in (sorted_[:12], sorted_[12:])])
    assert not np.allclose(extract_features(m, s, sorted_, batch=12, bn="batch"), in_file_order)
    with pytest.raises(ValueError, match="bn must be 'running' or 'batch', got 'eval'"):
        extract_features(m, s, tr.images, bn="eval")


def test_curve_point_uses_random_subsets_of_class_sorted_data():
    """Image folders are sorted by class: the curve's bank and test images must be random subsets."""
    from types import SimpleNamespace

    from byoldyn.nets import Dataset
    from byoldyn.nets.evaluate import curve_point

    y = np.repeat(np.arange(4), 25).astype(np.int32)  # sorted by class
    x = np.zeros((100, 8, 8, 3), np.uint8)
    x[..., 0] = (y * 60)[:, None, None]
    d = Dataset(x, y, ("a", "b", "c", "d"))
    seen = []

    class M:
        def features(self, online, bn, imgs):
            seen.append(np.asarray(imgs)[:, 0, 0, 0] // 60)
            return np.asarray(imgs).reshape(len(imgs), -1)[:, :1].astype(np.float32) + 1.0

    p = curve_point(M(), SimpleNamespace(online=None, online_bn=None, step=7), d, d, n_train=40, n_test=20)
    assert p["step"] == 7 and p["n_train"] == 40 and p["n_test"] == 20
    assert len(set(seen[0].tolist())) == 4 and len(set(seen[1].tolist())) >= 3  # all classes, not the first ones


def test_results_table_shows_the_three_baselines():
    from byoldyn.figures.training import results_table

    ev = {"knn_acc": 0.296, "linear_acc": 0.319, "batch_bn_knn_acc": 0.259, "batch_bn_linear_acc": 0.27,
          "pixels_knn_acc": 0.353, "pixels_linear_acc": 0.3486}
    rows = results_table({"init": (None, ev)}).splitlines()[2:]
    assert rows == [
        "| init | untrained network (--epochs 0) (eval-mode BN, initial running stats: no normalization) | 0 | 29.6 | "
        "31.9 | – | – | – | – |",
        "| init | untrained network, batch-statistics BN | 0 | 25.9 | 27.0 | – | – | – | – |",
        "| init | raw pixels (per-channel normalized) | 0 | 35.3 | 34.9 | – | – | – | – |"]
    # an evaluation without the baselines (earlier runs) keeps its one row
    assert len(results_table({"init": (None, {"knn_acc": 0.3})}).splitlines()) == 3
