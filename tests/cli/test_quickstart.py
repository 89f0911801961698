"""The quick start's command line and a smoke run on MNIST-5k (digits: tests/evaluation)."""

import json
import os

import pytest

from keras_barlow.cli import quickstart


def test_dataset_defaults():
    digits = quickstart.parse_args([])
    assert (digits.dataset, digits.image_size, digits.batch_size, digits.epochs) == ("digits", 16, 256, 40)
    assert digits.warmup_epochs is None and digits.weight_decay is None  # the paper's
    mnist = quickstart.parse_args(["--data", "mnist5k"])
    assert (mnist.image_size, mnist.batch_size, mnist.epochs) == (16, 128, quickstart.MNIST5K_EPOCHS)
    assert (mnist.warmup_epochs, mnist.weight_decay) == (2.0, 1e-6)
    assert quickstart.parse_args(["--dataset", "mnist5k", "--epochs", "3"]).epochs == 3


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_mnist5k_smoke(tmp_path):
    output = tmp_path / "qs"
    metrics = quickstart.main(["--data", "mnist5k", "--smoke", "--output-dir", str(output), "--verbose", "0"])
    assert set(metrics["evaluation"]) == {"barlow_twins", "random_init", "raw_pixels"}
    assert metrics["settings"]["preset"] == "mnist5k"
    card = json.loads((output / "encoder" / "model_card.json").read_text())
    assert "--data mnist5k" in json.dumps(card)
    assert os.path.isfile(output / "cross_correlation.png")
