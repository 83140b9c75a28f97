"""mkdocs hooks (named in mkdocs.yml): the pages built from the repository, and the check that the API
reference documents every public name.

- on_config: a Python-Markdown extension that fences doctest blocks (`>>>` lines and their output) as `pycon`,
  so docstring examples render as code, and keeps the star of p*_± literal; docs/directset.md joins the Theory section when it exists.
- on_files: the notebooks (rendered by mkdocs-jupyter with their committed outputs), figures/REPORT.md and
  figures/nets/RESULTS.md with their figures (the repository's files themselves, at the same relative paths, so
  their links work), the theory-to-code map (docs/gen_theory_map.py) and the CLI reference (docs/gen_cli.py).
- on_post_build: every public name of docs/api_index.PACKAGES has an anchor in the built API pages (a warning,
  so `strict: true` fails the build otherwise).
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

from markdown import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))
import api_index  # noqa: E402
import gen_cli  # noqa: E402
import gen_theory_map  # noqa: E402

log = logging.getLogger("mkdocs.hooks.byoldyn")

INCLUDED = ("figures/REPORT.md", "figures/nets/RESULTS.md")  # with the figures beside them
GENERATED = {"theory-map.md": gen_theory_map.render, "cli.md": gen_cli.render}


_STAR = re.compile(r"(?<=\w)\*_")  # p*_+, s*_−: the paper's fixed points, not emphasis (star nor underscore)


class _Docstrings(Preprocessor):
    """Markdown as the docstrings write it: each run of `>>>` / `...` lines with the output lines after them (up to
    a blank line) becomes a pycon code block, and the `*` of p*_± is a literal star (outside code)."""

    def run(self, lines):
        out, i, fenced = [], 0, False
        while i < len(lines):
            line = lines[i]
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            if fenced or not line.lstrip().startswith(">>>"):
                out.append(line if fenced else self._stars(line))
                i += 1
                continue
            indent = line[: len(line) - len(line.lstrip())]
            block = []
            while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
                block.append(lines[i][len(indent):])
                i += 1
            out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```"]
        return out

    @staticmethod
    def _stars(line: str) -> str:
        if line.startswith(("    ", "\t")) or "*" not in line:  # an indented code block, or nothing to do
            return line
        parts = line.split("`")  # the odd parts are code spans
        return "`".join(_STAR.sub(r"\\*\\_", p) if k % 2 == 0 else p for k, p in enumerate(parts))


class DocstringMarkdown(Extension):
    def extendMarkdown(self, md):  # noqa: N802 (Python-Markdown's name)
        md.preprocessors.register(_Docstrings(md), "byoldyn_docstrings", 40)  # before the fences (~25-30)


@event_priority(100)  # before mkdocstrings copies the markdown extensions for the docstrings
def on_config(config):
    config.markdown_extensions.append(DocstringMarkdown())
    if (DOCS / "directset.md").is_file():
        for section in config.nav:
            if isinstance(section, dict) and "Theory" in section:
                section["Theory"].append("directset.md")  # titled by its own heading
    return config


def _repo_file(config, rel: str) -> File:
    """The repository's own file at `rel`, served at the same path in the site (its relative links still work)."""
    return File(rel, src_dir=str(ROOT), dest_dir=config.site_dir, use_directory_urls=config.use_directory_urls)


@event_priority(100)  # before mkdocs-jupyter picks the notebooks out of the files
def on_files(files, config):
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        files.append(_repo_file(config, f"notebooks/{nb.name}"))
    for rel in INCLUDED:
        files.append(_repo_file(config, rel))
        for png in sorted((ROOT / rel).parent.glob("*.png")):
            files.append(_repo_file(config, png.relative_to(ROOT).as_posix()))
    for uri, render in GENERATED.items():
        files.append(File.generated(config, uri, content=render()))
    return files


def on_post_build(config):
    ids = set()
    for page in Path(config.site_dir, "api").rglob("*.html"):
        ids |= set(re.findall(r'\bid="(byoldyn[\w.]*)"', page.read_text(encoding="utf-8")))
    missing = []
    for pkg, name in api_index.public_names():
        links = api_index.chain(pkg, name)
        paths = {links[-1][0]} if links[-1][1] == "" else {f"{m}.{n}" for m, n in links}
        if not paths & ids:
            missing.append(f"{pkg}.{name}")
    if missing:
        log.warning("the API reference does not document these public names: %s (add them to a docs/api page)",
                    ", ".join(missing))
