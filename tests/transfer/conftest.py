"""Fixtures shared by the transfer tests."""

import pytest

from keras_barlow.transfer.synthetic_shapes import export_tiny_encoder


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A tiny random ResNet-18 (ImageNet stem) exported with ImageNet normalisation."""
    return export_tiny_encoder(tmp_path_factory.mktemp("transfer") / "encoder")
