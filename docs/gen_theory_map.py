"""The theory-to-code map: each equation and theorem of THEORY.md -> the code that implements it, the rows of
figures/REPORT.md that check it, and the test files that cite it.

The equations are listed here (THEORY.md is the project's shared spec and is not part of the repository); the
rest is found when the site is built: a docstring implements an equation when it cites it ("Eq. 16",
"Eqs. 11-13", "Theorem 1", ...), a REPORT row checks it when its claim cites it (or its section or figure), a test
file when its text cites it. Run at build time by docs/hooks.py; `python docs/gen_theory_map.py` prints the page.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import api_index

ROOT = api_index.ROOT
PACKAGE = ROOT / "byoldyn"
REPORT = ROOT / "figures" / "REPORT.md"
TESTS = ROOT / "tests"
# not implementations: the figures check the maths (their rows are the REPORT column), the CLI parses flags
SKIP = ("byoldyn/figures/", "byoldyn/cli/")


@dataclass(frozen=True)
class Entry:
    label: str                      # as the paper names it
    section: str                    # THEORY.md section
    what: str                       # the statement, briefly
    eqs: tuple[int, ...] = ()       # equation numbers a citation may name
    keys: tuple[str, ...] = ()      # other citations: "thm:1", "lemma:2", "assump:1", "appD", "text:boost_scale"
    checks: tuple[str, ...] = ()    # further REPORT keys only: "sec:7.4", "fig:fig5_decoupled", "obs:5"


EQUATIONS = (
    Entry("Eq. 1", "1", "the BYOL loss J = ½ E‖Wp f1 − StopGrad(f2a)‖² and its second moments X, X'", (1,)),
    Entry("Eqs. 2-4 (Lemma 1)", "2", "the full-matrix gradient flow of (Wp, W, Wa) with α_p, η, β", (2, 3, 4),
          ("lemma:1",)),
    Entry("Lemma 1's variants", "2", "SimSiam (Wa ≡ W), no stop-gradient, no predictor (Wp = I), separate weight "
          "decays η_p ≠ η", (), ("text:stop_grad=False", "text:SimSiam"), ("sec:2",)),
    Entry("Eq. 5 (Theorem 1)", "3", "WWᵀ = α_p⁻¹WpᵀWp + e^{−2ηt}C: weight decay balances predictor and encoder",
          (5,), ("thm:1",)),
    Entry("Eq. 6 (Theorem 2), Lemma 2", "4", "without stop-gradient d vec(W)/dt = −H(t) vec(W) with H PSD: "
          "‖W(t)‖ ≤ e^{−λ0 t}‖W(0)‖", (6,), ("thm:2", "lemma:2")),
    Entry("Assumptions 1-3", "5", "Wa = τW (A1), isotropic data X = I, X' = σ²I (A2), symmetric Wp (A3)", (),
          ("assump:1", "assump:2", "assump:3")),
    Entry("Eq. 62", "5", "the reduced (Wp, F) flow under A1-A2, Wp not symmetrized", (62,)),
    Entry("Eq. 7 (= Eq. 67)", "5", "the symmetrized (Wp, F) flow under A1-A3", (7, 67)),
    Entry("Eqs. 8-10 (Theorem 3)", "6", "dL/dt = −LK − KL for L = [F, Wp]: eigenspace alignment while "
          "λ_min(K) > 0", (8, 9, 10), ("thm:3",)),
    Entry("Eqs. 11-13", "7.1", "the decoupled per-mode system (p_j, s_j, τ); the scalar case of Eqs. 2-4",
          (11, 12, 13), (), ("fig:fig5_decoupled", "sec:7.1")),
    Entry("Eq. 14", "7.2", "the invariant parabola s_j = α_p⁻¹p_j² + e^{−2ηt}c_j", (14,), (), ("sec:7.2", "sec:7.3")),
    Entry("Eq. 15", "7.4", "τ(t) with τ(0) = 0 on the parabola", (15,)),
    Entry("Eq. 16", "7.4", "the 1-D cubic ṗ = −κp(p − p*_−)(p − p*_+), its fixed points p*_± and the "
          "saddle-node at η_c = τ²/4κ", (16,), (), ("sec:7.4",)),
    Entry("Eq. 17", "7.5", "the alignment criterion Δ_j < ½(α_p κ s_j + η), i.e. K_j > 0", (17,), (), ("sec:7.5",)),
    Entry("Eq. 103 (Appendix D)", "8", "non-isotropic fixed points Wp W = W Σ^d(Σ^s)⁻¹; the scalar flows of "
          "Fig. 10", (103,), ("appD",)),
    Entry("Eq. 18 (DirectPred)", "10.1", "Wp = Û diag(p_j) Ûᵀ with p_j = √s_j + ε max_j s_j", (18,)),
    Entry("Eq. 19", "10.1", "the moving average F̂ ← ρF̂ + (1 − ρ)E_B[ffᵀ]", (19,)),
    Entry("DirectPred, the official code", "10.2", "p_j = max(√(s_j/max s) + ε, 1e-4) (`boost_scale`)", (),
          ("text:boost_scale",), ("sec:10.2",)),
)

OBSERVATIONS = (
    Entry("Obs#1", "7.3", "large α_p shrinks the collapse basin at η = 0", (), (), ("obs:1",)),
    Entry("Obs#2", "7.3", "large α_p: s_j barely grows at η = 0", (), (), ("obs:2",)),
    Entry("Obs#3", "7.3", "η ties s_j to p_j (augmentation invariance)", (), (), ("obs:3",)),
    Entry("Obs#4", "7.4", "η grows the collapse basin p < p*_−", (), (), ("obs:4",)),
    Entry("Obs#5", "7.4", "η > τ²/4κ: collapse is certain", (), (), ("obs:5",)),
    Entry("Obs#6", "7.5", "α_p loosens the bound of Eq. 17", (), (), ("obs:6",)),
    Entry("Obs#7", "7.5", "η loosens Eq. 17", (), (), ("obs:7",)),
    Entry("Obs#8", "7.5", "EMA as an automatic curriculum (small τ, small goal τ/κ)", (), (), ("obs:8",)),
    Entry("Obs#9", "7.5", "a slow EMA (small β) trains slowly", (), (), ("obs:9",)),
    Entry("Obs#10", "7.5", "small τ: larger p*_−, more modes trapped", (), (), ("obs:10",)),
    Entry("Section 3.3", "7.5", "η_p > η_s, or α_p > 1, lets a symmetric Wp work without EMA (Table 5, Fig. 6)",
          (), (), ("sec:3.3", "text:Fig. 6")),
)

_EQ = re.compile(r"\bEqs?\.\s*(\d+)((?:\s*(?:-|–|,|/|and|or)\s*\d+)*)")
_NAMED = re.compile(r"\b(Theorem|Lemma|Assumption)s?\s*(\d)")
_OBS = re.compile(r"Obs\s*#\s*(\d+)((?:\s*(?:/|,|and)\s*#?\d+)*)")
_SEC = re.compile(r"(?:[Ss]ection|THEORY\.md)\s+(\d+(?:\.\d+)?)((?:\s*,\s*\d+\.\d+)*)")
_APPD = re.compile(r"\bApp(?:\.|endix)\s*D\b")


def citations(text: str) -> set[str]:
    """The keys a text cites: "eq:N" for each equation (ranges expanded), "thm:N", "lemma:N", "assump:N",
    "obs:N", "sec:X.Y", "appD"."""
    out: set[str] = set()
    for m in _EQ.finditer(text):
        nums = [int(m.group(1))]
        for sep, n in re.findall(r"(-|–|,|/|and|or)\s*(\d+)", m.group(2)):
            n = int(n)
            if sep in "-–" and 0 < n - nums[-1] < 20:
                nums += range(nums[-1] + 1, n + 1)
            else:
                nums.append(n)
        out |= {f"eq:{n}" for n in nums}
    out |= {f"{ {'Theorem': 'thm', 'Lemma': 'lemma', 'Assumption': 'assump'}[k]}:{n}" for k, n in _NAMED.findall(text)}
    for m in _OBS.finditer(text):
        out |= {f"obs:{n}" for n in [m.group(1), *re.findall(r"\d+", m.group(2))]}
    for m in _SEC.finditer(text):
        out |= {f"sec:{s}" for s in [m.group(1), *re.findall(r"\d+\.\d+", m.group(2))]}
    if _APPD.search(text):
        out.add("appD")
    return out


def _matches(entry: Entry, text: str, cited: set[str], extra: bool) -> bool:
    keys = {f"eq:{n}" for n in entry.eqs} | {k for k in entry.keys if not k.startswith("text:")}
    texts = [k[5:] for k in entry.keys if k.startswith("text:")]
    if extra:
        keys |= {k for k in entry.checks if not k.startswith(("text:", "fig:"))}
        texts += [k[5:] for k in entry.checks if k.startswith("text:")]
    return bool(keys & cited) or any(t in text for t in texts)


def docstrings() -> list[tuple[str, str]]:
    """(dotted path, docstring) of every function, class and method of the package outside SKIP."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(SKIP):
            continue
        mod = rel[:-3].replace("/", ".").removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                if ast.get_docstring(node):
                    out.append((f"{mod}.{node.name}", ast.get_docstring(node)))
                if isinstance(node, ast.ClassDef):
                    out += [(f"{mod}.{node.name}.{m.name}", ast.get_docstring(m)) for m in node.body
                            if isinstance(m, ast.FunctionDef) and ast.get_docstring(m)]
    return out


