"""`keras-barlow transfer detection` / `transfer segmentation`, and `recipes/transfer_detection.py`
/ `recipes/transfer_segmentation.py`: fine-tune a pretrained encoder for a dense task.

Both add their task's arguments to the shared ones (`add_common_arguments`), build a task
model on the encoder (`keras_barlow.transfer.detector` / `segmenter`) and hand it to
`fine_tune_and_report`, which evaluates before and after training and writes `metrics.json`.
KerasCV, the default `--library`, needs the TensorFlow backend.
"""

import argparse
import os
import sys
import time

from keras_barlow._io import write_json

LIBRARY_CHOICES = ("keras_cv", "keras_hub")
DETECTION_KINDS = ("retinanet", "yolov8")
DETECTION_COMMAND = "keras-barlow transfer detection"
SEGMENTATION_COMMAND = "keras-barlow transfer segmentation"
SUMMARY = "fine-tune a pretrained encoder for object detection or semantic segmentation"
DETECTION_SUMMARY = "RetinaNet or YOLOv8 on the encoder: PASCAL VOC or generated shapes, COCO mAP"
SEGMENTATION_SUMMARY = "DeepLabV3+ on the encoder: Oxford-IIIT Pets or generated shapes, mean IoU"

DETECTION_DESCRIPTION = """Fine-tune a pretrained encoder for object detection: PASCAL VOC (TFDS) or
generated shapes.

Loads an exported encoder (keras_barlow.export_encoder output, e.g. savedmodels/digits),
puts a RetinaNet (KerasCV or KerasHub) or YOLOv8 (KerasCV) on it, fine-tunes it, and reports
the COCO box mAP (KerasCV BoxCOCOMetrics) before and after.

    {command} --encoder runs/pretrain/encoder --data voc/2007 --epochs 30
    {command} --encoder savedmodels/digits --library keras_hub
    {command} --encoder savedmodels/digits --kind yolov8
    {command} --encoder savedmodels/digits --smoke   # shapes, 64 px, CPU

--data voc/2007 (or voc/2012) reads TFDS (--data-dir for a local copy); --data shapes
generates coloured squares, circles and triangles (keras_barlow.transfer.synthetic_shapes).
The images go in as pixels in [0, 255]: the detector applies the encoder's pretraining
normalisation from its model card. Writes metrics.json to --output-dir.
"""

SEGMENTATION_DESCRIPTION = """Fine-tune a pretrained encoder for semantic segmentation: Oxford-IIIT Pets
(TFDS) or generated shapes.

Loads an exported encoder (keras_barlow.export_encoder output, e.g. savedmodels/digits),
puts DeepLabV3+ (KerasCV DeepLabV3Plus or KerasHub DeepLabV3ImageSegmenter) on it,
fine-tunes it, and reports the mean IoU before and after.

    {command} --encoder runs/pretrain/encoder --data oxford_iiit_pet
    {command} --encoder savedmodels/digits --library keras_hub
    {command} --encoder savedmodels/digits --smoke   # shapes, 64 px, CPU

--data oxford_iiit_pet reads TFDS (3 classes: background, pet, pet border; TFDS has no
PASCAL VOC segmentation masks); --data shapes generates coloured squares, circles and
triangles with masks (4 classes with the background). Images go in as pixels in [0, 255]:
the segmenter applies the encoder's pretraining normalisation from its model card. Writes
metrics.json to --output-dir.
"""


def describe(description, command):
    """`description` (`DETECTION_DESCRIPTION`, ...) with `{command}` replaced."""
    return description.replace("{command}", command)


def add_common_arguments(parser, *, data, data_help, image_size, epochs, output_dir, freeze_help, smoke_help):
    """Adds the arguments both transfer tasks take to `parser`.

    Args:
        parser: an `argparse.ArgumentParser` (a new one or a subcommand's).
        data: default `--data`; `data_help` its help.
        image_size, epochs, output_dir: the task's defaults.
        freeze_help: help of `--freeze-encoder` (what still trains).
        smoke_help: help of `--smoke`.

    Returns:
        `parser`; the task adds its own arguments.
    """
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


