"""`keras-barlow evaluate linear` / `evaluate semi-supervised`, and `recipes/linear_eval.py` /
`recipes/semi_supervised.py`: evaluation of a pretrained encoder.

- `linear`: linear probe, few-shot probe and weighted kNN on frozen features
  (`keras_barlow.evaluation.evaluate_representation`, `linear_probe`);
- `semi-supervised`: fine-tuning of encoder + linear head on a labelled fraction, over seeds
  (`keras_barlow.evaluation.fine_tune_over_seeds`).

Both load the encoder and its input size and normalisation the same way (`load_encoder_and_views`).
"""

import argparse
import json
import time

from keras_barlow.augment.config import PRESETS

LINEAR_COMMAND = "keras-barlow evaluate linear"
SEMI_SUPERVISED_COMMAND = "keras-barlow evaluate semi-supervised"
SUMMARY = "evaluate a pretrained encoder: linear probe, few-shot and kNN, or semi-supervised fine-tuning"
LINEAR_SUMMARY = "linear probe, few-shot probe and weighted kNN on frozen features"
SEMI_SUPERVISED_SUMMARY = (
    "fine-tune encoder + linear head on a labelled fraction (e.g. 1 or 10 percent), over seeds"
)

LINEAR_DESCRIPTION = """Linear evaluation, few-shot probe and weighted kNN of a pretrained encoder
on frozen features.

The encoder is frozen and runs in inference mode; its features are computed once,
L2-normalised and cached, then evaluated with keras_barlow.evaluation.evaluate_representation:
a converged L2-regularised logistic regression (C chosen on a stratified validation split,
refit on all training data), the same probe on --shots labelled images per class over
--seeds draws (mean ± std), and weighted kNN at k=20 and 200. --protocol sgd replaces
the linear probe by the paper's (SGD, momentum 0.9, cosine decay, 100 epochs, batch 256),
meant for ImageNet-scale features; --augmentations N fits the probe on N cached random
resized crop (+ flip) copies of the training set.

    # an exported encoder (its model card gives the input size and normalisation)
    {command} --encoder savedmodels/digits --dataset digits
    # a TFDS dataset prepared in --data-dir (nothing is downloaded)
    {command} --encoder my_export --dataset cifar10 --data-dir ~/tensorflow_datasets
    {command} --smoke   # seconds: random small encoder on digits

Prints a table (few-shot as mean ± std) and the protocol, and writes the record to --output as JSON.
"""

SEMI_SUPERVISED_DESCRIPTION = """Semi-supervised evaluation: fine-tune an encoder + linear head on 1 % or
10 % of the labels.

Each run draws its own class-balanced labelled subset (deterministic per seed); encoder and
head train end to end with SGD (momentum 0.9, cosine decay) at two learning rates: the
paper's 1 % run is 20 epochs, encoder 0.002, head 0.5, no weight decay. One draw of a few
labels is noisy, so the run is repeated for --seeds seeds (default 10) and reported as
mean ± sample std (keras_barlow.evaluation.fine_tune_over_seeds).

    {command} --encoder savedmodels/digits --fraction 0.1
    {command} --encoder my_export --dataset imagenet2012 \\
        --data-dir gs://bucket/tfds --fraction 0.01
    {command} --smoke

The labelled subsets are class-balanced draws from the TFDS split (the paper's ImageNet
1 %/10 % subsets are SimCLR's fixed file lists). Prints top-1 / top-5 on the test split as
mean ± std and writes them, with the per-seed values, to --output as JSON.
"""


def describe(description, command):
    """`description` (`LINEAR_DESCRIPTION`, ...) with `{command}` replaced."""
    return description.replace("{command}", command)


def _new_parser(description):
    return argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def _add_encoder_arguments(parser, *, data_dir_help=None, preset_help):
    add = parser.add_argument
    add("--encoder", help="export directory (keras_barlow.export_encoder) or .keras file")
    add("--dataset", default="digits", help="'digits' or a TFDS name (default: digits)")
    add("--data-dir", default=None, help=data_dir_help)
    add("--train-split", default="train")
    add("--test-split", default="test")
    add("--preset", default=None, choices=sorted(PRESETS), help=preset_help)


