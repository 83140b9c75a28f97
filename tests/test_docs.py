"""The documentation site's checks that need no mkdocs (docs/api_index.py, docs/gen_*.py).

`mkdocs build --strict` (CI, `.ci/run`) is the full check: it fails on a broken reference and, through
docs/hooks.py, on a public name without an anchor in the built API pages. These tests fail first and fast on the
same faults, from the sources alone.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS))

import api_index  # noqa: E402
import gen_theory_map  # noqa: E402

import byoldyn  # noqa: E402,F401  (imported at collection, as the other test modules do)


def test_every_public_name_is_documented():
    names = api_index.public_names()
    assert len(names) > 100  # byoldyn, byoldyn.nets, byoldyn.sampled, byoldyn.sweeps
    assert {"simulate", "Hyper", "sweep"} <= {n for p, n in names if p == "byoldyn"}
    assert ("byoldyn.nets", "train") in names and ("byoldyn.sampled", "compare") in names
    assert api_index.undocumented() == []


def test_documented_where_defined():
    found = api_index.directives()
    assert api_index.documented_as("byoldyn", "simulate", found) == "byoldyn.integrate.simulate"
    assert api_index.documented_as("byoldyn", "Solution", found) == "byoldyn.solution.Solution"
    assert api_index.documented_as("byoldyn", "observables", found) == "byoldyn.observables"
    assert api_index.documented_as("byoldyn.nets", "train", found) == "byoldyn.nets.trainer.train"


def test_an_undocumented_name_fails():
    """Controls: without its module's directive, or excluded by a members list, a public name is undocumented."""
    found = api_index.directives()
    without = {k: v for k, v in found.items() if k not in ("byoldyn.integrate", "byoldyn.solution")}
    assert api_index.documented_as("byoldyn", "simulate", without) is None
    assert api_index.documented_as("byoldyn", "SUCCEEDED", without) is None
    restricted = {**without, "byoldyn.integrate": ("simulate",)}
    assert api_index.documented_as("byoldyn", "simulate", restricted) == "byoldyn.integrate.simulate"
    assert api_index.documented_as("byoldyn", "Solution", restricted) is None
    nets = {k: v for k, v in found.items() if k != "byoldyn.nets.trainer"}
    assert api_index.documented_as("byoldyn.nets", "train", nets) is None


def test_tuple_unpacking_is_not_seen(tmp_path, monkeypatch):
    """griffe (hence mkdocstrings) does not see names bound by `a, b = 1, 2`: the check must not either."""
    pkg = tmp_path / "fakepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('__all__ = ["A", "B", "C"]\nA, B = 0, 1\nC = 2\n')
    monkeypatch.setattr(api_index, "ROOT", tmp_path)
    api_index._parse.cache_clear()
    try:
        assert [api_index.public_in("fakepkg", n) for n in "ABC"] == [False, False, True]
    finally:
        api_index._parse.cache_clear()


def test_directives_resolve():
    """Each `::: path` names a module or a name a module defines or imports (else mkdocs fails on it)."""
    for ident in api_index.directives():
        if api_index.is_module(ident):
            continue
        mod, _, name = ident.rpartition(".")
        assert api_index.is_module(mod), ident
        _, defined, imports = api_index._parse(mod)
        assert name in defined or name in imports, ident