def add_detection_arguments(parser):
    """Adds the detection task's arguments to `parser`; returns it."""
    from keras_barlow.transfer.datasets import BOX_FORMATS

    add_common_arguments(
        parser,
        data="voc/2007",
        data_help="'voc/2007', 'voc/2012' (TFDS) or 'shapes' (generated)",
        image_size=384,
        epochs=30,
        output_dir=os.path.join("runs", "transfer_detection"),
        freeze_help="train only the heads",
        smoke_help="tiny CPU run on generated shapes: 64 px, 48 images, light heads",
    )
    parser.set_defaults(train_split="train+validation")
    add = parser.add_argument
    add("--kind", choices=DETECTION_KINDS, default="retinanet")
    add("--bounding-box-format", choices=BOX_FORMATS, default="xywh")
    add("--max-boxes", type=int, default=50, help="boxes per image after padding/truncation")
    add("--head-conv-layers", type=int, default=None, help="RetinaNet head depth (library default if unset)")
    return parser


def add_segmentation_arguments(parser):
    """Adds the segmentation task's arguments to `parser`; returns it."""
    return add_common_arguments(
        parser,
        data="oxford_iiit_pet",
        data_help="'oxford_iiit_pet' (TFDS) or 'shapes' (generated)",
        image_size=256,
        epochs=20,
        output_dir=os.path.join("runs", "transfer_segmentation"),
        freeze_help="train only the decoder",
        smoke_help="tiny CPU run on generated shapes: 64 px, 48 images",
    )


def _new_parser(description):
    return argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def build_detection_parser(command=DETECTION_COMMAND):
    """The detection task's arguments in a new parser."""
    return add_detection_arguments(_new_parser(describe(DETECTION_DESCRIPTION, command)))


def build_segmentation_parser(command=SEGMENTATION_COMMAND):
    """The segmentation task's arguments in a new parser."""
    return add_segmentation_arguments(_new_parser(describe(SEGMENTATION_DESCRIPTION, command)))


def parse_transfer_args(parser, argv, *, smoke_epochs):
    """Parses `argv`; `--smoke` switches to generated shapes at 64 px on 48 images.

    Args:
        parser: with `add_common_arguments`' arguments.
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


def parse_detection_args(argv=None, parser=None):
    """Parses the detection task's command line (`--smoke`: 10 epochs, one-layer heads)."""
    args = parse_transfer_args(parser or build_detection_parser(), argv, smoke_epochs=10)
    if args.smoke and args.head_conv_layers is None:
        args.head_conv_layers = 1
    return args


def parse_segmentation_args(argv=None, parser=None):
    """Parses the segmentation task's command line (`--smoke`: 5 epochs)."""
    return parse_transfer_args(parser or build_segmentation_parser(), argv, smoke_epochs=5)


