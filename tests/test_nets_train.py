"""The training loop: checkpoints round-trip, resume reproduces the uninterrupted run, labelled log,
evaluation file, and a clear stop on a NaN loss."""

import json

import numpy as np
import pytest

pytest.importorskip("flax")

import jax

from _nets_tiny import TINY, tiny_dataset
from byoldyn.nets import Diverged, build, train
from byoldyn.nets.checkpoint import Checkpoints

TRAIN, TEST = tiny_dataset(24, seed=0), tiny_dataset(12, seed=1)  # 3 steps per epoch at batch 8


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return jax.tree.structure(a) == jax.tree.structure(b) and all(np.array_equal(x, y) for x, y in zip(la, lb))


def test_checkpoint_round_trip(tmp_path):
    m = build(TINY)
    s = m.init(jax.random.key(0, impl="rbg"))
    s, _ = m.step(s, TRAIN.images[:8], jax.random.key(1, impl="rbg"))
    ck = Checkpoints(tmp_path / "ck")
    ck.save(1, s, {"note": "x"})
    r, meta = ck.restore(ck.latest(), jax.eval_shape(m.init, jax.random.key(0, impl="rbg")))
    assert meta == {"note": "x"} and _leaves_equal(r, s)


def test_resume_reproduces_uninterrupted_run(tmp_path):
    full = train(TINY, TRAIN, TEST, tmp_path / "full", epochs=2, log_every=2, progress=False)
    part = train(TINY, TRAIN, TEST, tmp_path / "part", epochs=1, log_every=2, progress=False, evaluate=())
    assert part.resumed_from is None and int(part.state.step) == 3
    again = train(TINY, TRAIN, TEST, tmp_path / "part", epochs=2, log_every=2, progress=False)
    assert again.resumed_from == 3 and again.steps == 3
    assert _leaves_equal(full.state, again.state)
    assert again.eval == full.eval and 0 <= full.eval["knn_acc"] <= 1 and 0 <= full.eval["linear_acc"] <= 1
    assert json.loads((tmp_path / "full" / "eval.json").read_text())["knn_acc"] == full.eval["knn_acc"]
    import xarray as xr

    with xr.open_dataset(tmp_path / "part" / "log.nc", engine="h5netcdf") as a, \
            xr.open_dataset(tmp_path / "full" / "log.nc", engine="h5netcdf") as b:
        assert list(a.step.values) == [2, 3, 4, 6] and list(b.step.values) == [2, 4, 6]
        np.testing.assert_array_equal(a.loss.sel(step=[2, 6]).values, b.loss.sel(step=[2, 6]).values)
        np.testing.assert_array_equal(a.F.sel(step=6).values, b.F.sel(step=6).values)
        assert a.cos.dims == ("step", "mode") and a.F.dims == ("step", "i", "j") and a.sizes["mode"] == 16
        assert np.all(np.isfinite(a.asymmetry.values)) and np.all(np.abs(a.cos.values) <= 1 + 1e-6)
        assert json.loads(a.attrs["config"])["predictor"] == "linear" and "description" in a.s.attrs
    # a different config refuses to resume from these checkpoints
    import dataclasses

    with pytest.raises(ValueError, match="different config .*lr"):
        train(dataclasses.replace(TINY, lr=0.1), TRAIN, TEST, tmp_path / "part", epochs=3, progress=False)


def test_nan_loss_stops_with_a_message(tmp_path, monkeypatch):
    m = build(TINY)
    real = m.step

    def poisoned(state, images, key):
        state, met = real(state, images, key)
        if int(state.step) == 5:
            met = dict(met, loss=met["loss"] * np.nan)
        return state, met

    monkeypatch.setattr(m, "step", poisoned)
    with pytest.raises(Diverged, match=r"loss became nan at step 4; training stopped \(the last checkpoint is step 3"):
        train(TINY, TRAIN, TEST, tmp_path, epochs=3, log_every=2, progress=False)
    assert Checkpoints(tmp_path / "checkpoints").latest() == 3
