"""The segmentation recipe fine-tunes on generated shapes and improves the mean IoU."""

import pytest
import transfer_segmentation


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