def add_linear_arguments(parser):
    """Adds the linear evaluation's arguments to `parser`; returns it."""
    _add_encoder_arguments(
        parser,
        data_dir_help="TFDS data directory (local or gs://)",
        preset_help="augmentation preset for the input size/normalisation when the model card has none "
        "(default: digits for digits, else imagenet)",
    )
    add = parser.add_argument
    add("--image-size", type=int, default=None, help="input size (default: the model card's)")
    add(
        "--protocol",
        choices=("logistic", "sgd"),
        default="logistic",
        help="linear probe: converged logistic regression (default) or the paper's SGD",
    )
    add("--epochs", type=int, default=None, help="sgd: epochs (default 100)")
    add("--batch-size", type=int, default=256)
    add(
        "--learning-rate",
        type=float,
        default=None,
        help="sgd: classifier learning rate (default: 3.0 for the L2-normalised features)",
    )
    add("--weight-decay", type=float, default=None, help="sgd: weight decay (default 1e-6)")
    add("--shots", type=int, default=5, help="labelled images per class of the few-shot probe")
    add("--seeds", type=int, default=10, help="few-shot draws (mean ± std over them)")
    add(
        "--augmentations",
        type=int,
        default=0,
        help="cached random-resized-crop copies of the training set (0: clean images)",
    )
    add("--no-flip", action="store_true", help="no horizontal flips in --augmentations (chiral data)")
    add("--seed", type=int, default=0)
    add("--output", default=None, help="write the metrics to this JSON file")
    add("--smoke", action="store_true", help="tiny end-to-end run on digits with a random encoder")
    return parser


def add_semi_supervised_arguments(parser):
    """Adds the semi-supervised evaluation's arguments to `parser`; returns it."""
    _add_encoder_arguments(parser, preset_help="preset when the model card has no augmentation config")
    add = parser.add_argument
    add("--image-size", type=int, default=None)
    add("--fraction", type=float, default=0.01, help="labelled fraction per class (0.01 or 0.1)")
    add("--epochs", type=int, default=20)
    add("--batch-size", type=int, default=256)
    add("--encoder-lr", type=float, default=0.002)
    add("--head-lr", type=float, default=0.5)
    add("--weight-decay", type=float, default=0.0)
    add("--augment", action="store_true", help="random resized crop (+ flip) on training batches")
    add("--no-flip", action="store_true")
    add("--seed", type=int, default=0, help="first seed")
    add("--seeds", type=int, default=10, help="runs, each with its own subset (seeds seed, seed+1, ...)")
    add("--output", default=None)
    add("--smoke", action="store_true", help="tiny end-to-end run on digits with a random encoder")
    add(
        "--baselines",
        action="store_true",
        help="also train the same network from scratch and fit a logistic regression on the raw pixels, "
        "on the same labelled subsets (digits and mnist5k: their original pixels)",
    )
    return parser


def build_linear_parser(command=LINEAR_COMMAND):
    """The linear evaluation's arguments in a new parser."""
    return add_linear_arguments(_new_parser(describe(LINEAR_DESCRIPTION, command)))


def build_semi_supervised_parser(command=SEMI_SUPERVISED_COMMAND):
    """The semi-supervised evaluation's arguments in a new parser."""
    return add_semi_supervised_arguments(_new_parser(describe(SEMI_SUPERVISED_DESCRIPTION, command)))


def parse_linear_args(argv=None, parser=None):
    """Parses and checks the linear evaluation's command line (`--encoder` or `--smoke`; the SGD
    settings only with `--protocol sgd`)."""
    parser = parser or build_linear_parser()
    args = parser.parse_args(argv)
    if not args.encoder and not args.smoke:
        parser.error("--encoder is required (or --smoke)")
    if args.protocol == "logistic" and any(
        v is not None for v in (args.epochs, args.learning_rate, args.weight_decay)
    ):
        parser.error("--epochs, --learning-rate and --weight-decay set the SGD probe: add --protocol sgd")
    return args


