"""Every `>>>` example of the benchmarking harness runs (the package's own are run by
tests/test_doctests.py)."""

import doctest
import importlib
import pathlib

import pytest

HARNESS = pathlib.Path(__file__).resolve().parents[3] / "recipes" / "benchmarking"
WITH_EXAMPLES = sorted(f"benchmarking.{p.stem}" for p in HARNESS.glob("*.py") if ">>> " in p.read_text())


def test_the_harness_has_doctests():
    assert len(WITH_EXAMPLES) >= 6, WITH_EXAMPLES


@pytest.mark.parametrize("module_name", WITH_EXAMPLES)
def test_examples_run(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module_name} has '>>> ' text but no doctest was found"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name}"
