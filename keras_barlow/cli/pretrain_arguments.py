"""The command line of `keras-barlow pretrain` and the pretraining recipes: flags checked as
they are parsed, so that a bad value (`--projector abc`, `--epochs 0`, a negative size) is an
argparse error before any data or model is built; the `--smoke` settings; `parse`.
"""

import argparse
import math
import os

from keras_barlow.augment.config import PRESETS

BACKBONE_DEPTHS = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101, "resnet152": 152}
SMOKE = dict(
    dataset="digits",
    preset=None,
    backbone="resnet18",
    width=4,
    small_images=True,
    image_size=16,
    projector="32,32",
    batch_size=16,
    epochs=1,
    steps_per_epoch=2,
    backup_every=1,
    checkpoint_every=1,
    # 2 steps: tracing would cost more than running (the core tests cover the compiled step).
    run_eagerly=True,
)


def positive_int(text):
    """argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer (1 or more)")
    return value


def non_negative_float(text):
    """argparse type: a finite float ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number ≥ 0")
    return value


def positive_float(text):
    """argparse type: a finite float > 0."""
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def projector_sizes(text):
    """argparse type: comma-separated positive layer sizes; returns `text` (see `parse_projector`)."""
    parse_projector(text)
    return text


def parse_projector(text):
    """`"2048,2048,2048"` → `[2048, 2048, 2048]`; raises `argparse.ArgumentTypeError` otherwise."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of positive layer sizes (e.g. 2048,2048,2048)"
        )
    return sizes


def build_parser(description=None, **defaults):
    """The pretraining arguments in a new parser.

    Args:
        description: the help text (default: none).
        **defaults: the recipe's defaults, replacing these (e.g. the paper's settings).

    Returns:
        An `argparse.ArgumentParser`.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return add_arguments(parser, **defaults)


def add_arguments(parser, **defaults):
    """Adds the pretraining arguments to `parser` (a new parser or a subcommand's).

    Args:
        parser: an `argparse.ArgumentParser`.
        **defaults: the recipe's defaults, replacing these.

    Returns:
        `parser`.
    """
    add = parser.add_argument
    add(
        "--dataset",
        default="cifar10",
        help="'digits', a TFDS name (e.g. cifar10, imagenet2012) or an image folder",
    )
    add("--split", default="train", help="dataset split (TFDS / digits)")
    add("--data-dir", default=None, help="TFDS data directory (local or gs://)")
    add(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help="augmentation preset (default: from --dataset: digits, mnist5k, cifar for cifar*, "
        "else imagenet)",
    )
    add("--image-size", type=positive_int, default=32)
    add("--backbone", default="resnet18", choices=sorted(BACKBONE_DEPTHS))
    add("--width", type=positive_int, default=64, help="filters of the first ResNet stage (64 = standard)")
    add("--small-images", action="store_true", help="CIFAR-style ResNet stem (3×3 conv, no max-pool)")
    add(
        "--projector",
        type=projector_sizes,
        default="2048,2048,2048",
        help="projector layer sizes (paper: 8192,8192,8192)",
    )
    add("--lambd", type=non_negative_float, default=0.0051, help="weight of the off-diagonal term")
    add("--scale-loss", type=positive_float, default=1.0)
    add("--epochs", type=positive_int, default=100)
    add("--batch-size", type=positive_int, default=256, help="global batch size (all replicas together)")
    add(
        "--steps-per-epoch",
        type=positive_int,
        default=None,
        help="default: the dataset's length; more than that reads it again, freshly shuffled",
    )
    add(
        "--learning-rate",
        type=positive_float,
        default=0.2,
        help="LARS learning rate of the weights per 256 images",
    )
    add(
        "--bias-learning-rate",
        type=non_negative_float,
        default=0.0048,
        help="of biases and batch-norm parameters, per 256",
    )
    add("--weight-decay", type=non_negative_float, default=1e-6)
    add("--eta", type=positive_float, default=1e-3, help="LARS trust coefficient")
    add("--warmup-epochs", type=non_negative_float, default=10)
    add("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"), choices=["tensorflow", "jax"])
    add("--hardware", default="auto", choices=["auto", "tpu", "gpu", "multiworker", "cpu"])
    add(
        "--tpu-address",
        default=None,
        help="TensorFlow TPU name or grpc:// address (default: from the environment)",
    )
    add(
        "--precision",
        default="auto",
        choices=["auto", "float32", "mixed_bfloat16", "mixed_float16"],
        help="auto: mixed_bfloat16 on TPUs, else float32",
    )
    add(
        "--fused-batchnorm",
        default="auto",
        choices=["auto", "on", "off"],
        help="the encoder's batch norms through TensorFlow's fused kernel "
        "(BarlowTwins(fused_batchnorm=...)); "
        "auto, on: in every precision; off: Keras' own layer (repeats keras-barlow 0.1.0's "
        "float32 results to the last digit)",
    )
    add(
        "--pointwise-matmul",
        default="auto",
        choices=["auto", "on", "off"],
        help="the encoder's pointwise convolutions (1x1 kernel, stride 1) as matrix products "
        "(BarlowTwins(pointwise_matmul=...)); auto: in bfloat16 on a TensorFlow without GPU; "
        "on: always; off: never",
    )
    add(
        "--steps-per-execution",
        type=positive_int,
        default=1,
        help="steps per compiled call (JAX, or one TF device; "
        "more than 1 fails under Mirrored strategies with Keras 3.15)",
    )
    add(
        "--run-eagerly",
        action="store_true",
        help="no compiled step (debugging; the smoke runs use it for speed)",
    )
    add("--seed", type=int, default=0)
    add("--output-dir", default="runs/pretrain")
    add(
        "--backup-every", type=positive_int, default=None, help="back up every N steps (default: every epoch)"
    )
    add(
        "--checkpoint-every",
        type=positive_int,
        default=10,
        help="whole-model .keras checkpoint every N epochs",
    )
    add("--keep-checkpoints", type=positive_int, default=None, help="newest checkpoints kept (default: all)")
    add("--no-export", action="store_true", help="skip exporting the encoder at the end")
    add(
        "--retrain",
        action="store_true",
        help="train again from step 0: the earlier run's files in --output-dir (finished or not) "
        "are first moved to OUTPUT_DIR/previous-runs/TIME/, never deleted",
    )
    add(
        "--verbose",
        type=int,
        default=1,
        choices=[0, 1, 2],
        help="Keras progress: 1 bar, 2 one line per epoch",
    )
    add("--smoke", action="store_true", help="tiny data and network, 2 steps: checks the whole pipeline")
    parser.set_defaults(**defaults)
    return parser


def parse(argv=None, parser=None, smoke=None):
    """Parses `argv`; with `--smoke`, `smoke` (default `SMOKE`) replaces the defaults, and
    options given explicitly still win."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**(SMOKE if smoke is None else smoke))
        args = parser.parse_args(argv)
    return args