def parse_semi_supervised_args(argv=None, parser=None):
    """Parses and checks the semi-supervised evaluation's command line (`--encoder` or `--smoke`)."""
    parser = parser or build_semi_supervised_parser()
    args = parser.parse_args(argv)
    if not args.encoder and not args.smoke:
        parser.error("--encoder is required (or --smoke)")
    return args


def load_encoder_and_views(args):
    """The encoder to evaluate and the `AugmentationConfig` of its inputs.

    The input size and normalisation come from the export's model card; `--preset` (default:
    `digits` for digits, else `imagenet`) fills in what the card lacks, and `--image-size`
    overrides the size. `--smoke` builds a small random ResNet-18 instead of loading one.

    Returns:
        `(encoder, AugmentationConfig)`.
    """
    from keras_barlow import augment, export

    preset = args.preset or ("digits" if args.dataset == "digits" else "imagenet")
    if args.smoke:
        from keras_barlow.backbones import resnet

        size = args.image_size or 16
        return resnet(18, (size, size, 3), small_images=True, width=4), augment.AugmentationConfig.preset(
            preset, image_size=size
        )
    encoder = export.load_encoder(args.encoder)
    card = export.model_card(encoder) or {}
    if card.get("augmentation"):
        config = augment.AugmentationConfig.from_config(card["augmentation"])
    else:
        config = augment.AugmentationConfig.preset(preset)
        if card.get("preprocessing"):
            config = config.replace(mean=card["preprocessing"]["mean"], std=card["preprocessing"]["std"])
    size = args.image_size or (card.get("input", {}).get("image_shape") or [None])[0]
    return encoder, config.replace(image_size=size) if size else config


def _crop_flip(args, config, enabled):
    from keras_barlow import evaluation

    if not enabled:
        return None
    return evaluation.crop_flip_augmentation(
        scale=config.view_a.crop_scale, flip_prob=0.0 if args.no_flip else 0.5
    )


def _write(path, metrics):
    if path:
        with open(path, "w") as f:
            json.dump(metrics, f, indent=2)


def run_linear(args):
    """Runs the linear evaluation `args` describe; prints the table and returns the metrics."""
    from keras_barlow import data, evaluation

    start = time.time()
    encoder, config = load_encoder_and_views(args)
    splits = {}
    for name, split in (("train", args.train_split), ("test", args.test_split)):
        dataset = data.labeled_dataset(
            args.dataset, split=split, batch_size=args.batch_size, augment=config, data_dir=args.data_dir
        )
        splits[name] = dataset.take(1) if args.smoke else dataset
    train = evaluation.extract_features(encoder, splits["train"])
    test = evaluation.extract_features(encoder, splits["test"])
    seeds = range(2 if args.smoke else args.seeds)
    metrics = evaluation.evaluate_representation(None, train, test, shots=args.shots, seeds=seeds)
    if args.protocol == "sgd" or args.augmentations:
        sgd = (
            {
                "epochs": 2 if args.smoke else args.epochs,
                "learning_rate": args.learning_rate,
                "weight_decay": args.weight_decay,
            }
            if args.protocol == "sgd"
            else {}
        )
        metrics["linear"] = evaluation.linear_probe(
            encoder,
            splits["train"] if args.augmentations else train,
            test,
            protocol=args.protocol,
            batch_size=args.batch_size,
            augmentations=args.augmentations,
            augment=_crop_flip(args, config, args.augmentations),
            seed=args.seed,
            **sgd,
        )
    metrics.update(
        dataset=args.dataset,
        train_examples=len(train),
        test_examples=len(test),
        seconds=round(time.time() - start, 1),
    )
    print(evaluation.format_table({args.encoder or "smoke encoder": metrics}))
    print(metrics["protocol"] if args.protocol == "logistic" else f"linear probe: {metrics['linear']}")
    _write(args.output, metrics)
    return metrics