def fine_tune_and_report(model, train, evaluate, args, *, title, printed, details=None):
    """Evaluates, fine-tunes, evaluates again and writes `metrics.json` to `args.output_dir`.

    Args:
        model: a compiled task model.
        train: its training data set.
        evaluate: `() -> dict of floats`, the task's metrics.
        args: the parsed arguments.
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


def load_detection_data(args, library):
    """`(train dataset, (eval images, boxes, classes), num_classes)` for `args.data`."""
    import tensorflow as tf

    from keras_barlow import transfer
    from keras_barlow.transfer import datasets

    def with_keys(dataset):
        return dataset.map(
            lambda images, y: (images, transfer.detection_targets(y["boxes"], y["classes"], library))
        )

    if args.data == "shapes":
        if args.bounding_box_format != "xywh":
            raise SystemExit("--data shapes generates xywh boxes; use --bounding-box-format xywh")
        train, test = datasets.shapes_splits(
            image_size=args.image_size,
            train_images=args.train_images or 256,
            eval_images=args.eval_images,
            seed=args.seed,
            max_objects=1,
            size_range=(0.4, 0.7),
        )
        targets = {"boxes": train["boxes"], "classes": train["classes"]}
        dataset = tf.data.Dataset.from_tensor_slices((train["images"], targets))
        dataset = dataset.shuffle(len(train["images"]), seed=args.seed).batch(args.batch_size)
        return (
            with_keys(dataset),
            (test["images"], test["boxes"], test["classes"]),
            len(datasets.SHAPE_CLASSES),
        )
    if not args.data.startswith("voc"):
        raise SystemExit(f"--data must be voc/2007, voc/2012 or shapes, got {args.data!r}")
    common = dict(
        image_size=args.image_size,
        batch_size=args.batch_size,
        bounding_box_format=args.bounding_box_format,
        max_boxes=args.max_boxes,
        data_dir=args.data_dir,
        name=args.data,
    )
    train = datasets.voc_dataset(args.train_split, seed=args.seed, limit=args.train_images, **common)
    evaluation = datasets.voc_dataset(args.eval_split, shuffle=False, limit=args.eval_images, **common)
    images, targets = datasets.first_examples(evaluation, args.eval_images)
    return with_keys(train), (images, targets["boxes"], targets["classes"]), datasets.VOC_NUM_CLASSES


def load_segmentation_data(args):
    """`(train dataset, (eval images, masks), num_classes)` for `args.data`."""
    import tensorflow as tf

    from keras_barlow.transfer import datasets

    if args.data == "shapes":
        train, test = datasets.shapes_splits(
            image_size=args.image_size,
            train_images=args.train_images or 256,
            eval_images=args.eval_images,
            seed=args.seed,
            max_objects=2,
            size_range=(0.3, 0.5),
        )
        dataset = tf.data.Dataset.from_tensor_slices((train["images"], train["masks"]))
        dataset = dataset.shuffle(len(train["images"]), seed=args.seed).batch(args.batch_size)
        return dataset, (test["images"], test["masks"]), len(datasets.SHAPE_CLASSES) + 1
    if args.data != "oxford_iiit_pet":
        raise SystemExit(f"--data must be oxford_iiit_pet or shapes, got {args.data!r}")
    common = dict(image_size=args.image_size, batch_size=args.batch_size, data_dir=args.data_dir)
    train = datasets.pets_dataset(args.train_split, seed=args.seed, limit=args.train_images, **common)
    evaluation = datasets.pets_dataset(args.eval_split, shuffle=False, limit=args.eval_images, **common)
    return train, datasets.first_examples(evaluation, args.eval_images), datasets.PETS_NUM_CLASSES


def run_detection(args):
    """Fine-tunes a detector on the encoder as `args` say; returns the metrics."""
    import keras

    from keras_barlow import transfer

    keras.utils.set_random_seed(args.seed)
    train, (images, boxes, classes), num_classes = load_detection_data(args, args.library)
    model = transfer.detector(
        args.encoder,
        num_classes,
        kind=args.kind,
        library=args.library,
        bounding_box_format=args.bounding_box_format,
        freeze_encoder=args.freeze_encoder,
        image_shape=(args.image_size, args.image_size, 3),
        head_conv_layers=args.head_conv_layers if args.kind == "retinanet" else None,
    )
    transfer.compile_detector(model, keras.optimizers.Adam(args.learning_rate, global_clipnorm=10.0))
    transfer.set_confidence_threshold(model, 0.05)  # COCO-style evaluation keeps low-confidence detections

    def evaluate():
        return transfer.evaluate_detector(
            model,
            images,
            boxes,
            classes,
            bounding_box_format=args.bounding_box_format,
            batch_size=args.batch_size,
        )

    return fine_tune_and_report(
        model,
        train,
        evaluate,
        args,
        title=f"{args.kind} ({args.library})",
        printed=("MaP", "MaP@[IoU=50]"),
        details={"kind": args.kind},
    )


def run_segmentation(args):
    """Fine-tunes a segmenter on the encoder as `args` say; returns the metrics."""
    import keras

    from keras_barlow import transfer

    keras.utils.set_random_seed(args.seed)
    train, (images, masks), num_classes = load_segmentation_data(args)
    model = transfer.segmenter(
        args.encoder,
        num_classes,
        library=args.library,
        freeze_encoder=args.freeze_encoder,
        image_shape=(args.image_size, args.image_size, 3),
    )
    transfer.compile_segmenter(model, keras.optimizers.Adam(args.learning_rate))

    def evaluate():
        return {"mean_iou": transfer.mean_iou(model, images, masks, num_classes, batch_size=args.batch_size)}

    title = f"DeepLabV3+ ({args.library})"
    return fine_tune_and_report(model, train, evaluate, args, title=title, printed=("mean_iou",))


def detection_main(argv=None, *, parser=None, command=DETECTION_COMMAND):
    """Parses a detection command line and runs it.

    Args:
        argv: the arguments (`None`: `sys.argv[1:]`).
        parser: from `add_detection_arguments` (default: `build_detection_parser(command)`).
        command: how the task is run, for the help text.

    Returns:
        The metrics (also in `<output-dir>/metrics.json`).
    """
    args = parse_detection_args(argv, parser or build_detection_parser(command))
    return run_detection(args)


def segmentation_main(argv=None, *, parser=None, command=SEGMENTATION_COMMAND):
    """Parses a segmentation command line and runs it (see `detection_main`)."""
    args = parse_segmentation_args(argv, parser or build_segmentation_parser(command))
    return run_segmentation(args)
