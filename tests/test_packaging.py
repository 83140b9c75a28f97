"""The package as published: one version (pyproject.toml, read back through the metadata), the `py.typed`
marker shipped, and a citation file that agrees with both."""

import importlib.metadata
from pathlib import Path

import pytest

import byoldyn

ROOT = Path(__file__).resolve().parents[1]


def test_one_version():
    v = importlib.metadata.version("byoldyn")
    assert byoldyn.__version__ == v
    cff = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert f'version: "{v}"' in cff


def test_typed_marker_is_shipped():
    assert (Path(byoldyn.__file__).parent / "py.typed").is_file()
    assert 'byoldyn = ["py.typed"]' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_cli_version_is_the_package_version(capsys):
    from byoldyn.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"], devices=False)
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"byoldyn {byoldyn.__version__}"
