"""The detection recipe fine-tunes on generated shapes and improves the mAP."""

import pytest
import transfer_detection


@pytest.mark.slow
@pytest.mark.tensorflow_only
@pytest.mark.parametrize("library", ["keras_cv", "keras_hub"])
def test_detection_recipe_fine_tunes_on_shapes(encoder_dir, library, tmp_path):
    metrics = transfer_detection.main(
        [
            "--encoder",
            encoder_dir,
            "--smoke",
            "--library",
            library,
            "--epochs",
            "6",
            "--output-dir",
            str(tmp_path),
            "--verbose",
            "0",
        ]
    )
    before, after = metrics["before"], metrics["after"]
    assert before["MaP"] < 0.01  # untrained heads: (almost) nothing above the threshold
    assert after["MaP"] > before["MaP"] + 0.03 and after["MaP@[IoU=50]"] > 0.1, metrics
    assert metrics["loss"][-1] < metrics["loss"][0]
    assert (tmp_path / "metrics.json").exists()
