"""Data readers in the official formats, their errors, and the checksummed CIFAR-10 download."""

import hashlib
import http.server
import io
import pickle
import tarfile
import threading

import numpy as np
import pytest

pytest.importorskip("flax")

from byoldyn.nets.data import (
    DataError,
    detect_format,
    download_cifar10,
    load,
    read_cifar10,
    read_image_folder,
    read_stl10,
)

# ---- generators of files in the official formats ----------------------------------------------

def _cifar_batch(rng, n, classes=10):
    x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    y = [int(v) for v in rng.integers(0, classes, n)]
    return {b"batch_label": b"batch", b"labels": y, b"data": x, b"filenames": [b"f%d.png" % i for i in range(n)]}


def make_cifar(root, n=4, seed=0):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = _cifar_batch(rng, n)
        (d / name).write_bytes(pickle.dumps(batches[name], protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_cases_per_batch": n}, protocol=2))
    return d, batches


def make_stl(root, n_train=3, n_test=2, n_unl=2, seed=0):
    d = root / "stl10_binary"
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    imgs = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unl)):
        hwc = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        imgs[split] = hwc
        # official layout: per image 3 channels, each 96x96 column-major
        (d / f"{split}_X.bin").write_bytes(np.ascontiguousarray(hwc.transpose(0, 3, 2, 1)).tobytes())
        if split != "unlabeled":
            (d / f"{split}_y.bin").write_bytes((np.arange(n) % 10 + 1).astype(np.uint8).tobytes())
    (d / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    return d, imgs


def make_folder(root, size=8, per_class=2, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    arrays = {}
    for split in ("train", "test"):
        for c in ("b_dog", "a_cat"):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(a).save(root / split / c / f"{i:04d}.png")
                arrays[(split, c, i)] = a
    return arrays


# ---- readers ---------------------------------------------------------------------------------

def test_read_cifar10(tmp_path):
    _, batches = make_cifar(tmp_path)
    tr = read_cifar10(tmp_path, "train")
    te = read_cifar10(tmp_path / "cifar-10-batches-py", "test")
    assert tr.images.shape == (20, 32, 32, 3) and tr.images.dtype == np.uint8 and te.images.shape == (4, 32, 32, 3)
    assert tr.classes[0] == "airplane" and len(tr.classes) == 10
    b1 = batches["data_batch_1"]
    # row = 1024 R, 1024 G, 1024 B, each row-major 32x32
    np.testing.assert_array_equal(tr.images[0, :, :, 1], b1[b"data"][0, 1024:2048].reshape(32, 32))
    np.testing.assert_array_equal(tr.labels[:4], b1[b"labels"])
    np.testing.assert_array_equal(te.labels, batches["test_batch"][b"labels"])
    assert detect_format(tmp_path) == "cifar10" and len(load(tmp_path, "test")) == 4


def test_read_stl10(tmp_path):
    _, imgs = make_stl(tmp_path)
    tr = read_stl10(tmp_path, "train")
    np.testing.assert_array_equal(tr.images, imgs["train"])
    np.testing.assert_array_equal(tr.labels, [0, 1, 2])
    both = read_stl10(tmp_path, "train+unlabeled")
    assert both.images.shape == (5, 96, 96, 3) and list(both.labels) == [0, 1, 2, -1, -1]
    assert detect_format(tmp_path) == "stl10" and len(load(tmp_path, "test")) == 2


def test_read_image_folder(tmp_path):
    arrays = make_folder(tmp_path)
    ds = read_image_folder(tmp_path, "train")
    assert ds.classes == ("a_cat", "b_dog") and list(ds.labels) == [0, 0, 1, 1]
    np.testing.assert_array_equal(ds.images[2], arrays[("train", "b_dog", 0)])
    assert detect_format(tmp_path) == "folder" and len(load(tmp_path, "test")) == 4


# ---- bad files: each error names the file ----------------------------------------------------

def test_cifar10_bad_files(tmp_path):
    d, _ = make_cifar(tmp_path)
    (d / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing file .*data_batch_3"):
        read_cifar10(tmp_path, "train")
    raw = (d / "test_batch").read_bytes()
    (d / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated or corrupt file .*test_batch"):
        read_cifar10(tmp_path, "test")
    (d / "test_batch").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(DataError, match="test_batch"):
        read_cifar10(tmp_path, "test")
    bad = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    (d / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError, match=r"corrupt file .*test_batch: data must be uint8 \(n, 3072\)"):
        read_cifar10(tmp_path, "test")

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))

    (d / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match="test_batch.*forbidden global"):
        read_cifar10(tmp_path, "test")


@pytest.mark.parametrize("labels, got", [
    ([0, 0.7], "got 0.7 (float64)"),          # was silently read as label 0
    ([1.0, 2.0], "got 1.0 (float64)"),
    ([True, False], "got True (bool)"),
    ([0, 10], "got 10"),
    ([-1, 3], "got -1"),
    (["a", "b"], "got 'a' (<U1)"),
    ([0, 1, 2], "got shape (3,)"),
])
def test_cifar10_labels_must_be_integers_in_range(tmp_path, labels, got):
    d, _ = make_cifar(tmp_path, n=2)
    bad = {b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}
    (d / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError) as e:
        read_cifar10(tmp_path, "test")
    assert str(e.value) == f"corrupt file {d / 'test_batch'}: labels must be 2 integers in [0, 10), {got}"


def test_dataset_length_first_and_identity(tmp_path):
    from byoldyn.nets.data import Dataset

    make_folder(tmp_path, per_class=3)
    ds = load(tmp_path, "train")
    assert len(ds) == 6 and ds.source == {"path": str(tmp_path.absolute()), "format": "folder", "split": "train"}
    for n in (1, 2, 4, 6, 64):  # --limit N used to fail for every N != 3 (a NamedTuple's _replace and its __len__)
        sub = ds.first(n)
        assert len(sub) == min(n, 6) and sub.images.shape[0] == min(n, 6) and sub.source["limit"] == n
        assert len(ds._replace(images=ds.images[:n], labels=ds.labels[:n])) == min(n, 6)
    idn = ds.identity()
    assert idn["n"] == 6 and idn["shape"] == [8, 8, 3] and idn == load(tmp_path, "train").identity()
    changed = ds.images.copy()
    changed[5, 0, 0, 0] ^= 1
    assert ds.replace(images=changed).fingerprint() != ds.fingerprint()
    assert ds.replace(labels=ds.labels[::-1].copy()).fingerprint() != ds.fingerprint()
    assert ds.first(5).fingerprint() != ds.fingerprint()
    with pytest.raises(ValueError, match=r"labels must have shape \(6,\) like the images, got \(5,\)"):
        Dataset(ds.images, ds.labels[:5], ds.classes)
    with pytest.raises(ValueError, match=r"images must have shape \(N, H, W, 3\), got \(6, 8, 8\)"):
        Dataset(ds.images[..., 0], ds.labels, ds.classes)


def test_stl10_bad_files(tmp_path):
    d, _ = make_stl(tmp_path)
    raw = (d / "train_X.bin").read_bytes()
    (d / "train_X.bin").write_bytes(raw[:-5])
    with pytest.raises(DataError, match="truncated or corrupt file .*train_X.bin"):
        read_stl10(tmp_path, "train")
    (d / "test_y.bin").write_bytes(b"\x01")
    with pytest.raises(DataError, match=r"test_y.bin: 1 labels for 2 images"):
        read_stl10(tmp_path, "test")
    (d / "test_y.bin").write_bytes(b"\x01\x0b")
    with pytest.raises(DataError, match=r"corrupt file .*test_y.bin: labels must lie in 1..10"):
        read_stl10(tmp_path, "test")
    (d / "class_names.txt").unlink()
    with pytest.raises(DataError, match="missing file .*class_names.txt"):
        read_stl10(tmp_path, "test")


def test_image_folder_bad_files(tmp_path):
    from PIL import Image

    make_folder(tmp_path)
    bad = tmp_path / "train" / "a_cat" / "0000.png"
    raw = bad.read_bytes()
    bad.write_bytes(raw[:20])
    with pytest.raises(DataError, match="truncated or corrupt image .*a_cat.0000.png"):
        read_image_folder(tmp_path, "train")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(bad)
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(bad.with_name("0001.png"))
    with pytest.raises(DataError, match=r"0001.png has shape \(9, 8, 3\), expected \(8, 8, 3\)"):
        read_image_folder(tmp_path, "train")
    with pytest.raises(DataError, match="missing folder .*valid"):
        read_image_folder(tmp_path, "valid")
    with pytest.raises(DataError, match="missing data folder"):
        detect_format(tmp_path / "nowhere")


# ---- download against a local server -----------------------------------------------------------

def _archive(tmp_path):
    src = tmp_path / "src"
    make_cifar(src, n=2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buf.getvalue()


@pytest.fixture
def server():
    files = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body, claimed = files.get(self.path, (None, None))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(claimed or len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()
    httpd.server_close()


def test_download_cifar10(tmp_path, server):
    base, files = server
    body = _archive(tmp_path)
    md5 = hashlib.md5(body).hexdigest()
    files["/cifar-10-python.tar.gz"] = (body, None)
    url = base + "/cifar-10-python.tar.gz"
    out = download_cifar10(tmp_path / "data", url=url, md5=md5, progress=False)
    assert out == tmp_path / "data" / "cifar-10-batches-py"
    assert read_cifar10(tmp_path / "data", "test").images.shape == (2, 32, 32, 3)
    assert not list((tmp_path / "data").glob(".*part"))  # the temporary archive is gone
    # already there: no second download (the server would now fail)
    files.clear()
    assert download_cifar10(tmp_path / "data", url=url, md5=md5, progress=False) == out


def test_download_errors(tmp_path, server):
    base, files = server
    body = _archive(tmp_path)
    files["/good.tar.gz"] = (body, None)
    files["/short.tar.gz"] = (body[:100], len(body))
    files["/notatar.tar.gz"] = (b"hello", None)
    with pytest.raises(DataError, match="checksum mismatch for good.tar.gz: md5 [0-9a-f]{32}, expected 0{32}"):
        download_cifar10(tmp_path / "a", url=base + "/good.tar.gz", md5="0" * 32, progress=False)
    with pytest.raises(DataError, match="short.tar.gz"):
        download_cifar10(tmp_path / "b", url=base + "/short.tar.gz", md5="0" * 32, progress=False)
    with pytest.raises(DataError, match="corrupt archive notatar.tar.gz"):
        download_cifar10(tmp_path / "c", url=base + "/notatar.tar.gz", md5=hashlib.md5(b"hello").hexdigest(),
                         progress=False)
    with pytest.raises(DataError, match="download of missing.tar.gz from .* failed"):
        download_cifar10(tmp_path / "d", url=base + "/missing.tar.gz", progress=False)
    for sub in "abcd":
        assert not list((tmp_path / sub).glob(".*part"))