def run_semi_supervised(args):
    """Runs the semi-supervised evaluation `args` describe; prints top-1/top-5 and returns the metrics."""
    from keras_barlow import data, evaluation

    start = time.time()
    encoder, config = load_encoder_and_views(args)
    common = dict(batch_size=args.batch_size, augment=config, data_dir=args.data_dir)
    train = data.labeled_dataset(args.dataset, split=args.train_split, **common)
    test = data.labeled_dataset(args.dataset, split=args.test_split, **common)
    if args.smoke:
        test = test.take(1)
    seeds = range(args.seed, args.seed + (2 if args.smoke else args.seeds))
    options = dict(
        seeds=seeds,
        epochs=1 if args.smoke else args.epochs,
        batch_size=args.batch_size,
        encoder_learning_rate=args.encoder_lr,
        head_learning_rate=args.head_lr,
        weight_decay=args.weight_decay,
        augment=_crop_flip(args, config, args.augment),
    )
    if args.baselines:
        metrics = _semi_supervised_with_baselines(args, encoder, train, test, options)
    else:
        metrics = evaluation.fine_tune_over_seeds(encoder, train, args.fraction, test_data=test, **options)
    metrics.update(dataset=args.dataset, seconds=round(time.time() - start, 1))
    rows = [name for name in evaluation.semi_supervised.ROWS if name in metrics] or [None]
    for row in rows:
        record = metrics if row is None else metrics[row]
        for name in ("top1", "top5"):
            summary = record[name]
            label = name if row is None else f"{row} {name}"
            print(f"{label}: {summary['mean']:.4f} ± {summary['std']:.4f} over {len(metrics['seeds'])} seeds")
    _write(args.output, metrics)
    return metrics


def _semi_supervised_with_baselines(args, encoder, train, test, options):
    import numpy as np

    from keras_barlow import data, evaluation
    from keras_barlow.cli.quickstart import PIXEL_LOADERS

    if args.dataset not in PIXEL_LOADERS:
        raise SystemExit(
            f"--baselines compares with the raw pixels of {' or '.join(sorted(PIXEL_LOADERS))}; "
            f"--dataset {args.dataset} has no such arrays: run without --baselines"
        )

    def as_arrays(dataset):
        images, labels = zip(*evaluation.iterate_batches(dataset))
        return np.concatenate(images), np.concatenate(labels)

    load = getattr(data, PIXEL_LOADERS[args.dataset])
    pixels = [load(split) for split in (args.train_split, args.test_split)]
    pixels = [(images.astype(np.float32) / 255.0, labels) for images, labels in pixels]
    test_arrays = as_arrays(test)
    if args.smoke:
        pixels[1] = tuple(array[: len(test_arrays[1])] for array in pixels[1])
    metrics = evaluation.compare_semi_supervised(
        encoder, as_arrays(train), test_arrays, pixels, fraction=args.fraction, **options
    )
    metrics["protocol"] = (
        "barlow_twins: fine_tune of the pretrained encoder; scratch: the same architecture randomly "
        "initialised, every layer at the head's learning rate; raw_pixels: converged logistic regression "
        "on the L2-normalised original pixels of the same labelled subset"
    )
    return metrics


def linear_main(argv=None, *, parser=None, command=LINEAR_COMMAND):
    """Parses a linear-evaluation command line (`None`: `sys.argv[1:]`) and runs it.

    Args:
        argv: the arguments (`None`: `sys.argv[1:]`).
        parser: from `add_linear_arguments` (default: `build_linear_parser(command)`).
        command: how the evaluation is run, for the help text.

    Returns:
        The metrics.
    """
    args = parse_linear_args(argv, parser or build_linear_parser(command))
    return run_linear(args)


def semi_supervised_main(argv=None, *, parser=None, command=SEMI_SUPERVISED_COMMAND):
    """Parses a semi-supervised-evaluation command line and runs it (see `linear_main`)."""
    args = parse_semi_supervised_args(argv, parser or build_semi_supervised_parser(command))
    return run_semi_supervised(args)
