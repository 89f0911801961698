"""The quick start's command line and a smoke run on MNIST-5k (digits: tests/evaluation)."""

import json
import os

import pytest

from keras_barlow.augment import PRESETS
from keras_barlow.cli import quickstart


def test_dataset_defaults():
    digits = quickstart.parse_args([])
    assert (digits.dataset, digits.image_size, digits.batch_size, digits.epochs) == ("digits", 16, 256, 40)
    assert digits.warmup_epochs is None and digits.weight_decay is None  # the paper's
    assert digits.grayscale is False
    mnist = quickstart.parse_args(["--data", "mnist5k"])
    assert (mnist.image_size, mnist.batch_size, mnist.epochs) == (16, 128, quickstart.MNIST5K_EPOCHS)
    assert (mnist.warmup_epochs, mnist.weight_decay, mnist.grayscale) == (2.0, 1e-6, True)
    assert quickstart.parse_args(["--dataset", "mnist5k", "--epochs", "3"]).epochs == 3
    assert quickstart.parse_args(["--data", "mnist5k", "--no-grayscale"]).grayscale is False
    assert quickstart.parse_args(["--grayscale"]).grayscale is True


def test_preset_choices_are_the_library_presets(capsys):
    (preset,) = [a for a in quickstart.build_parser()._actions if "--preset" in a.option_strings]
    assert list(preset.choices) == sorted(PRESETS)
    assert quickstart.parse_args(["--preset", "mnist5k"]).preset == "mnist5k"
    with pytest.raises(SystemExit):
        quickstart.parse_args(["--preset", "cifar10"])
    assert "invalid choice: 'cifar10'" in capsys.readouterr().err


def test_smoke_settings_and_help_text():
    smoke = quickstart.parse_args(["--smoke", "--data", "mnist5k"])
    assert (smoke.epochs, smoke.width, smoke.image_size, smoke.eval_seeds, smoke.grayscale) == (
        2,
        4,
        8,
        2,
        True,
    )
    assert "python recipes/quickstart.py --smoke" in quickstart.describe("python recipes/quickstart.py")
    assert "keras-barlow quickstart --data mnist5k" in quickstart.build_parser().format_help()


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_mnist5k_smoke(tmp_path):
    output = tmp_path / "qs"
    metrics = quickstart.main(["--data", "mnist5k", "--smoke", "--output-dir", str(output), "--verbose", "0"])
    assert set(metrics["evaluation"]) == {"barlow_twins", "random_init", "raw_pixels"}
    assert metrics["settings"]["preset"] == "mnist5k" and metrics["settings"]["grayscale"] is True
    card = json.loads((output / "encoder" / "model_card.json").read_text())
    assert card["recipe"].startswith("keras-barlow quickstart --data mnist5k --smoke")
    assert card["architecture"]["config"]["grayscale"] is True and card["input"]["image_shape"][-1] == 3
    assert os.path.isfile(output / "cross_correlation.png")
    assert "## Evaluation on the mnist5k test split" in (output / "encoder" / "README.md").read_text()
