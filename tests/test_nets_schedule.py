"""Recipe options of `byoldyn train`: lr warmup + cosine, BYOL's EMA schedule, presets, bfloat16 compute, the
learning-curve points, and the full-scale preset's code path at tiny size resuming exactly."""

import dataclasses
import json
import math

import jax
import numpy as np
import pytest

pytest.importorskip("flax")

from _nets_tiny import TINY, tiny_dataset

from byoldyn.nets import Config, build
from byoldyn.nets.byol import ema_update
from byoldyn.nets.evaluate import append_curve
from byoldyn.nets.presets import PRESETS
from byoldyn.nets.schedule import ema_at, lr_schedule
from byoldyn.nets.trainer import train

SCHED = dataclasses.replace(TINY, lr_schedule="cosine", warmup_steps=2, total_steps=10, ema=0.9,
                            ema_schedule="byol", target_init="copy")
TRAIN, TEST = tiny_dataset(24, seed=0), tiny_dataset(12, seed=1)


def _paper_tiny() -> Config:
    """The paper-cifar10 preset's config (ResNet-18, the official optimizer) at tiny width, in bfloat16,
    with warmup + cosine lr and BYOL's EMA schedule over 6 steps."""
    from byoldyn.cli import parser
    from byoldyn.cli.train import apply_preset

    a = parser().parse_args(["train", "--data", "D", "--preset", "paper-cifar10", "--width", "0.0625"])
    apply_preset(a)
    return dataclasses.replace(TINY, width=a.width, stage_sizes=(2, 2, 2, 2) if a.depth == "18" else (1, 1, 1, 1),
                               lr=a.lr, momentum=a.momentum, wd=a.wd, ema=a.ema, predictor=a.predictor,
                               dtype="bfloat16", lr_schedule="cosine", warmup_steps=2, total_steps=6,
                               ema_schedule="byol")


PAPER = _paper_tiny()


def test_lr_warmup_then_cosine():
    f = lr_schedule(SCHED, 0.03)
    # linear warmup 0 -> 0.03 over 2 steps, then 0.03 (1 + cos(pi (k - 2) / 8)) / 2 down to 0 at k = 10
    want = [0.0, 0.015, 0.03] + [0.015 * (1 + math.cos(math.pi * (k - 2) / 8)) for k in range(3, 11)]
    np.testing.assert_allclose([float(f(k)) for k in range(11)], want, rtol=1e-6, atol=1e-9)
    # no schedule, no warmup: the plain float (the official optimizer unchanged)
    assert lr_schedule(TINY, 0.03) == 0.03
    g = lr_schedule(dataclasses.replace(TINY, warmup_steps=4), 0.1)
    np.testing.assert_allclose([float(g(k)) for k in (0, 2, 4, 100)], [0, 0.05, 0.1, 0.1], rtol=1e-6)


def test_byol_ema_schedule():
    # tau_k = 1 - (1 - tau_0)(cos(pi k / K) + 1) / 2: tau_0 at k = 0, (1 + tau_0) / 2 halfway, 1 at K
    np.testing.assert_allclose([float(ema_at(SCHED, k)) for k in (0, 5, 10, 20)], [0.9, 0.95, 1.0, 1.0], rtol=1e-6)
    assert ema_at(TINY, 7) == TINY.ema  # constant


