"""The package's structure: no module imports another module's underscore names, and the
import graph of `byoldyn` (every import statement, at module level or inside a function) has no cycle
through distinct modules other than a package and its own submodules."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "byoldyn"


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = pkg[: len(pkg) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports():
    """(importer, imported module, names) for every `from byoldyn... import` and `import byoldyn...`."""
    mods = _modules()
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, path, node)
                if target.split(".")[0] != "byoldyn":
                    continue
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{target}.{alias.name}"
                    yield name, (sub if sub in mods else target), alias.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "byoldyn":
                        yield name, alias.name, None


def test_no_underscore_names_across_modules():
    bad = [f"{a} imports {n} from {b}" for a, b, n in _imports()
           if n and n.startswith("_") and not n.startswith("__") and a != b]
    assert not bad, "\n".join(bad)


def test_import_graph_has_no_cycle():
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for a, b, _ in _imports():
        # a package's __init__ re-exports its submodules and they import siblings through it: not a cycle
        if b in mods and a != b and not b.startswith(a + ".") and not a.startswith(b + "."):
            graph[a].add(b)
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


#: the core: the model, its flows and solvers, the theory; above it the levels, sweeps, figures and the CLI
CORE = ("model", "predictors", "observables", "stepper", "solution", "validate", "errors", "io", "flows",
        "integrate", "batch", "phase", "theory", "sweep_levels")
UPPER = ("figures", "cli", "sampled", "nets", "sweeps", "launch", "report")


def test_the_core_never_imports_the_levels_the_cli_or_the_figures():
    bad = [f"{a} imports {b}" for a, b, _ in _imports()
           if a.split(".")[1:2] and a.split(".")[1] in CORE and b.split(".")[1:2] and b.split(".")[1] in UPPER]
    assert not bad, "\n".join(bad)


def _private_uses(path: Path):
    """`from byoldyn... import _x` and attribute reads `<byoldyn module>._x` in a test or benchmark file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = set()  # local names bound to byoldyn modules or objects imported from them
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "byoldyn":
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    yield f"{path.name}:{node.lineno} imports {a.name} from {node.module}"
                aliases.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            aliases |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] == "byoldyn"}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in aliases):
            yield f"{path.name}:{node.lineno} reads {node.value.id}.{node.attr}"


def test_tests_and_benchmarks_use_no_private_names():
    root = ROOT.parent
    bad = [u for d in ("tests", "benchmarks") for p in sorted((root / d).glob("*.py")) for u in _private_uses(p)]
    assert not bad, "\n".join(bad)
