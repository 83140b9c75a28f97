"""The docstring examples of the main entry points run as doctests."""

import doctest
import importlib

import pytest

MODULES = ["byoldyn.integrate", "byoldyn.sweeps.api", "byoldyn.theory", "byoldyn.predictors", "byoldyn.flows.modes"]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
