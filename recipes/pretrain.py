"""Barlow Twins pretraining: any dataset, backbone, backend and hardware, resumable.

    python recipes/pretrain.py --dataset cifar10 --backbone resnet18 --small-images \\
        --image-size 32 --epochs 1000 --batch-size 256 --output-dir runs/cifar10

Writes to `--output-dir`: `history.csv` (one row per epoch), `logs/` (TensorBoard),
`checkpoints/epoch-NNNN.keras` (whole model with optimizer state, every
`--checkpoint-every` epochs), `backup/` (the fault-tolerance backup, deleted at the end),
`encoder/` (the exported encoder: `.keras`, SavedModel, model card) and `summary.json`.
Run the same command again after a crash, a pre-emption or a `kill -9`: it resumes from
the newest backup (weights, optimizer state and step; see README, "Fault tolerance").

`--backend jax` selects Keras' JAX backend (it must be chosen before Keras is imported,
which this script does). `--hardware` picks the devices (`keras_barlow.distribute`):
`auto` takes a TPU, else a multi-worker cluster named by `TF_CONFIG` (TensorFlow) or the
`KERAS_DISTRIBUTION_*` variables (JAX), else all GPUs, else the CPU. `--batch-size` is the
*global* batch, split over all replicas.

`--smoke` runs the whole pipeline on scikit-learn's digits with a tiny network for 2 steps
(CI runs it on every change). The arguments and the run live in `keras_barlow.cli.pretrain`.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout


def choose_backend(argv, default=None):
    """Sets KERAS_BACKEND from `--backend` before anything imports Keras.

    `keras_barlow` imports Keras, which fixes its backend on import, so the recipes read
    `--backend` (and nothing else) before importing the library. `default` is the recipe's
    default backend (else `$KERAS_BACKEND`, else TensorFlow).
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", default=default or os.environ.get("KERAS_BACKEND", "tensorflow"))
    backend = pre.parse_known_args(argv)[0].backend
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_recipe(argv, description, defaults=None, smoke=None, extra_arguments=None):
    """Parses a pretraining recipe's arguments and runs it (`keras_barlow.cli.pretrain.run`).

    Args:
        argv: the command line (`None`: `sys.argv[1:]`).
        description: the recipe's help text.
        defaults: the recipe's defaults over `keras_barlow.cli.pretrain.build_parser`'s.
        smoke: the recipe's `--smoke` settings over `keras_barlow.cli.pretrain.SMOKE`.
        extra_arguments: `parser -> None`, adds the recipe's own arguments.

    Returns:
        `(args, summary, model)`.
    """
    choose_backend(argv, (defaults or {}).get("backend"))
    from keras_barlow.cli import pretrain

    parser = pretrain.build_parser(description, **(defaults or {}))
    if extra_arguments is not None:
        extra_arguments(parser)
    args = pretrain.parse(argv, parser, smoke={**pretrain.SMOKE, **(smoke or {})})
    summary, model = pretrain.run(args)
    return args, summary, model


def main(argv=None):
    return run_recipe(argv, __doc__)[1]


if __name__ == "__main__":
    main()
