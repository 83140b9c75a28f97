"""A size whose verdict is seed noise is not offered as a check: such a row is "not decided" at that
size, neither an agreement nor a failure, and `byoldyn reproduce` exits 0 on it; at size small the Fig. 6 row
(cosine loss, sampled linear model) is one."""

import dataclasses

import pytest

from byoldyn.cli import main
from byoldyn.figures import FIGURES, Results
from byoldyn.figures.common import Check

OK = Check("c", "1", "1", True, "ctl", False)
NOISE = Check("noisy", "0.42 [-0.21, 1.04]", "> 0", False, "ctl", False, undecided="seed noise at this size")


def test_undecided_row_is_neither_agreement_nor_failure():
    r = Results([OK, NOISE], [])
    assert r.headline == "1 claims agree, 1 controls fail as they must, 1 not decided at this size, 0 findings"
    assert r.failed == [] and r.undecided == [NOISE] and not NOISE.passed and OK.passed
    assert "| not decided: seed noise at this size |" in NOISE.row()
    # a decided row that disagrees still fails
    bad = dataclasses.replace(NOISE, undecided="")
    assert Results([OK, bad], []).failed == [bad]


def test_cli_exits_0_and_names_the_undecided_row(tmp_path, capsys, monkeypatch):
    import matplotlib.pyplot as plt

    import byoldyn.figures as figs

    monkeypatch.setitem(figs.FIGURES, "fake", lambda size: (plt.figure(), [OK, NOISE]))
    assert main(["reproduce", "--size", "small", "--only", "fake", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 claims agree, 1 controls fail as they must, 1 not decided at this size, 0 findings" in out
    assert "NOT DECIDED at size small: noisy: seed noise at this size" in out


@pytest.mark.slow
def test_fig6_cosine_row_not_decided_at_small_size():
    _, rows = FIGURES["sampled_alpha_p"]("small")
    (row,) = [c for c in rows if isinstance(c, Check) and c.claim.startswith("Fig. 6 (cosine loss")]
    assert not row.decided and "decided at size full" in row.undecided and row.measured


@pytest.mark.slow
def test_sweep_figure_verdicts_agree_for_disjoint_seed_sets():
    """At size small the sweep figure's full-matrix Obs#1 row (2 seeds) is seed noise: seeds 0-1 agree, seeds
    1000-1001 do not ([-0.28, 0.78]); it is not decided there. Every decided row agrees for both seed sets."""
    verdicts = []
    for seed in (0, 1000):
        _, rows = FIGURES["sweep_collapse_alpha_eta"]("small", seed=seed)
        verdicts.append([(c.claim, c.agrees, c.control_agrees) for c in rows if isinstance(c, Check) and c.decided])
        assert [c.claim[:6] for c in rows if isinstance(c, Check) and not c.decided] == ["Obs#1 "]
    assert verdicts[0] == verdicts[1] and all(a and c is False for _, a, c in verdicts[0])


def test_a_bar_inside_a_cell_does_not_split_the_report_row():
    from byoldyn.figures.common import Check, Finding

    row = Check("max |p − p*| small", "|x| = 1e-9", "< 1e-6", True, "dynamics off", False).row("fig")
    assert row.count(" | ") == 4 and row.replace(r"\|", "").count("|") == 6
    assert Finding("rtol·|W|", "a", "b", "c").row().replace(r"\|", "").count("|") == 5
