"""The transfer recipes' shared command line and fine-tuning loop.

`recipes/transfer_detection.py` and `recipes/transfer_segmentation.py` add their task's
arguments to `transfer_parser(...)`, build a task model, and hand it to `fine_tune_and_report`,
which evaluates before and after training and writes `metrics.json`.
"""

import argparse
import os
import sys
import time

from keras_barlow._io import write_json

LIBRARY_CHOICES = ("keras_cv", "keras_hub")


def transfer_parser(description, *, data, data_help, image_size, epochs, output_dir, freeze_help, smoke_help):
    """The arguments both transfer recipes take.

    Args:
        description: the recipe's help text (its docstring).
        data: default `--data`; `data_help` its help.
        image_size, epochs, output_dir: the recipe's defaults.
        freeze_help: help of `--freeze-encoder` (what still trains).
        smoke_help: help of `--smoke`.

    Returns:
        An `argparse.ArgumentParser`; the recipe adds its own arguments.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add(
        "--encoder", required=True, help="export directory of the pretrained encoder (model_card.json inside)"
    )
    add("--data", default=data, help=data_help)
    add("--data-dir", default=None, help="TFDS data directory")
    add("--train-split", default="train")
    add("--eval-split", default="test")
    add("--library", choices=LIBRARY_CHOICES, default="keras_cv")
    add("--image-size", type=int, default=image_size, help="square input size, a multiple of 32")
    add("--freeze-encoder", action="store_true", help=freeze_help)
    add("--epochs", type=int, default=epochs)
    add("--batch-size", type=int, default=16)
    add("--learning-rate", type=float, default=1e-4)
    add("--train-images", type=int, default=None, help="limit the training set (default: all)")
    add("--eval-images", type=int, default=500, help="images used for the evaluation")
    add("--seed", type=int, default=0)
    add("--output-dir", default=output_dir)
    add("--verbose", type=int, default=2)
    add("--smoke", action="store_true", help=smoke_help)
    return parser


def parse_transfer_args(parser, argv, *, smoke_epochs):
    """Parses `argv`; `--smoke` switches to generated shapes at 64 px on 48 images.

    Args:
        parser: from `transfer_parser`.
        argv: the arguments (`None`: `sys.argv[1:]`).
        smoke_epochs: epochs of a smoke run unless `--epochs` is given.

    Returns:
        The `argparse.Namespace`.
    """
    args = parser.parse_args(argv)
    if args.smoke:
        args.data, args.image_size, args.batch_size = "shapes", 64, 8
        args.train_images, args.eval_images = args.train_images or 48, min(args.eval_images, 24)
        args.learning_rate = 1e-3
        if "--epochs" not in (argv if argv is not None else sys.argv[1:]):
            args.epochs = smoke_epochs
    if args.image_size % 32:
        parser.error(f"--image-size must be a multiple of 32, got {args.image_size}")
    return args


def fine_tune_and_report(model, train, evaluate, args, *, title, printed, details=None):
    """Evaluates, fine-tunes, evaluates again and writes `metrics.json` to `args.output_dir`.

    Args:
        model: a compiled task model.
        train: its training data set.
        evaluate: `() -> dict of floats`, the task's metrics.
        args: the parsed recipe arguments.
        title: what is trained, for the first printed line (e.g. `"retinanet (keras_cv)"`).
        printed: the keys of `evaluate()`'s dict printed before and after (the first one
            also before training).
        details: more entries for `metrics.json`.

    Returns:
        The metrics dict: the run's settings, `train_seconds`, `loss` per epoch, `before`
        and `after`.
    """
    before = evaluate()
    print(f"{title} on {args.data}: {printed[0]} before fine-tuning {before[printed[0]]:.4f}", flush=True)
    start = time.time()
    history = model.fit(train, epochs=args.epochs, verbose=args.verbose)
    seconds = time.time() - start
    after = evaluate()
    metrics = {
        "data": args.data,
        "library": args.library,
        **(details or {}),
        "encoder": args.encoder,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "train_seconds": round(seconds, 1),
        "loss": [float(v) for v in history.history["loss"]],
        "before": before,
        "after": after,
    }
    changes = ", ".join(f"{key} {before[key]:.4f} -> {after[key]:.4f}" for key in printed)
    print(f"{changes} ({seconds:.0f} s)", flush=True)
    os.makedirs(args.output_dir, exist_ok=True)
    write_json(os.path.join(args.output_dir, "metrics.json"), metrics)
    return metrics
