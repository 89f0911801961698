"""The quick start's command line, a smoke run on MNIST-5k (digits: tests/evaluation), and
digits under each mixed-precision policy against float32."""

import json
import os

import keras
import numpy as np
import pytest

import keras_barlow
from keras_barlow.augment import PRESETS
from keras_barlow.cli import quickstart

# Digits at a small size for the precision comparison: 100 steps (10 epochs of 128 pairs at 16 px,
# ResNet-18 width 4, projector 128-128); monitors off, 2 few-shot draws.
SMALL_DIGITS = [
    *("--epochs", "10", "--width", "4", "--image-size", "16", "--projector", "128,128"),
    *("--batch-size", "128", "--eval-seeds", "2", "--knn-every", "0", "--linear-every", "0"),
    *("--verbose", "0"),
]
# |mixed − float32| allowed for the Barlow Twins encoder's linear top-1 and kNN-20 top-1 at
# SMALL_DIGITS. After 10 epochs runs in different precisions part like runs from different
# seeds: float32 at seeds 0 and 1 differ by 0.033 (linear) and 0.033 (kNN-20); mixed_bfloat16
# ended 0.022 / 0.009 and mixed_float16 0.009 / 0.020 from float32 (docs/training-at-scale.md).
PROBE_TOLERANCE = 0.05


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


def test_precision_flag():
    assert quickstart.parse_args([]).precision == "float32"  # the shipped runs' behaviour
    for policy in ("float32", "mixed_bfloat16", "mixed_float16"):
        assert quickstart.parse_args(["--precision", policy]).precision == policy
    with pytest.raises(SystemExit):
        quickstart.parse_args(["--precision", "float16"])  # not a mixed policy: no float32 master weights
    assert "--precision mixed_bfloat16" in quickstart.describe()


def test_precision_is_restored_when_the_run_fails():
    """The global dtype policy is the caller's again after a run, also one that fails after
    setting `--precision` (here at the projector's size)."""
    keras.config.set_dtype_policy("float32")
    with pytest.raises(ValueError, match="projector"):
        quickstart.main(
            ["--precision", "mixed_bfloat16", "--projector", "0", "--width", "4", "--verbose", "0"]
        )
    assert keras.config.dtype_policy().name == "float32"


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


def _layers(layer):
    yield layer
    for sublayer in getattr(layer, "layers", None) or ():
        yield from _layers(sublayer)


@pytest.fixture(scope="module")
def float32_small_digits(tmp_path_factory):
    output = tmp_path_factory.mktemp("qs") / "float32"
    return quickstart.main([*SMALL_DIGITS, "--output-dir", str(output)])


@pytest.mark.slow
@pytest.mark.tensorflow_only  # JAX on a CPU is several times slower (docs/performance.md)
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_quick_start_ends_near_float32(policy, float32_small_digits, tmp_path):
    """The same run under a mixed policy: its probes within PROBE_TOLERANCE of float32's, the
    baselines evaluated identically (float32, same random init), float16 steps skipped by the
    loss scaler only at the start, the export float32 and its card naming the training policy,
    and the global policy float32 again afterwards. mixed_float16 is slow on CPUs (TensorFlow's
    float16 filter gradient): about 5 min here, against 1 min for the others."""
    reference = float32_small_digits
    output = tmp_path / policy
    metrics = quickstart.main([*SMALL_DIGITS, "--precision", policy, "--output-dir", str(output)])
    assert keras.config.dtype_policy().name == "float32"
    assert metrics["settings"]["precision"] == policy and reference["settings"]["precision"] == "float32"
    assert np.isfinite(metrics["final_loss"])

    ours, theirs = metrics["evaluation"]["barlow_twins"], reference["evaluation"]["barlow_twins"]
    for key in ("linear_top1", "knn20_top1"):
        assert abs(ours[key] - theirs[key]) <= PROBE_TOLERANCE, (key, ours[key], theirs[key])
    for baseline in ("random_init", "raw_pixels"):  # evaluated in float32 under every policy
        assert metrics["evaluation"][baseline] == reference["evaluation"][baseline], baseline

    steps = reference["optimizer_steps"]
    if policy == "mixed_float16":  # the first steps' scaled gradients overflow float16: skipped
        assert steps - 10 <= metrics["optimizer_steps"] < steps
        assert metrics["loss_scale"] < 2.0**15  # Keras' initial scale, halved per skipped step
    else:
        assert metrics["optimizer_steps"] == steps and "loss_scale" not in metrics

    export = output / "encoder"
    card = json.loads((export / "model_card.json").read_text())
    assert card["architecture"]["dtype_policy"] == {
        "trained": policy,
        "exported": "float32",
        "compute_dtype": "float32",
    }
    assert f"under the `{policy}` dtype policy" in (export / "README.md").read_text()
    encoder = keras_barlow.load_encoder(export)
    assert {layer.compute_dtype for layer in _layers(encoder)} == {"float32"}
    features = encoder(np.zeros((2, 16, 16, 3), "float32"))
    assert keras.backend.standardize_dtype(features.dtype) == "float32"
