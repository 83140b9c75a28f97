"""Data readers in the official formats, and the CIFAR-10 download (THEORY.md section 11).

* CIFAR-10, python version (`cifar-10-batches-py/`: `data_batch_1..5`, `test_batch`, `batches.meta`):
  `read_cifar10(root, split)`.
* STL-10, binary version (`stl10_binary/`: `{train,test,unlabeled}_X.bin`, `{train,test}_y.bin`,
  `class_names.txt`): `read_stl10(root, split)`; splits "train", "test", "unlabeled", "train+unlabeled"
  (unlabeled images get label -1).
* Image folder (`split/class/*.png|jpg|jpeg`, e.g. `../shared/data/cifar10-subset`): `read_image_folder`.
* `load(root, split, format="auto")` detects which of the three `root` holds.
* `download_cifar10(root, url, md5)` fetches the official archive, verifies its MD5 and extracts it.

Every reader returns a `Dataset` of uint8 images (N, H, W, 3), int32 labels (N,) and class names.
A missing, truncated or corrupt file raises `DataError` (a `ValueError`) whose message names the file.
The CIFAR pickles are read with a restricted unpickler that only admits numpy arrays and plain
Python containers, so a malicious file cannot run code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "DataError", "read_cifar10", "read_stl10", "read_image_folder", "load", "detect_format",
           "download_cifar10", "CIFAR10_URL", "CIFAR10_MD5", "CIFAR10_CLASSES"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_IMAGE_EXT = (".png", ".jpg", ".jpeg")


class DataError(ValueError):
    """A data file is missing, truncated or corrupt; the message names the file."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """uint8 `images` (N, H, W, 3), int32 `labels` (N,) (-1 = unlabeled), `classes` (names, by label).

    `len(ds)` is the number of images N. `source` says where the images were read (`{"path", "format",
    "split"}`, set by `load`; None for arrays made in memory); `identity()` adds N, the image shape and a
    cheap fingerprint, and is what a checkpoint records of its training data (`byoldyn.nets.train`).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: dict | None = None

    def __post_init__(self):
        x, y = np.asarray(self.images), np.asarray(self.labels)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"images must have shape (N, H, W, 3), got {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"labels must have shape ({x.shape[0]},) like the images, got {y.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    def replace(self, **changes) -> Dataset:
        """A copy with some fields changed (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    _replace = replace  # the NamedTuple spelling of earlier versions

    def first(self, n: int) -> Dataset:
        """The first `n` images (all when there are fewer); `source` records the limit."""
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be a positive integer, got {n}")
        src = None if self.source is None else dict(self.source, limit=n)
        return self.replace(images=self.images[:n], labels=self.labels[:n], source=src)

    def fingerprint(self, sample: int = 1024) -> str:
        """A cheap content hash: the shape, all labels, the class names and up to `sample` evenly spaced images."""
        h = hashlib.blake2b(digest_size=16)
        h.update(repr((self.images.shape, str(self.images.dtype), tuple(self.classes))).encode())
        h.update(np.ascontiguousarray(self.labels, np.int32).tobytes())
        n = len(self)
        if n:
            idx = np.unique(np.linspace(0, n - 1, min(n, sample)).round().astype(np.int64))
            h.update(np.ascontiguousarray(np.asarray(self.images)[idx]).tobytes())
        return h.hexdigest()

    def identity(self) -> dict:
        """JSON-ready: `source` (path, format, split; None in memory), `n`, `shape` of one image, `fingerprint`."""
        return {"source": self.source, "n": len(self), "shape": list(self.images.shape[1:]),
                "fingerprint": self.fingerprint()}


# ---------------------------------------------------------------------------------------------------
# CIFAR-10

class _SafeUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden global {module}.{name}")


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"missing file {path}")
    try:
        with open(path, "rb") as fh:
            d = _SafeUnpickler(fh, encoding="bytes").load()
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError,
            UnicodeDecodeError) as e:
        raise DataError(f"truncated or corrupt file {path}: {e}") from None
    if not isinstance(d, dict):
        raise DataError(f"corrupt file {path}: expected a pickled dict, got {type(d).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _check_labels(y: np.ndarray, n: int, n_classes: int, path: Path) -> None:
    """`y` holds `n` integer labels in [0, n_classes): no floats (0.7 would become 0), no bools, none out of range."""
    want = f"labels must be {n} integers in [0, {n_classes})"
    if y.shape != (n,):
        raise DataError(f"corrupt file {path}: {want}, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        vals = y.tolist()
        bad = next((v for v in vals if not (isinstance(v, float) and v.is_integer())), vals[0] if vals else None)
        raise DataError(f"corrupt file {path}: {want}, got {bad!r} ({y.dtype})")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = y[(y < 0) | (y >= n_classes)][0]
        raise DataError(f"corrupt file {path}: {want}, got {int(bad)}")


def _cifar_dir(root: Path) -> Path:
    root = Path(root)
    sub = root / "cifar-10-batches-py"
    return sub if sub.is_dir() else root


def read_cifar10(root, split: str = "train") -> Dataset:
    """CIFAR-10 in its official python format (`root` or `root/cifar-10-batches-py`).

    `split="train"` reads `data_batch_1..5` (50,000 images), `"test"` reads `test_batch` (10,000).
    Each batch is a pickled dict with `data` (n, 3072) uint8 in CHW order and `labels` (n ints).
    """
    d = _cifar_dir(root)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test' for CIFAR-10, got {split!r}")
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    meta = _unpickle(d / "batches.meta")
    classes = tuple(c.decode() if isinstance(c, bytes) else str(c) for c in meta.get("label_names", []))
    if not classes:
        raise DataError(f"corrupt file {d / 'batches.meta'}: no label_names")
    images, labels = [], []
    for n in names:
        path = d / n
        b = _unpickle(path)
        if "data" not in b or "labels" not in b:
            raise DataError(f"corrupt file {path}: expected keys 'data' and 'labels', got {sorted(b)}")
        x = np.asarray(b["data"])
        y = np.asarray(b["labels"])
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
            raise DataError(f"corrupt file {path}: data must be uint8 (n, 3072), got {x.dtype} {x.shape}")
        _check_labels(y, x.shape[0], len(classes), path)
        images.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(y.astype(np.int32))
    return Dataset(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), classes)


# ---------------------------------------------------------------------------------------------------
# STL-10

_STL_SIDE = 96
_STL_BYTES = 3 * _STL_SIDE * _STL_SIDE


def _stl_dir(root: Path) -> Path:
    root = Path(root)
    sub = root / "stl10_binary"
    return sub if sub.is_dir() else root


def _stl_images(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"missing file {path}")
    size = path.stat().st_size
    if size == 0 or size % _STL_BYTES:
        raise DataError(f"truncated or corrupt file {path}: {size} bytes is not a multiple of {_STL_BYTES} "
                        f"(3 x 96 x 96 per image)")
    x = np.fromfile(path, dtype=np.uint8).reshape(-1, 3, _STL_SIDE, _STL_SIDE)
    return np.ascontiguousarray(x.transpose(0, 3, 2, 1))  # column-major per channel -> HWC


def _stl_labels(path: Path, n: int, n_classes: int) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"missing file {path}")
    y = np.fromfile(path, dtype=np.uint8)
    if y.size != n:
        raise DataError(f"truncated or corrupt file {path}: {y.size} labels for {n} images")
    if y.size and (y.min() < 1 or y.max() > n_classes):
        raise DataError(f"corrupt file {path}: labels must lie in 1..{n_classes}")
    return y.astype(np.int32) - 1


def read_stl10(root, split: str = "train") -> Dataset:
    """STL-10 in its official binary format (`root` or `root/stl10_binary`).

    Images are stored as uint8 (n, 3, 96, 96) with each channel column-major; labels as uint8 1..10.
    `split`: "train" (5,000), "test" (8,000), "unlabeled" (100,000, labels -1) or "train+unlabeled".
    """
    d = _stl_dir(root)
    if split not in ("train", "test", "unlabeled", "train+unlabeled"):
        raise ValueError(f"split must be train, test, unlabeled or train+unlabeled for STL-10, got {split!r}")
    cn = d / "class_names.txt"
    if not cn.is_file():
        raise DataError(f"missing file {cn}")
    try:
        classes = tuple(line.strip() for line in cn.read_text().splitlines() if line.strip())
    except UnicodeDecodeError:
        raise DataError(f"corrupt file {cn}: not text") from None
    images, labels = [], []
    for part in split.split("+"):
        x = _stl_images(d / f"{part}_X.bin")
        y = (np.full(len(x), -1, np.int32) if part == "unlabeled"
             else _stl_labels(d / f"{part}_y.bin", len(x), len(classes)))
        images.append(x)
        labels.append(y)
    return Dataset(np.concatenate(images), np.concatenate(labels), classes)


# ---------------------------------------------------------------------------------------------------
# image folder

def _class_folders(d: Path) -> tuple[str, ...]:
    if not d.is_dir():
        raise DataError(f"missing folder {d}")
    classes = tuple(sorted(p.name for p in d.iterdir() if p.is_dir()))
    if not classes:
        raise DataError(f"no class folders in {d}")
    return classes


def read_image_folder(root, split: str = "train", classes=None) -> Dataset:
    """Images in `root/split/class/*.png|jpg|jpeg`, converted to RGB; all must have the same size.

    One class map for every split: label i is `classes[i]`, by default the sorted sub-folder names of the
    training split `root/train` (of `split` itself where there is no `root/train`), so that a test split
    with fewer classes (test/{cat,fox} beside train/{cat,dog,fox}) keeps the training labels. A class
    folder of `split` that is not in the map is refused (`DataError` naming it).
    """
    from PIL import Image, UnidentifiedImageError

    d = Path(root) / split
    present = _class_folders(d)
    if classes is None:
        train = Path(root) / "train"
        classes = _class_folders(train) if split != "train" and train.is_dir() else present
    classes = tuple(classes)
    unknown = [c for c in present if c not in classes]
    if unknown:
        raise DataError(f"class {unknown[0]!r} of {d} is not a class of the training split "
                        f"({', '.join(classes)})")
    index = {name: i for i, name in enumerate(classes)}
    images, labels, shape = [], [], None
    for name in present:
        c = index[name]
        for f in sorted((d / name).iterdir()):
            if f.suffix.lower() not in _IMAGE_EXT:
                continue
            try:
                with Image.open(f) as im:
                    a = np.asarray(im.convert("RGB"), dtype=np.uint8)
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
                raise DataError(f"truncated or corrupt image {f}: {e}") from None
            if shape is None:
                shape = a.shape
            elif a.shape != shape:
                raise DataError(f"image {f} has shape {a.shape}, expected {shape} like the others")
            images.append(a)
            labels.append(c)
    if not images:
        raise DataError(f"no images (*.png, *.jpg, *.jpeg) under {d}")
    return Dataset(np.stack(images), np.asarray(labels, np.int32), classes)


# ---------------------------------------------------------------------------------------------------

def detect_format(root) -> str:
    """`"cifar10"`, `"stl10"` or `"folder"`, from the files in `root`; DataError if none fits."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"missing data folder {root}")
    if (_cifar_dir(root) / "batches.meta").exists():
        return "cifar10"
    if (_stl_dir(root) / "class_names.txt").exists():
        return "stl10"
    if (root / "train").is_dir():
        return "folder"
    raise DataError(f"cannot tell the format of {root}: expected cifar-10-batches-py/, stl10_binary/ "
                    f"or train/<class>/ image folders")


def load(root, split: str, format: str = "auto", classes=None) -> Dataset:
    """Read `split` of the dataset in `root` (`format`: auto, cifar10, stl10 or folder).

    `classes`: the class names of the training split (`train_ds.classes`), so that labels mean the same
    in every split: an image folder is labelled by them (`read_image_folder`); CIFAR-10 and STL-10 name their
    classes in their files, which must agree (`DataError` otherwise).
    """
    fmt = detect_format(root) if format == "auto" else format
    readers = {"cifar10": read_cifar10, "stl10": read_stl10, "folder": read_image_folder}
    if fmt not in readers:
        raise ValueError(f"format must be auto, cifar10, stl10 or folder, got {format!r}")
    if fmt == "folder":
        ds = read_image_folder(root, split, classes)
    else:
        ds = readers[fmt](root, split)
        if classes is not None and tuple(classes) != ds.classes:
            raise DataError(f"the classes of {split} in {root} ({', '.join(ds.classes)}) are not those of the "
                            f"training split ({', '.join(classes)})")
    return ds.replace(source={"path": str(Path(root).absolute()), "format": fmt, "split": split})


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_cifar10(root, *, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5, progress: bool = True,
                     timeout: float = 60.0) -> Path:
    """Download the CIFAR-10 python archive into `root`, check its MD5, extract `cifar-10-batches-py/`.

    Does nothing if `root/cifar-10-batches-py/batches.meta` already exists. The archive is written
    under a temporary name and removed after extraction; a short read, a checksum mismatch or a bad
    archive raises `DataError` naming the file. **Returns:** the extracted folder.
    """
    root = Path(root)
    out = root / "cifar-10-batches-py"
    if (out / "batches.meta").exists():
        return out
    root.mkdir(parents=True, exist_ok=True)
    name = url.rsplit("/", 1)[-1] or "cifar-10-python.tar.gz"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=root)
    tmp = Path(tmp)
    try:
        try:
            with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=timeout) as r:
                total = int(r.headers.get("Content-Length") or 0) or None
                bar = None
                if progress:
                    from tqdm import tqdm
                    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"download {name}")
                got = 0
                while chunk := r.read(1 << 20):
                    fh.write(chunk)
                    got += len(chunk)
                    if bar:
                        bar.update(len(chunk))
                if bar:
                    bar.close()
        except (urllib.error.URLError, OSError) as e:
            raise DataError(f"download of {name} from {url} failed: {e}") from None
        if total is not None and got != total:
            raise DataError(f"truncated download {name}: {got} of {total} bytes")
        digest = _md5(tmp)
        if digest != md5:
            raise DataError(f"checksum mismatch for {name}: md5 {digest}, expected {md5}")
        try:
            with tarfile.open(tmp, "r:gz") as tar:
                tar.extractall(root, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"corrupt archive {name}: {e}") from None
        if not (out / "batches.meta").exists():
            raise DataError(f"archive {name} has no cifar-10-batches-py/batches.meta")
        return out
    finally:
        if tmp.exists():
            tmp.unlink()
