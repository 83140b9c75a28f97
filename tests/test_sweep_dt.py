"""`sweep` takes whole steps of dt, by the rule of `simulate(dt=...)`: `--method euler --t1 1
--dt 0.3` ran with dt_eff = 0.25 without a word; now both refuse it, naming the flags."""

import json

import pytest

from byoldyn.solution import grid_steps
from byoldyn.sweeps import sweep
from byoldyn.sweeps.errors import Refused


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_sweep_refuses_a_dt_that_does_not_divide(method):
    with pytest.raises(Refused, match=r"^dt must divide t1 = 1, got dt = 0\.3 \(3\.33333 steps; e\.g\. dt = 0\.25\)$"):
        sweep("modes", t1=1.0, dt=0.3, method=method, progress=False)
    with pytest.raises(Refused, match=r"^dt must divide the save interval t1/n_save = 0\.5, got dt = 0\.3 "):
        sweep("modes", t1=1.0, dt=0.3, n_save=2, method=method, progress=False)
    with pytest.raises(Refused, match=r"^dt must divide t1 = 0\.1, got dt = 0\.3 \(0\.333333 steps; e\.g\. dt = 0\.1\)"):
        sweep("modes", t1=0.1, dt=0.3, method=method, progress=False)  # not even one step


@pytest.mark.slow
def test_sweep_takes_dt_as_given():
    ds = sweep("modes", t1=2.0, dt=0.1, n_save=4, seeds=1, progress=False)  # 5 steps per interval, in rounding
    cfg = json.loads(ds.attrs["config"])
    assert (cfg["n_per"], cfg["n_int"]) == (5, 4) and cfg["dt_eff"] == pytest.approx(0.1, rel=1e-12)


def test_one_rule_for_simulate_and_sweep():
    k, bad = grid_steps([1.0], 0.0, 0.3, "float64")
    assert bad == 0 and k[0] == pytest.approx(10 / 3)
    k, bad = grid_steps([0.5, 2.0], 0.0, 0.1, "float32")
    assert bad is None and k.tolist() == pytest.approx([5.0, 20.0], rel=1e-6)


def test_cli_one_line_exit_2(tmp_path, capsys):
    from byoldyn.cli import main

    code = main(["sweep", "--method", "euler", "--t1", "1", "--dt", "0.3", "--out", str(tmp_path / "s.nc"),
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not (tmp_path / "s.nc").exists()
    assert err == "byoldyn: error: --dt must divide --t1 = 1, got --dt 0.3 (3.33333 steps; e.g. --dt 0.25)"