def report_rows(path: Path = REPORT) -> list[tuple[str, str, str]]:
    """(figure, claim, verdict) of each row of REPORT.md; verdict "finding" for the findings table."""
    rows, findings = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## Findings"):
            findings = True
        m = re.match(r"^\| \[(\w+)\]\([^)]*\):\s*(.*?)\s*\|(.*)\|\s*$", line)
        if m:
            cells = [c.strip() for c in m.group(3).split("|")]
            # claim | measured | theory | agrees | control: counted from the end (a cell may hold a stray "|")
            verdict = "finding" if findings else (cells[-2] if len(cells) >= 2 else "")
            rows.append((m.group(1), m.group(2), verdict))
    return rows


def test_files() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(TESTS.glob("test_*.py"))
            if p.name != "test_docs.py"}  # it cites equations only to test this page's parser


def link_id(path: str, found: dict) -> str | None:
    """The identifier under which the API reference documents the object at `path`, or None."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):  # the longest module prefix
        mod = ".".join(parts[:i])
        if api_index.is_module(mod):
            break
    else:
        return None
    top, rest = parts[i], parts[i + 1:]
    if any(p.startswith("_") for p in rest):
        return None
    for d in [mod] + sorted((d for d in found if mod.startswith(d + ".") and api_index.is_module(d)), key=len,
                            reverse=True):
        if d not in found or not api_index.public_in(d, top) or (found[d] is not None and top not in found[d]):
            continue
        if d == mod or api_index.chain(d, top)[-1] == (mod, top):
            return ".".join([d, top, *rest])
    return None


def _code(path: str, found: dict) -> tuple[bool, str]:
    short = path.removeprefix("byoldyn.")
    ident = link_id(path, found)
    return (ident is None, f"[`{short}`][{ident}]" if ident else f"`{short}`")


def _anchor(e: Entry) -> str:
    return re.sub(r"[^a-z0-9]+", "-", e.label.lower()).strip("-")


def render() -> str:
    found = api_index.directives()
    docs = [(p, d, citations(d)) for p, d in docstrings()]
    rows = [(fig, claim, verdict, citations(claim)) for fig, claim, verdict in report_rows()]
    tests = [(name, text, citations(text)) for name, text in test_files().items()]

    def checked(e: Entry) -> list[str]:
        figs = {k[4:] for k in e.checks if k.startswith("fig:")}
        return [f"[{fig}](figures/REPORT.md): {claim} (**{verdict}**)" for fig, claim, verdict, cited in rows
                if fig in figs or _matches(e, claim, cited, extra=True)]

    summary = ["| THEORY.md | section | statement | code | REPORT rows | test files |", "|---|---|---|---|---|---|"]
    details = []
    for e in EQUATIONS:
        code = sorted(_code(p, found) for p, d, cited in docs if _matches(e, d, cited, extra=False))
        report = checked(e)
        tst = [f"`{n}`" for n, text, cited in tests if _matches(e, text, cited, extra=False)]
        summary.append(f"| [{e.label}](#{_anchor(e)}) | {e.section} | {e.what} | {len(code)} | {len(report)} | "
                       f"{len(tst)} |")
        public = [c for internal, c in code if not internal]
        internal = [c for internal, c in code if internal]
        details += [f"### {e.label} {{#{_anchor(e)}}}", "", f"THEORY.md section {e.section}: {e.what}.", ""]
        details += [f"- **Implemented by**: {', '.join(public) or '(internal code only)'}"]
        if internal:
            details += [f"- **Internal**: {', '.join(internal)}"]
        if report:
            details += ["- **Checked by** [figures/REPORT.md](figures/REPORT.md):", *(f"    - {r}" for r in report)]
        else:
            details += ["- **Checked by**: the tests only"]
        details += [f"- **Tests**: {', '.join(tst) or 'none cite it'}", ""]

    obs = ["| observation | THEORY.md | claim | checked by (figures/REPORT.md) |", "|---|---|---|---|"]
    for e in OBSERVATIONS:
        report = [r.replace("|", "&#124;") for r in checked(e)]
        obs.append(f"| **{e.label}** | {e.section} | {e.what} | {'<br>'.join(report)} |")

    lines = [
        "# Theory to code",
        "",
        "Each equation and theorem of the project's mathematical spec (THEORY.md; equation numbers follow the",
        "paper, arXiv 2102.06810) beside the code whose docstring cites it, the rows of",
        "[figures/REPORT.md](figures/REPORT.md) that check it numerically (each with its negative control), and the",
        "test files that cite it. This page is generated when the site is built (`docs/gen_theory_map.py`): a new",
        "docstring citation, REPORT row or test appears here without editing it. Linked names lead to the API",
        "reference; internal ones (figures, stepper, sweep levels, private helpers) are listed apart.",
        "",
        "## Equations and theorems",
        "",
        *summary,
        "",
        *details,
        "## Observations",
        "",
        "The paper's observations on the roles of α_p, η and β (THEORY.md section 7.5, Table 4) are claims about",
        "the dynamics rather than formulas; `byoldyn reproduce` checks each.",
        "",
        *obs,
        "",
    ]
    return "\n".join(lines)


def theory_keys(text: str) -> set[str]:
    """The equations and named results THEORY.md states: numbered displays "(N)" and the "Eq. N" / "Theorem N"
    citations of its headings and bold paragraph labels."""
    keys = {f"eq:{n}" for n in re.findall(r"\((\d+)\)\s*$", text, flags=re.M)}
    for heading in re.findall(r"^(?:#+ |\*\*).*$", text, flags=re.M):
        keys |= {k for k in citations(heading) if k.startswith(("eq:", "thm:", "lemma:"))}
    keys |= {f"lemma:{n}" for n in re.findall(r"\*\*Lemma (\d)\*\*", text)}
    return keys


def covered_keys() -> set[str]:
    return {f"eq:{n}" for e in EQUATIONS for n in e.eqs} | {k for e in EQUATIONS for k in e.keys}


if __name__ == "__main__":
    print(render())
