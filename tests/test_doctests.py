"""The docstring examples of the main entry points run as doctests."""

import doctest
import importlib

import pytest

MODULES = ["byoldyn.integrate", "byoldyn.batch", "byoldyn.sweeps.api", "byoldyn.theory", "byoldyn.predictors",
           "byoldyn.flows.modes", "byoldyn.flows.matrix", "byoldyn.phase", "byoldyn.nets.trainer",
           "byoldyn.reset"]
#: the optional packages a module needs (the `nets` extra); its examples are skipped without them
NEEDS = {"byoldyn.nets.trainer": ("flax", "optax", "orbax.checkpoint")}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    for package in NEEDS.get(name, ()):
        pytest.importorskip(package)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
