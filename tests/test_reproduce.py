"""`byoldyn reproduce --size small`: every figure is built and every theory check agrees."""

import re

from byoldyn.cli import main
from byoldyn.figures import FIGURES


def test_reproduce_small_all_checks_agree(tmp_path, capsys):
    assert main(["reproduce", "--size", "small", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    n_ok, n = map(int, re.search(r"(\d+)/(\d+) checks agree", out).groups())
    assert n_ok == n and n >= 20
    for name in FIGURES:
        assert (tmp_path / f"{name}.png").stat().st_size > 20_000
    report = (tmp_path / "REPORT.md").read_text()
    rows = [ln for ln in report.splitlines() if ln.startswith("| [")]
    assert len(rows) == n and all(ln.endswith("| yes |") for ln in rows)


def test_reproduce_rejects_unknown_figure(tmp_path, capsys):
    assert main(["reproduce", "--only", "fig99", "--out", str(tmp_path)]) == 2
    assert "unknown figure 'fig99'" in capsys.readouterr().err
