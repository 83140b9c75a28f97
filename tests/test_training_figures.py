"""Figures and tables of training logs (byoldyn.figures.training, `byoldyn compare`) on synthetic logs."""

import json

import numpy as np
import pytest
import xarray as xr

from byoldyn.cli import main
from byoldyn.figures.training import aligned_fraction, describe, load_run, rayleigh_p, results_table
from byoldyn.io import save_netcdf

D, T = 6, 4


def _log(directory, predictor="linear", symmetric=False, ema=0.996, stop_grad=True, acc=None, seed=0):
    """A log in the layout of `RunLog.dataset`: F = U diag(s) Uᵀ and Wp = U diag(p) Uᵀ + asymmetric part."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.normal(size=(D, D)))
    s = np.sort(rng.uniform(0.1, 5.0, D))[::-1]
    p = np.sqrt(s)
    A = rng.normal(size=(D, D))
    A = A - A.T
    fade = np.linspace(1.0, 0.0, T)
    F = np.stack([U @ np.diag(s) @ U.T] * T)
    Wp = np.stack([U @ np.diag(p) @ U.T + f * A for f in fade])
    cos = np.stack([[u @ w @ u / np.linalg.norm(w @ u) for u in U.T] for w in Wp])
    asym = np.linalg.norm(Wp - np.swapaxes(Wp, 1, 2), axis=(1, 2)) / np.linalg.norm(Wp, axis=(1, 2))
    cfg = dict(predictor=predictor, symmetric=symmetric, bias=False, ema=ema, stop_grad=stop_grad, width=0.25,
               batch_size=8, lr=0.03, wd=4e-4, loss="cosine", rho=0.3)
    ds = xr.Dataset(
        {"epoch": ("step", np.arange(1, T + 1) / 2), "loss": ("step", np.linspace(1, 0.2, T)),
         "z_std": ("step", np.full(T, 0.3)), "effective_rank": ("step", np.linspace(5, 3, T)),
         "asymmetry": ("step", asym), "commutator_normalized": ("step", fade / 10),
         "s": (("step", "mode"), np.stack([s] * T)), "cos": (("step", "mode"), cos),
         "F": (("step", "i", "j"), F), "Wp": (("step", "i", "j"), Wp)},
        coords={"step": np.arange(1, T + 1) * 10}, attrs={"config": json.dumps(cfg), "n_train": 16})
    save_netcdf(ds, directory / "log.nc")
    if acc is not None:
        (directory / "eval.json").write_text(json.dumps({"knn_acc": acc, "linear_acc": acc + 0.01}))
    return s, p


def test_rayleigh_and_alignment_closed_forms(tmp_path):
    s, p = _log(tmp_path)
    ds, ev = load_run(tmp_path)
    assert ev == {}
    # p_j = u_jᵀ Wp u_j: the antisymmetric part drops out, so it is sqrt(s_j) at every record
    np.testing.assert_allclose(rayleigh_p(ds), np.stack([p] * T), rtol=1e-5)
    # once the antisymmetric part is gone, Wp and F share eigenvectors: cos = 1 for every mode
    np.testing.assert_allclose(aligned_fraction(ds, 3)[-1], 1.0, rtol=1e-6)
    assert aligned_fraction(ds, 3)[0] < 0.99


def test_describe_and_table(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _log(tmp_path / "a", acc=0.4321)
    _log(tmp_path / "b", symmetric=True, ema=0.0, seed=1)
    runs = {n: load_run(tmp_path / n) for n in "ab"}
    assert describe(runs["a"][0]) == "linear Wp, EMA 0.996"
    assert describe(runs["b"][0]) == "symmetric linear Wp, no EMA"
    table = results_table(runs, k=3).splitlines()
    assert len(table) == 4
    assert "| a | linear Wp, EMA 0.996 | 2 | 43.2 | 44.2 | 5.00 → 3.00 |" in table[2]
    assert table[3].split("|")[4].strip() == "–"   # no eval.json


@pytest.mark.slow
def test_compare_cli(tmp_path, capsys):
    for n in ("lin", "none", "init"):
        (tmp_path / n).mkdir()
    _log(tmp_path / "lin", acc=0.5)
    _log(tmp_path / "none", predictor="none", acc=0.1)
    (tmp_path / "init" / "eval.json").write_text(json.dumps({"knn_acc": 0.296}))  # byoldyn train --epochs 0
    out = tmp_path / "out"
    assert main(["compare", *(str(tmp_path / n) for n in ("lin", "none", "init")), "--out", str(out)]) == 0
    assert sorted(f.name for f in out.iterdir()) == ["RESULTS.md", "alignment_lin.png", "runs.png"]
    assert main(["compare", *(str(tmp_path / n) for n in ("lin", "none", "init")), "--out", str(out), "--export"]) == 0
    assert (out / "init" / "eval.json").is_file() and not (out / "init" / "log.nc").exists()
    text = (out / "RESULTS.md").read_text()
    assert "| none | no predictor, EMA 0.996 |" in text
    assert "| init | untrained network (--epochs 0) | 0 | 29.6 | – |" in text


@pytest.mark.parametrize("make", ["missing", "garbage"])
def test_compare_bad_log_exit_2(tmp_path, capsys, make):
    if make == "garbage":
        (tmp_path / "log.nc").write_bytes(b"not netcdf")
    assert main(["compare", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "log.nc" in err


@pytest.mark.slow
def test_compare_export_slim(tmp_path, capsys):
    run = tmp_path / "lin"
    run.mkdir()
    _log(run, acc=0.5)
    out = tmp_path / "out"
    assert main(["compare", str(run), "--out", str(out), "--export"]) == 0
    full, ev = load_run(run)
    small, ev2 = load_run(out / "lin")
    assert ev2 == ev and "F" not in small and "Wp" not in small
    np.testing.assert_allclose(rayleigh_p(small), rayleigh_p(full), rtol=1e-5)
    np.testing.assert_array_equal(small.alignment.values, full.alignment.values)
    assert (out / "alignment_lin.png").is_file()
    # exporting onto the runs themselves is refused, and the run is left as it was
    assert main(["compare", str(run), "--out", str(tmp_path), "--export"]) == 2
    assert "F" in load_run(run)[0]


def test_atomic_write_permissions_and_failure(tmp_path):
    import os

    from byoldyn.io import atomic_write

    mask = os.umask(0o022)
    try:
        f = atomic_write(tmp_path / "a.txt", lambda tmp: open(tmp, "w").write("x"))
        assert f.stat().st_mode & 0o777 == 0o644 and f.read_text() == "x"

        def boom(tmp):
            open(tmp, "w").write("partial")
            raise RuntimeError("interrupted")

        with pytest.raises(RuntimeError):
            atomic_write(tmp_path / "a.txt", boom)
        assert f.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    finally:
        os.umask(mask)
