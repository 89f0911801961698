"""Every `>>>` example in the package runs: each module that has one is doctested here.

Examples that cannot run cheaply and deterministically are written as fenced code blocks
instead, so nothing shown as interactive output goes unchecked.
"""

import doctest
import importlib
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "keras_barlow"
WITH_EXAMPLES = sorted(
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py")
    if ">>> " in path.read_text()
)


def test_the_package_has_doctests():
    assert len(WITH_EXAMPLES) >= 8, WITH_EXAMPLES


@pytest.mark.parametrize("module_name", WITH_EXAMPLES)
def test_examples_run(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module_name} has '>>> ' text but no doctest was found"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name}"
