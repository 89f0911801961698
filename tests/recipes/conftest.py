"""Fixtures shared by the recipe tests; `recipes/` is importable from them."""

import os
import sys

import pytest

from keras_barlow.transfer.synthetic_shapes import export_tiny_encoder

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "recipes")
)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A tiny random ResNet-18 (ImageNet stem) exported with ImageNet normalisation."""
    return export_tiny_encoder(tmp_path_factory.mktemp("transfer") / "encoder")
