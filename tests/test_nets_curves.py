"""`byoldyn compare` draws the learning curves (RUN/curve.json of --eval-every) against the baselines of an
untrained-network run, exports them, and refuses a damaged curve with one line (exit 2)."""

import json

from byoldyn.cli import main as _main
from byoldyn.figures.common import seed_styles
from byoldyn.figures.curves import fig_curves, load_curve


def main(argv):
    return _main(argv, devices=False)


def _dirs(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "eval.json").write_text(json.dumps({"knn_acc": 0.41}))
    pts = [{"step": 0, "knn_acc": 0.3, "n_train": 100, "n_test": 20}, {"step": 250, "knn_acc": 0.35}]
    (tmp_path / "run" / "curve.json").write_text(json.dumps(pts))
    (tmp_path / "b0").mkdir()
    (tmp_path / "b0" / "eval.json").write_text(json.dumps({"knn_acc": 0.296, "pixels_knn_acc": 0.353,
                                                           "batch_bn_knn_acc": 0.256}))
    return pts


def test_compare_draws_and_exports_the_curve(tmp_path, capsys):
    pts = _dirs(tmp_path)
    out = tmp_path / "out"
    assert main(["compare", str(tmp_path / "run"), str(tmp_path / "b0"), "--out", str(out), "--export"]) == 0
    assert (out / "curve.png").stat().st_size > 1000
    assert json.loads((out / "run" / "curve.json").read_text()) == pts
    assert not (out / "b0" / "curve.json").exists()
    fig = fig_curves({"run": pts}, {"raw pixels": 0.353})
    ax = fig.axes[0]
    assert [list(l.get_ydata()) for l in ax.lines] == [[30.0, 35.0], [35.3, 35.3]]
    # baselines carried by the curve's first point (same images) replace those given
    own = [{**pts[0], "pixels_knn_acc": 0.34, "batch_bn_knn_acc": 0.25}, pts[1]]
    ax = fig_curves({"run": own}, {"raw pixels": 0.353}).axes[0]
    assert [l.get_ydata()[0] for l in ax.lines] == [30.0, 34.0, 25.0]
    assert "same images as the curve" in ax.get_legend().get_texts()[1].get_text()
    # seeds of one method: one colour, one legend entry, line styles apart
    ax = fig_curves({"m-s0": pts, "m-s1": pts, "other": pts}).axes[0]
    assert ax.lines[0].get_color() == ax.lines[1].get_color() != ax.lines[2].get_color()
    assert ax.lines[0].get_linestyle() != ax.lines[1].get_linestyle()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["m (seeds 0, 1)", "other"]


def test_damaged_curve_is_one_line_exit_2(tmp_path, capsys):
    _dirs(tmp_path)
    (tmp_path / "run" / "curve.json").write_text('[{"step": 0}]')
    assert main(["compare", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a learning curve" in err and "curve.json" in err and len(err.splitlines()) == 1
    assert load_curve(tmp_path / "nothing") == []


def test_seed_styles_one_colour_per_method_even_past_ten():
    """Seeds of a method share its colour and differ by line style; 11 methods get 11 colours (the curve figure
    once drew the 11th method in the 1st's blue)."""
    for k in (3, 11):
        names = [f"m{j}-s{s}" for j in range(k) for s in (0, 1)]
        st = seed_styles(names)
        colours = [str(st[f"m{j}-s0"]["color"]) for j in range(k)]
        assert len(set(colours)) == k
        assert all(st[f"m{j}-s1"]["color"] == st[f"m{j}-s0"]["color"] for j in range(k))
        assert all(st[f"m{j}-s1"]["ls"] != st[f"m{j}-s0"]["ls"] for j in range(k))
        assert st["m0-s0"]["label"] == "m0 (seeds 0, 1)" and st["m0-s1"]["label"] is None
