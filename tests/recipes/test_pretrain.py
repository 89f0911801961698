"""Every pretraining recipe's `--smoke` mode runs end to end (tiny data and network, 2 steps), in
this process on the backend of the current pass: the TensorFlow pass runs all three recipes,
the JAX pass the TPU recipe (its default backend). The recipes are importable from the tests
(`pythonpath` in pyproject.toml)."""

import csv
import json
import os

import cifar10_resnet18
import imagenet_resnet50_tpu
import keras
import pretrain
import pytest

from keras_barlow.cli import pretrain_arguments as cli

BACKEND = keras.backend.backend()


@pytest.fixture(autouse=True)
def _float32_afterwards():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _check_run(out, summary, *, backbone, exported=False):
    assert summary["backend"] == BACKEND and summary["optimizer_steps"] == 2
    assert (
        summary["final_loss"] is not None and summary["final_loss"] == summary["final_loss"]
    )  # finite, not NaN
    assert summary["backbone"] == backbone
    with open(out / "summary.json") as f:
        assert json.load(f)["optimizer_steps"] == 2
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and float(rows[0]["loss"]) == pytest.approx(summary["final_loss"], rel=1e-6)
    assert os.listdir(out / "checkpoints") == ["epoch-0001.keras"]
    assert not (out / "backup").exists()  # the fault-tolerance backup is deleted after a completed run
    if exported:
        card = json.loads((out / "encoder" / "model_card.json").read_text())
        assert "digits" in json.dumps(card["training"]) and card["architecture"]
        assert (out / "encoder" / "encoder.keras").exists() and (out / "encoder" / "saved_model").is_dir()
    else:  # the smoke runs of the paper recipes skip the export (pretrain.py's checks it)
        assert not (out / "encoder").exists()
    if BACKEND == "tensorflow":
        assert any(
            name.startswith("events.out.tfevents") for _, _, files in os.walk(out / "logs") for name in files
        )


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_pretrain_smoke(tmp_path):
    out = tmp_path / "pretrain"
    summary = pretrain.main(["--smoke", "--output-dir", str(out), "--verbose", "0"])
    _check_run(out, summary, backbone="resnet18", exported=True)
    assert summary["hardware"] == "default" and summary["precision"] == "float32"
    assert summary["fused_batchnorm"] == summary["pointwise_matmul"] == "auto"


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_cifar10_resnet18_smoke_with_linear_evaluation(tmp_path):
    out = tmp_path / "cifar"
    summary = cifar10_resnet18.main(
        ["--smoke", "--output-dir", str(out), "--verbose", "0", "--fused-batchnorm", "on"]
        + ["--pointwise-matmul", "off"]
    )
    _check_run(out, summary, backbone="resnet18")
    assert (summary["fused_batchnorm"], summary["pointwise_matmul"]) == ("on", "off")
    evaluation = summary["linear_eval"]
    assert 0.0 <= evaluation["top1"] <= evaluation["top5"] <= 1.0 and evaluation["epochs"] == 1


@pytest.mark.slow
def test_imagenet_resnet50_tpu_smoke(tmp_path):
    out = tmp_path / "imagenet"
    summary = imagenet_resnet50_tpu.main(
        ["--smoke", "--backend", BACKEND, "--output-dir", str(out), "--verbose", "0"]
    )
    _check_run(out, summary, backbone="resnet18")


def test_paper_settings_are_the_recipe_defaults():
    args = cli.parse([], cli.build_parser(**imagenet_resnet50_tpu.PAPER))
    assert (args.epochs, args.batch_size, args.projector, args.lambd) == (
        1000,
        2048,
        "8192,8192,8192",
        0.0051,
    )
    assert (args.learning_rate, args.bias_learning_rate, args.backbone, args.backend) == (
        0.2,
        0.0048,
        "resnet50",
        "jax",
    )
    smoke = cli.parse(
        ["--smoke", "--epochs", "3"],
        cli.build_parser(**imagenet_resnet50_tpu.PAPER),
        smoke={**cli.SMOKE, **imagenet_resnet50_tpu.SMOKE},
    )
    assert (smoke.dataset, smoke.steps_per_epoch, smoke.epochs, smoke.projector) == (
        "digits",
        2,
        3,
        "32,32,32",
    )
    cifar = cli.parse([], cli.build_parser(**cifar10_resnet18.SOLO_LEARN))
    assert (cifar.epochs, cifar.batch_size, cifar.small_images, cifar.scale_loss) == (1000, 256, True, 0.1)
