"""Shared test setup. The Keras backend comes from KERAS_BACKEND (default tensorflow);
tests marked `tensorflow_only` are skipped in the JAX pass of the suite."""

import os
import sys

# `from helpers import ...` (and `from conftest import run_python`) work from every test
# folder: pytest's importlib mode does not put test folders on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_barlow  # noqa: F401  (first: it switches oneDNN on before TensorFlow is imported)

import keras  # isort: skip
import pytest
from helpers import REPO, run_python  # noqa: F401


def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"needs the TensorFlow backend (running on {keras.backend.backend()})")
    for item in items:
        if "tensorflow_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)  # gc.collect() after every test cost ~1.5 s each
