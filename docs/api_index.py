"""Which public names the API reference documents, read statically (no mkdocs needed).

The API pages (docs/api/*.md) document objects with mkdocstrings directives, `::: dotted.path`. A directive on a
module renders the module's public members as griffe sees them (mkdocs.yml: `filters: public`): the names in its
`__all__`, or, without `__all__`, the names it defines that do not start with an underscore. A public name of a
package (`byoldyn.__all__`, `byoldyn.sampled.__all__`, ...) is documented when a directive names it, names the
object it re-exports, or names a module on its chain of re-exports (`byoldyn.simulate` -> `byoldyn.integrate`)
that makes it public. Used by tests/test_docs.py, by docs/hooks.py (which also checks the built pages) and by the
theory-to-code map (which links only what the reference documents).
"""

from __future__ import annotations

import ast
import importlib
import re
from functools import cache
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
API_PAGES = DOCS / "api"
# the packages whose public names must all be documented
PACKAGES = ("byoldyn", "byoldyn.nets", "byoldyn.sampled", "byoldyn.sweeps")

_DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$")
_MEMBERS = re.compile(r"^\s+members:\s*(?:\[([^\]]*)\]|(false))\s*$")  # a list, or false: none


def module_file(mod: str) -> Path | None:
    """The source file of module `mod` under the repository root, or None if it is not a module."""
    base = ROOT.joinpath(*mod.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache
def _parse(mod: str) -> tuple[tuple[str, ...] | None, frozenset[str], dict[str, tuple[str, str]]]:
    """(`__all__` if a literal list, the top-level names defined, {imported name: (module, original name)})."""
    path = module_file(mod)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    all_, defined, imports = None, set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:  # like griffe, names bound by tuple unpacking (a, b = 1, 2) are not seen
                if isinstance(t, ast.Name):
                    defined.add(t.id)
                    if t.id == "__all__":
                        try:
                            all_ = tuple(ast.literal_eval(node.value))
                        except ValueError:  # computed (byoldyn.nets: sorted(_WHERE))
                            all_ = None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module
            for a in node.names:
                imports[a.asname or a.name] = (source, a.name)
    return all_, frozenset(defined), imports


def static_all(mod: str) -> tuple[str, ...] | None:
    return _parse(mod)[0]


def is_module(path: str) -> bool:
    return module_file(path) is not None


def chain(mod: str, name: str) -> list[tuple[str, str]]:
    """The re-export chain of `mod.name`: [(mod, name), ..., (defining module, name there)].

    A submodule ends the chain as (its path, ""); a name that a package loads lazily (byoldyn.nets) is
    followed through the package's name -> submodule table."""
    out = [(mod, name)]
    all_, defined, imports = _parse(mod)
    if name in defined:
        return out
    if name in imports:
        source, orig = imports[name]
        if is_module(f"{source}.{orig}"):
            return out + [(f"{source}.{orig}", "")]
        return out + chain(source, orig) if is_module(source) else out
    if is_module(f"{mod}.{name}"):
        return out + [(f"{mod}.{name}", "")]
    where = getattr(importlib.import_module(mod), "_WHERE", {})  # byoldyn.nets: name -> submodule, loaded lazily
    if name in where:
        return out + chain(f"{mod}.{where[name]}", name)
    return out


def public_in(mod: str, name: str) -> bool:
    """Whether a directive on module `mod` renders `name` (griffe's `filters: public`)."""
    all_, defined, imports = _parse(mod)
    if all_ is not None:
        return name in all_ and (name in defined or name in imports)
    return name in defined and not name.startswith("_")


def directives(pages: Path = API_PAGES) -> dict[str, tuple[str, ...] | None]:
    """{identifier: its `members: [...]` list or None} over the `::: identifier` directives of the API pages."""
    out: dict[str, tuple[str, ...] | None] = {}
    for page in sorted(pages.glob("*.md")):
        current = None
        for line in page.read_text(encoding="utf-8").splitlines():
            m = _DIRECTIVE.match(line)
            if m:
                current = m.group(1)
                out[current] = None
                continue
            m = _MEMBERS.match(line)
            if m and current:
                listed = m.group(1) or ""
                out[current] = tuple(s.strip().strip("'\"") for s in listed.split(",") if s.strip())
            elif line.strip() and not line.startswith((" ", "\t")):
                current = None
    return out


def documented_as(package: str, name: str, found: dict[str, tuple[str, ...] | None] | None = None) -> str | None:
    """The identifier under which the API reference documents `package.name`, or None."""
    found = directives() if found is None else found
    links = chain(package, name)
    if links[-1][1] == "":  # a submodule: its own directive
        sub = links[-1][0]
        return sub if sub in found else None
    for mod, local in links:
        if f"{mod}.{local}" in found:
            return f"{mod}.{local}"
    for mod, local in reversed(links):  # the defining module first: its page is where the object lives
        if mod in found and public_in(mod, local) and (found[mod] is None or local in found[mod]):
            return f"{mod}.{local}"
    return None


def public_names() -> list[tuple[str, str]]:
    """(package, name) for every public name of PACKAGES (byoldyn.sweeps has an `__all__`)."""
    out = []
    for pkg in PACKAGES:
        names = static_all(pkg)
        if names is None:
            names = tuple(importlib.import_module(pkg).__all__)  # computed; byoldyn.nets needs no flax for it
        out += [(pkg, n) for n in names]
    return out


def undocumented() -> list[str]:
    found = directives()
    return [f"{pkg}.{name}" for pkg, name in public_names() if documented_as(pkg, name, found) is None]


if __name__ == "__main__":
    missing = undocumented()
    print("\n".join(missing) if missing else f"all {len(public_names())} public names are documented")
