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
from byoldyn.observables import REGISTRY

TRAIN, TEST = tiny_dataset(24, seed=0), tiny_dataset(12, seed=1)  # 3 steps per epoch at batch 8


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return jax.tree.structure(a) == jax.tree.structure(b) and all(np.array_equal(x, y) for x, y in zip(la, lb))


@pytest.mark.slow
def test_checkpoint_round_trip(tmp_path):
    m = build(TINY)
    s = m.init(jax.random.key(0, impl="rbg"))
    s, _ = m.step(s, TRAIN.images[:8], jax.random.key(1, impl="rbg"))
    ck = Checkpoints(tmp_path / "ck")
    ck.save(1, s, {"note": "x"})
    r, meta = ck.restore(ck.latest(), jax.eval_shape(m.init, jax.random.key(0, impl="rbg")))
    assert meta == {"note": "x"} and _leaves_equal(r, s)
    # uncommitted, as init's state: a step on the restored state is the program compiled for a fresh one
    assert not any(x.committed for x in jax.tree.leaves(r)) and not any(x.committed for x in jax.tree.leaves(s))


def _logs_identical(a, b):
    """Two runs' log.nc files hold the same records (steps, every variable, bit for bit) and attributes."""
    import xarray as xr

    with xr.open_dataset(a, engine="h5netcdf") as x, xr.open_dataset(b, engine="h5netcdf") as y:
        x, y = x.load(), y.load()
    assert list(x.step.values) == list(y.step.values)
    assert sorted(x.data_vars) == sorted(y.data_vars) and x.attrs == y.attrs
    for k in x.data_vars:
        np.testing.assert_array_equal(x[k].values, y[k].values, err_msg=k)
    return x


@pytest.mark.slow
def test_resume_reproduces_uninterrupted_run(tmp_path):
    full = train(TINY, TRAIN, TEST, tmp_path / "full", epochs=2, log_every=2, progress=False)
    part = train(TINY, TRAIN, TEST, tmp_path / "part", epochs=1, log_every=2, progress=False, evaluate=())
    assert part.resumed_from is None and int(part.state.step) == 3
    import xarray as xr

    with xr.open_dataset(tmp_path / "part" / "log.nc", engine="h5netcdf") as a:
        assert list(a.step.values) == [2, 3]  # the end of the 1-epoch run is recorded
    again = train(TINY, TRAIN, TEST, tmp_path / "part", epochs=2, log_every=2, progress=False)
    assert again.resumed_from == 3 and again.steps == 3
    assert _leaves_equal(full.state, again.state)
    assert again.eval == full.eval and 0 <= full.eval["knn_acc"] <= 1 and 0 <= full.eval["linear_acc"] <= 1
    assert json.loads((tmp_path / "full" / "eval.json").read_text())["knn_acc"] == full.eval["knn_acc"]
    # the extended run's log is the 2-epoch run's: the record at 3 (end of the shorter run) is gone and the
    # record at 4 averages steps 3 and 4, as in the uninterrupted run
    a = _logs_identical(tmp_path / "part" / "log.nc", tmp_path / "full" / "log.nc")
    assert list(a.step.values) == [2, 4, 6]
    assert a.alignment.dims == ("step", "mode") and a.F.dims == ("step", "i", "j") and a.sizes["mode"] == 16
    assert np.all(np.isfinite(a.asymmetry.values)) and np.all(np.abs(a.alignment.values) <= 1 + 1e-6)
    assert json.loads(a.attrs["config"])["predictor"] == "learned"  # the shared name (byoldyn.predictors; "linear" is its alias)
    assert a.s.attrs["long_name"] == REGISTRY["s"].long_name and a.alignment.attrs["units"] == "1"
    # a different config refuses to resume from these checkpoints
    import dataclasses

    with pytest.raises(ValueError, match="different config .*lr"):
        train(dataclasses.replace(TINY, lr=0.1), TRAIN, TEST, tmp_path / "part", epochs=3, progress=False)


class _Killed(Exception):
    pass


def _crash_before(monkeypatch, step):
    """Make the compiled step of TINY raise before global step `step` (a kill between checkpoints)."""
    m = build(TINY)
    real = m.step

    def crashing(state, images, key):
        if int(state.step) == step:
            raise _Killed
        return real(state, images, key)

    monkeypatch.setattr(m, "step", crashing)


KW = dict(epochs=3, log_every=4, ckpt_every=3, progress=False, evaluate=())  # records 4, 8, 9; checkpoints 3, 6, 9


