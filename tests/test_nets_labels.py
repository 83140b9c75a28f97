"""One class map for both splits of an image folder: with train/{cat,dog,fox} and
test/{cat,fox}, a test fox is label 2 (fox in training), not 1 (dog); an unknown test class is refused."""

import numpy as np
import pytest

pytest.importorskip("PIL")

from PIL import Image

from byoldyn.nets.data import DataError, load, read_image_folder

COLOUR = {"cat": 10, "dog": 120, "fox": 230}  # each class its own grey level, so images say their class


def _folder(root, layout):
    for split, classes in layout.items():
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i, ext in enumerate((".png", ".jpg")):
                Image.fromarray(np.full((8, 8, 3), COLOUR[c], np.uint8)).save(d / f"{i}{ext}", quality=95)
    return root


def _class_of(ds):
    """The class each image shows (its grey level), by name."""
    by_level = {v: k for k, v in COLOUR.items()}
    return [by_level[min(by_level, key=lambda v: abs(v - int(x.mean())))] for x in ds.images]


@pytest.fixture
def root(tmp_path):
    return _folder(tmp_path, {"train": ("cat", "dog", "fox"), "test": ("cat", "fox")})


def test_test_split_keeps_training_labels(root):
    tr, te = load(root, "train"), load(root, "test")
    assert tr.classes == te.classes == ("cat", "dog", "fox")
    assert list(tr.labels) == [0, 0, 1, 1, 2, 2] and list(te.labels) == [0, 0, 2, 2]
    for ds in (tr, te):
        assert [ds.classes[y] for y in ds.labels] == _class_of(ds)
    # the map of another training split, passed explicitly, is the same rule
    te2 = read_image_folder(root, "test", classes=tr.classes)
    np.testing.assert_array_equal(te2.labels, te.labels)


def test_unknown_test_class_refused(root):
    _folder(root, {"test": ("dog",)})  # a known class added: fine
    assert list(load(root, "test").labels) == [0, 0, 1, 1, 2, 2]
    (root / "test" / "wolf").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "test" / "wolf" / "0.png")
    with pytest.raises(DataError, match=r"^class 'wolf' of .*test is not a class of the training split "
                                        r"\(cat, dog, fox\)$"):
        load(root, "test")
    with pytest.raises(DataError, match=r"^class 'wolf'"):
        read_image_folder(root, "test", classes=("cat", "dog", "fox"))


@pytest.mark.slow
def test_train_cli_refuses_unknown_test_class(root, tmp_path, capsys):
    pytest.importorskip("flax")
    from byoldyn.cli import main as _main

    def main(argv):
        return _main(argv, devices=False)

    (root / "test" / "wolf").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "test" / "wolf" / "0.png")
    assert main(["train", "--data", str(root), "--out", str(tmp_path / "run"), "--epochs", "0",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "class 'wolf'" in err[0] and "(cat, dog, fox)" in err[0]
