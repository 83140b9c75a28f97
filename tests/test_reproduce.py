"""`byoldyn reproduce --size small`: the figures are built and every theory check agrees.

The figures of the sampled networks are left out here: their claims are asserted in
tests/test_sampled.py, and compiling their many configurations takes over a minute.
"""

from byoldyn.cli import main
from byoldyn.figures import FIGURES, reproduce

THEORY = [name for name in FIGURES if not name.startswith("sampled_")]


def test_reproduce_small_all_checks_agree(tmp_path):
    checks = reproduce(tmp_path, size="small", only=THEORY, report=True, progress=False)
    assert len(checks) >= 25 and not checks.failed, checks.failed
    assert all(c.control and c.control_agrees is False for c in checks)
    for name in THEORY:
        assert (tmp_path / f"{name}.png").stat().st_size > 20_000
    report = (tmp_path / "REPORT.md").read_text()
    rows = [ln for ln in report.splitlines() if ln.startswith("| [")]
    claims = rows[:len(checks)]
    assert all("| yes |" in ln and ln.endswith("→ disagrees |") for ln in claims)
    assert len(rows) == len(checks) + len(checks.findings) and checks.findings
    assert f"**{checks.headline}**" in report and "## Findings: where the model and the paper differ" in report


def test_reproduce_cli_only_leaves_report_alone(tmp_path, capsys):
    assert main(["reproduce", "--size", "small", "--only", "fig4_cubic", "--out", str(tmp_path)]) == 0
    assert "3 claims agree, 3 controls fail as they must, 0 findings" in capsys.readouterr().out
    assert (tmp_path / "fig4_cubic.png").exists() and not (tmp_path / "REPORT.md").exists()


def test_reproduce_rejects_unknown_figure(tmp_path, capsys):
    assert main(["reproduce", "--only", "fig99", "--out", str(tmp_path)]) == 2
    assert "unknown figure 'fig99'" in capsys.readouterr().err
