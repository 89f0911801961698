"""Shared test setup and fixtures. The Keras backend comes from KERAS_BACKEND (default
tensorflow); tests marked `tensorflow_only` are skipped in the JAX pass of the suite.

Fixtures for every test folder: `tiny_encoder` and `tiny_model` (the builders of
`helpers.py`), and `encoder_dir`, one tiny encoder export read by the transfer and recipe
tests.
"""

import atexit
import os
import shutil
import sys
import tempfile

# `from helpers import ...` (and `from conftest import run_python`) work from every test
# folder: pytest's importlib mode does not put test folders on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# One JAX compilation cache for the session, inherited by the processes tests start: the
# kill-and-resume tests run one smoke program in three processes, and a warm cache cuts each
# later one from ~37 s to ~16 s (XLA:CPU compilation). A cached executable is the one a fresh
# compilation builds, so no result changes.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _jax_cache = tempfile.mkdtemp(prefix="keras_barlow_tests_jax_cache_")
    atexit.register(shutil.rmtree, _jax_cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _jax_cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import keras_barlow  # noqa: F401  (first: it switches oneDNN on before TensorFlow is imported)

import keras  # isort: skip
import helpers
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


@pytest.fixture
def tiny_encoder():
    """`helpers.tiny_encoder`: the small Conv → BN → ReLU encoder most tests train."""
    return helpers.tiny_encoder


@pytest.fixture
def tiny_model():
    """`helpers.tiny_model`: a compiled `BarlowTwins` on a tiny encoder."""
    return helpers.tiny_model


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory):
    """A tiny random ResNet-18 (ImageNet stem, width 4) exported with ImageNet normalisation
    (`keras_barlow.transfer.synthetic_shapes.export_tiny_encoder`), written once; read it only."""
    from keras_barlow.transfer.synthetic_shapes import export_tiny_encoder

    return export_tiny_encoder(tmp_path_factory.mktemp("transfer") / "encoder")