@pytest.mark.parametrize("kw, match", [
    (dict(lr_schedule="cosine"), "total_steps must be set when lr_schedule is cosine"),
    (dict(ema_schedule="byol"), "total_steps must be set when"),
    (dict(lr_schedule="cosine", total_steps=5, warmup_steps=5), r"warmup_steps must be < total_steps \(5\)"),
    (dict(warmup_steps=-1), "warmup_steps must be a non-negative integer, got -1"),
    (dict(total_steps=0), "total_steps must be a positive integer or None, got 0"),
    (dict(dtype="float16"), "dtype must be one of float32, bfloat16, got 'float16'"),
    (dict(lr_schedule="step", total_steps=3), "lr_schedule must be one of constant, cosine"),
])
def test_config_validates_recipe_fields(kw, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(TINY, **kw)


def test_old_config_dicts_still_load():
    d = TINY.to_dict()
    for k in ("lr_schedule", "warmup_steps", "total_steps", "ema_schedule", "dtype"):
        d.pop(k)
    assert Config.from_dict(d) == TINY  # checkpoints written before these options resume unchanged


@pytest.mark.slow
def test_step_uses_scheduled_lr_and_ema():
    cfg = PAPER  # shares its compiled step with the full-scale test below
    m = build(cfg)
    s0 = m.init(jax.random.key(0, impl="rbg"))
    x = jax.numpy.asarray(TRAIN.images[:8])
    s1, met1 = m.step(s0, x, jax.random.key(1, impl="rbg"))
    s2, met2 = m.step(s1, x, jax.random.key(2, impl="rbg"))
    s3, met3 = m.step(s2, x, jax.random.key(3, impl="rbg"))
    lr = lr_schedule(cfg, cfg.lr)
    np.testing.assert_allclose([float(v["lr"]) for v in (met1, met2, met3)], [0.0, 0.015, float(lr(2))], rtol=1e-6)
    np.testing.assert_allclose(float(met3["ema"]), 1 - 0.004 * (math.cos(math.pi * 2 / 6) + 1) / 2, rtol=1e-6)
    # lr 0 at step 0: the online net does not move (momentum buffers start at zero)
    for a, b in zip(jax.tree.leaves(s0.online), jax.tree.leaves(s1.online)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the target follows ema_update with tau_2
    want = ema_update(s2.target, s3.online, float(ema_at(cfg, 2)))
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(s3.target)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_cli_preset_fills_defaults_and_explicit_flags_win():
    from byoldyn.cli import parser
    from byoldyn.cli.train import apply_preset, recipe

    a = parser().parse_args(["train", "--data", "D", "--preset", "paper-cifar10", "--width", "0.0625",
                              "--lr-schedule", "cosine", "--warmup-steps", "3"])
    apply_preset(a)
    assert (a.width, a.depth, a.epochs, a.lr, a.batch_size, a.ema) == (0.0625, "18", 100, 0.03, 128, 0.996)
    cfg = recipe(a, TINY, 1000)  # schedules over the whole run: 100 epochs of 1000 // 8 steps
    assert (cfg.lr_schedule, cfg.warmup_steps, cfg.total_steps, cfg.dtype) == ("cosine", 3, 100 * 125, "float32")
    b = parser().parse_args(["train", "--data", "D"])
    apply_preset(b)
    assert recipe(b, TINY, 1000) == TINY  # the official recipe: no schedule fields set
    assert PRESETS["official"] == {}


def test_cpu_hour_preset_is_the_search_run_p3():
    """`--preset cpu-hour` parses to the same arguments as the flags of SEARCH.md's run p3."""
    from byoldyn.cli import parser
    from byoldyn.cli.train import apply_preset

    a = parser().parse_args(["train", "--data", "D", "--preset", "cpu-hour"])
    apply_preset(a)
    b = parser().parse_args(("train --data D --width 0.25 --depth 10 --target-init copy --lr 0.2 --lr-schedule "
                             "cosine --warmup-steps 200 --ema 0.99 --ema-schedule byol --alpha-p 10 --epochs 11 "
                             "--total-steps 4000 --stop-at 4000 --eval-every 250").split())
    apply_preset(b)
    skip = ("preset", "func")  # func: each parser() builds its own closure of train.run
    assert {k: v for k, v in vars(a).items() if k not in skip} == {k: v for k, v in vars(b).items() if k not in skip}


def test_explicit_flag_at_its_default_overrides_the_preset():
    """`--preset cpu-hour --ema-schedule constant --lr 0.03` keeps both flags although they equal the defaults."""
    from byoldyn.cli import parser
    from byoldyn.cli.train import apply_preset

    a = parser().parse_args(["train", "--data", "D", "--preset", "cpu-hour", "--ema-schedule", "constant",
                             "--lr", "0.03", "--depth", "18"])
    apply_preset(a)
    assert (a.ema_schedule, a.lr, a.depth, a.lr_schedule, a.width) == ("constant", 0.03, "18", "cosine", 0.25)


def test_append_curve_drops_points_of_an_interrupted_run(tmp_path):
    p = tmp_path / "curve.json"
    for s in (0, 5, 10):
        append_curve(p, {"step": s, "knn_acc": s / 100})
    assert [q["step"] for q in append_curve(p, {"step": 5, "knn_acc": 0.5})] == [0, 5]
    assert json.loads(p.read_text())[-1] == {"step": 5, "knn_acc": 0.5}


@pytest.mark.slow
def test_full_scale_preset_path_tiny_resumes_exactly(tmp_path):
    cfg = PAPER
    full = train(cfg, TRAIN, TEST, tmp_path / "full", epochs=2, log_every=2, progress=False, evaluate=())
    part = train(cfg, TRAIN, TEST, tmp_path / "part", epochs=2, log_every=2, progress=False, evaluate=(),
                 max_steps=3)
    assert int(part.state.step) == 3
    again = train(cfg, TRAIN, TEST, tmp_path / "part", epochs=2, log_every=2, progress=False, evaluate=())
    assert again.resumed_from == 3 and int(again.state.step) == 6
    for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(again.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # mixed precision keeps the state in float32 (bfloat16 is only the compute dtype)
    assert {np.asarray(x).dtype.name for x in jax.tree.leaves(full.state.online)} == {"float32"}


@pytest.mark.slow
def test_learning_curve_points_resume_with_the_run(tmp_path):
    kw = dict(epochs=2, log_every=2, progress=False, evaluate=(), eval_every=3)
    train(TINY, TRAIN, TEST, tmp_path / "full", **kw)
    train(TINY, TRAIN, TEST, tmp_path / "part", max_steps=4, **kw)
    part = json.loads((tmp_path / "part" / "curve.json").read_text())
    assert [p["step"] for p in part] == [0, 3]
    train(TINY, TRAIN, TEST, tmp_path / "part", **kw)
    curve = json.loads((tmp_path / "full" / "curve.json").read_text())
    assert [p["step"] for p in curve] == [0, 3, 6] and all(0 <= p["knn_acc"] <= 1 for p in curve)
    assert all(p["n_train"] == 24 and p["n_test"] == 12 for p in curve)
    # the first point carries the baselines on the same images; the others do not
    assert 0 <= curve[0]["pixels_knn_acc"] <= 1 and 0 <= curve[0]["batch_bn_knn_acc"] <= 1
    assert not any("pixels_knn_acc" in p for p in curve[1:])
    assert json.loads((tmp_path / "part" / "curve.json").read_text()) == curve


def test_cli_bad_schedule_is_one_line_exit_2(tmp_path, capsys):
    from PIL import Image

    from byoldyn.cli import main as _main

    def main(argv):
        return _main(argv, devices=False)

    for split in ("train", "test"):
        for i, (x, y) in enumerate(zip(TRAIN.images[:16], TRAIN.labels[:16])):
            d = tmp_path / "data" / split / TRAIN.classes[y]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x).save(d / f"{i}.png")
    argv = ["train", "--data", str(tmp_path / "data"), "--batch-size", "8", "--epochs", "1", "--no-progress",
            "--out", str(tmp_path / "run"), "--lr-schedule", "cosine", "--warmup-steps", "2"]
    assert main(argv) == 2  # 1 epoch of 16 images = 2 steps: no room for the cosine after the warmup
    err = capsys.readouterr().err.strip()
    assert "--warmup-steps must be < total_steps (2) with a cosine schedule, got 2" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoints").exists()