def test_nav_pages_exist():
    """Every page of mkdocs.yml's nav is under docs/ or added by docs/hooks.py from the repository."""
    nav = re.findall(r"^\s+- (?:[^:\n]+: )?(\S+\.(?:md|ipynb))\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert len(nav) > 20
    generated = {"theory-map.md", "cli.md"}
    for page in nav:
        assert page in generated or (DOCS / page).is_file() or (ROOT / page).is_file(), page
    assert {f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")} <= set(nav)


def test_citations():
    c = gen_theory_map.citations
    assert c("Eqs. 11-13 and Eq. 1") == {"eq:11", "eq:12", "eq:13", "eq:1"}
    assert c("Eq. 7/62; Eqs. 2–4") == {"eq:7", "eq:62", "eq:2", "eq:3", "eq:4"}
    assert c("Obs#3/#4 (THEORY.md 7.3, 7.5), Theorem 2, App. D") == {
        "obs:3", "obs:4", "sec:7.3", "sec:7.5", "thm:2", "appD"}
    assert c("Eq. 11") == {"eq:11"} and "eq:1" not in c("Eq. 11")


def test_theory_map():
    page = gen_theory_map.render()
    for e in gen_theory_map.EQUATIONS + gen_theory_map.OBSERVATIONS:
        assert f"**{e.label}**" in page or f"[{e.label}](#" in page, e.label
    # the code that implements the key equations is found from its docstrings and linked to the reference
    for ident in ("byoldyn.flows.matrix.vector_field", "byoldyn.theory.p_star", "byoldyn.observables.theorem1_residual",
                  "byoldyn.flows.symmetric.symmetric_field"):
        assert f"][{ident}]" in page, ident
    assert "(figures/REPORT.md): Theorem 2" in page  # a REPORT row that checks Eq. 6
    # every link target is a documented identifier (else mkdocs' autorefs fails the strict build)
    found = api_index.directives()
    for ident in re.findall(r"\]\[(byoldyn[\w.]*)\]", page):
        assert gen_theory_map.link_id(ident, found) == ident or ident.rpartition(".")[0] in found or any(
            ident.startswith(d + ".") for d in found), ident


def _theory_md() -> Path | None:
    for p in (os.environ.get("BYOLDYN_THEORY"), ROOT.parent / "shared" / "THEORY.md"):
        if p and Path(p).is_file():
            return Path(p)
    return None


@pytest.mark.skipif(_theory_md() is None, reason="THEORY.md (the project's shared spec) is not beside the checkout")
def test_theory_map_covers_theory_md():
    """Every numbered equation, theorem and lemma of THEORY.md has a row in the map."""
    keys = gen_theory_map.theory_keys(_theory_md().read_text(encoding="utf-8"))
    assert {"eq:2", "eq:16", "eq:103", "thm:1", "thm:3", "lemma:2"} <= keys
    assert keys - gen_theory_map.covered_keys() == set()


def test_cli_reference():
    import gen_cli

    from byoldyn.cli import COMMANDS

    page = gen_cli.render()
    for command in COMMANDS:
        name = command.__name__.rpartition(".")[2].replace("_", "-")
        assert f"## byoldyn {name}\n\n```text\nusage: byoldyn {name}" in page, name
    assert "--alpha-p" in page and "--level" in page


def test_doctest_blocks_become_code():
    pytest.importorskip("mkdocs")
    import markdown
    from hooks import DocstringMarkdown

    md = markdown.Markdown(extensions=[DocstringMarkdown(), "fenced_code"])
    html = md.convert("Text with p*_− and p*_+.\n\n>>> 1 + 1\n2\n\nafter `p*_x`")
    assert '<code class="language-pycon">&gt;&gt;&gt; 1 + 1\n2\n</code>' in html
    assert "p*_− and p*_+" in html and "<em>" not in html and "<code>p*_x</code>" in html


# a tracker the reader does not have: "issue 13", "the 45 %", "issue item 3" (the history is CHANGELOG.md's)
TRACKER = re.compile(r"\bissues?\s+(?:\d+|item)|\bthe issue'?s?\b", re.IGNORECASE)
SPOKEN = ["README.md", "byoldyn", "docs", "figures", "notebooks", "benchmarks", "tests", "mkdocs.yml", "CITATION.cff"]


def test_the_project_speaks_of_itself_alone():
    files = [p for s in SPOKEN for p in ([ROOT / s] if (ROOT / s).is_file() else (ROOT / s).rglob("*"))
             if p.is_file() and p.suffix in {".md", ".py", ".ipynb", ".yml", ".cff", ".txt"}]
    assert len(files) > 100
    bad = [f"{p.relative_to(ROOT)}:{i}: {ln.strip()[:100]}" for p in files if p.name != "test_docs.py"
           for i, ln in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1) if TRACKER.search(ln)]
    assert not bad, "\n".join(bad)