@pytest.mark.slow
def test_resume_between_records_logs_as_uninterrupted(tmp_path, monkeypatch):
    full = train(TINY, TRAIN, None, tmp_path / "full", **KW)
    _crash_before(monkeypatch, 5)  # after the record at 4, the newest checkpoint is at 3
    with pytest.raises(_Killed):
        train(TINY, TRAIN, None, tmp_path / "part", **KW)
    monkeypatch.undo()
    assert Checkpoints(tmp_path / "part" / "checkpoints").latest() == 3
    again = train(TINY, TRAIN, None, tmp_path / "part", **KW)
    assert again.resumed_from == 3 and _leaves_equal(again.state, full.state)
    # before the fix the record at 4 averaged only step 4 (the steps since the checkpoint)
    a = _logs_identical(tmp_path / "part" / "log.nc", tmp_path / "full" / "log.nc")
    assert list(a.step.values) == [4, 8, 9]


def _corrupt_state(step_dir):
    for f in (step_dir / "state" / "ocdbt.process_0" / "d").iterdir():
        f.write_bytes(b"\0" * f.stat().st_size)


@pytest.mark.slow
def test_resume_refuses_other_data_and_falls_back_past_a_corrupt_checkpoint(tmp_path, capsys):
    full = train(TINY, TRAIN, None, tmp_path / "full", **KW)
    run = tmp_path / "run"
    train(TINY, TRAIN, None, run, **dict(KW, epochs=2))  # checkpoints 3 and 6
    ck = run / "checkpoints"
    # other training data: refused in one line, whatever differs (one pixel, the number of images)
    other = TRAIN.images.copy()
    other[7, 3, 3, 0] ^= 1
    with pytest.raises(ValueError, match=r"^checkpoint in .* was made on other training data: in-memory data, 24 "
                       r"images of 16x16x3, fingerprint [0-9a-f]{32}, not in-memory data, 24 images of 16x16x3, "
                       r"fingerprint [0-9a-f]{32}; use another --out or --no-resume$"):
        train(TINY, TRAIN.replace(images=other), None, run, **KW)
    with pytest.raises(ValueError, match=r"on other training data: in-memory data, 24 images of 16x16x3, not "
                       r"in-memory data, 16 images"):
        train(TINY, TRAIN.first(16), None, run, **KW)
    # a corrupt newest checkpoint: one line, the previous one is used, the result is the uninterrupted run's
    capsys.readouterr()
    _corrupt_state(ck / "6")
    again = train(TINY, TRAIN, None, run, **KW)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"byoldyn train: checkpoint 6 in {ck} is unreadable (") and \
        err[0].endswith(f"); moved to {run / 'checkpoints.bad' / '6'}; resuming from step 3")
    assert again.resumed_from == 3 and _leaves_equal(again.state, full.state)
    _logs_identical(run / "log.nc", tmp_path / "full" / "log.nc")
    # corrupt metadata of both checkpoints: no readable one, one line; --no-resume starts afresh
    for s in Checkpoints(ck).steps():
        (ck / str(s) / "meta" / "metadata").write_text("{garbage")
    with pytest.raises(ValueError, match=r"^no readable checkpoint in .*: step 9 is unreadable \(cannot read "
                       r"checkpoint metadata '.*/9/meta/metadata': Expecting .*\) and 1 more; use --no-resume"):
        train(TINY, TRAIN, None, run, **KW)
    fresh = train(TINY, TRAIN, None, run, **dict(KW, resume=False))
    assert fresh.resumed_from is None and _leaves_equal(fresh.state, full.state)
    assert Checkpoints(ck).steps() == [9, 6]


@pytest.mark.slow
def test_resume_with_a_damaged_log(tmp_path):
    run = tmp_path / "run"
    train(TINY, TRAIN, None, run, **dict(KW, epochs=2))  # records 4, 6 (end); checkpoints 3, 6
    log = run / "log.nc"
    raw = log.read_bytes()
    log.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"^cannot read the training log '.*log.nc' \(truncated or corrupt: .*\); "
                       r"use another --out or --no-resume$"):
        train(TINY, TRAIN, None, run, **KW)
    log.unlink()
    with pytest.raises(ValueError, match=r"^the training log .*log.nc is missing, but the checkpoint at step 6 "
                       r"follows 2 records; use another --out or --no-resume$"):
        train(TINY, TRAIN, None, run, **KW)


@pytest.mark.slow
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
