"""The segmentation recipe fine-tunes on generated shapes and improves the mean IoU."""

import os
import sys

import pytest

from keras_barlow.testing import export_tiny_encoder

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "recipes")
)

import transfer_segmentation


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A tiny random ResNet-18 (ImageNet stem) exported with ImageNet normalisation."""
    return export_tiny_encoder(tmp_path_factory.mktemp("transfer") / "encoder")


@pytest.mark.slow
@pytest.mark.tensorflow_only
@pytest.mark.parametrize("library", ["keras_cv", "keras_hub"])
def test_segmentation_recipe_fine_tunes_on_shapes(encoder_dir, library, tmp_path):
    metrics = transfer_segmentation.main(
        [
            "--encoder",
            encoder_dir,
            "--smoke",
            "--library",
            library,
            "--epochs",
            "4",
            "--output-dir",
            str(tmp_path),
            "--verbose",
            "0",
        ]
    )
    assert metrics["after"]["mean_iou"] > metrics["before"]["mean_iou"] + 0.15, metrics
    assert metrics["loss"][-1] < metrics["loss"][0]
