"""Quick start: pretrain Barlow Twins on real data with nothing to download, and measure it.

With no arguments it pretrains a narrow ResNet-18 (width 16) on scikit-learn's bundled
handwritten digits (8×8 → 16 px, the 1,347 training images) on the CPU in a few minutes,
then evaluates it with the package's protocol (`keras_barlow.evaluation.evaluate_representation`)
and prints the table

    encoder | linear top-1 (C) | 5-shot top-1, mean ± std over 10 seeds | kNN-20 | kNN-200

for the Barlow Twins encoder, the same architecture randomly initialised, and raw pixels
(the 8×8 images, 64 values). Protocol: stratified 25 % test split (`random_state=0`);
frozen features (inference-mode batch norm), L2-normalised; linear probe = L2-regularised
logistic regression trained to convergence, C chosen on a stratified validation split of
the training set and refit; 5-shot = the same probe on 5 labelled images per class, a new
draw per seed; weighted kNN (cosine, T=0.1), k=20 and 200.

It writes to --output-dir (default runs/quickstart):
- `metrics.json`: the table (`evaluation`), the full records with per-seed results
  (`evaluation_details`), the protocol text and the run's settings;
- `encoder/`: the exported encoder (`encoder.keras`, `saved_model/`, `model_card.json`
  with the table under "evaluation");
- `cross_correlation.png`: the cross-correlation matrix C of a fixed probe batch at the
  end (blue −1, white 0, red +1), with every snapshot in `logs/cross_correlation/` and
  TensorBoard events in `logs/monitors/`.

    python recipes/quickstart.py
    python recipes/quickstart.py --epochs 100 --image-size 32 --output-dir runs/digits32
    python recipes/quickstart.py --dataset cifar10 --data-dir ~/tensorflow_datasets \\
        --preset cifar --image-size 32 --width 64 --epochs 200 --projector 2048,2048,2048
    python recipes/quickstart.py --smoke   # seconds, for tests
"""

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

BACKBONES = {"resnet18": 18, "resnet34": 34, "resnet50": 50}
DIGITS_IMAGE_SIZE = 16


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="digits", help="'digits', a TFDS name, or an image directory")
    parser.add_argument("--data-dir", default=None, help="TFDS data directory (local or gs://)")
    parser.add_argument("--split", default="train", help="pretraining split (default: train)")
    parser.add_argument("--test-split", default="test", help="labelled split for the evaluation ('' to skip)")
    parser.add_argument(
        "--preset",
        default=None,
        help="augmentation preset: digits, cifar, imagenet "
        "(default: digits for digits, cifar for cifar*, else imagenet)",
    )
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256, help="global batch size")
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help=f"default: {DIGITS_IMAGE_SIZE} for digits, else the preset's (32 / 224)",
    )
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default="resnet18")
    parser.add_argument(
        "--width", type=int, default=16, help="ResNet width (standard 64; 16 is fast on CPUs)"
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
    if args.smoke:
        args.epochs, args.width, args.projector, args.image_size, args.batch_size = 2, 4, "64,64", 8, 128
        args.knn_every, args.eval_seeds = 1, 2
    return args


def evaluation_table(
    encoders, config, *, dataset="digits", split="train", test_split="test", data_dir=None, shots=5, seeds=10
):
    """`keras_barlow.evaluation.evaluate_representation` of each encoder.

    Args:
        encoders: dict name → Keras model, or None for raw pixels (for digits: the original
            8×8 images, not the upscaled inputs).
        config: the `AugmentationConfig` whose size/normalisation the encoders expect.

    Returns:
        dict name → evaluation record (linear, few-shot mean ± std, kNN-20/200, protocol).
    """
    import numpy as np

    from keras_barlow import data, evaluation

    labeled = dict(batch_size=256, augment=config, data_dir=data_dir)
    inputs = [data.labeled_dataset(dataset, split=s, **labeled) for s in (split, test_split)]
    pixels = inputs
    if dataset == "digits":
        pixels = [data.load_digits_arrays(s) for s in (split, test_split)]
        pixels = [(images.astype(np.float32) / 255.0, labels) for images, labels in pixels]
    return {
        name: evaluation.evaluate_representation(
            encoder, *(pixels if encoder is None else inputs), shots=shots, seeds=range(seeds)
        )
        for name, encoder in encoders.items()
    }


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's C++ info/warning chatter
    import keras

    import keras_barlow
    from keras_barlow import augment, backbones, callbacks, data, evaluation, optimizers
    from keras_barlow.export import export_encoder

    start = time.time()
    keras.utils.set_random_seed(args.seed)
    preset = args.preset or data.default_preset(args.dataset)
    config = augment.AugmentationConfig.preset(preset)
    image_size = args.image_size or (DIGITS_IMAGE_SIZE if args.dataset == "digits" else None)
    if image_size:
        config = config.replace(image_size=image_size)
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
        )

    encoder = make_encoder()
    model_kwargs = {} if args.lambd is None else {"lambd": args.lambd}
    model = keras_barlow.BarlowTwins(encoder, projector_dims=projector, **model_kwargs)
    model.compile(
        optimizer=optimizers.paper_optimizer(
            args.batch_size, args.epochs, steps, weight_learning_rate=args.learning_rate
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
            "image_size": [height, width],
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "projector": list(projector),
            "learning_rate": args.learning_rate,
            "preset": preset,
            "seed": args.seed,
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
            )
            metrics["evaluation"] = {name: evaluation.summary_row(result) for name, result in results.items()}
            metrics["evaluation_protocol"] = next(iter(results.values()))["protocol"]
            metrics["evaluation_details"] = results
            metrics["eval_seconds"] = round(time.time() - eval_start, 1)
            print(evaluation.format_table(results))
            print(metrics["evaluation_protocol"])
        except ValueError as error:  # no labels or no such split
            print(f"skipping the evaluation: {error}")

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
            "recipe": "python recipes/quickstart.py " + " ".join(sys.argv[1:] if argv is None else argv),
        },
    )
    metrics["export"] = export_dir
    metrics["cross_correlation_png"] = picture
    metrics["total_seconds"] = round(time.time() - start, 1)
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(
        f"wrote {os.path.join(output_dir, 'metrics.json')}, {picture} and {export_dir} "
        f"({metrics['total_seconds']:.0f} s in all, {train_seconds:.0f} s pretraining)"
    )
    return metrics


if __name__ == "__main__":
    main()
