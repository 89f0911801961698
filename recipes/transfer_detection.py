"""Fine-tune a pretrained encoder for object detection: PASCAL VOC (TFDS) or generated shapes.

Loads an exported encoder (`keras_barlow.export_encoder` output, e.g. `savedmodels/digits`),
puts a RetinaNet (KerasCV or KerasHub) or YOLOv8 (KerasCV) on it, fine-tunes it, and reports
the COCO box mAP (KerasCV `BoxCOCOMetrics`) before and after.

    python recipes/transfer_detection.py --encoder runs/pretrain/encoder --data voc/2007 --epochs 30
    python recipes/transfer_detection.py --encoder savedmodels/digits --library keras_hub
    python recipes/transfer_detection.py --encoder savedmodels/digits --kind yolov8
    python recipes/transfer_detection.py --encoder savedmodels/digits --smoke   # shapes, 64 px, CPU

`--data voc/2007` (or `voc/2012`) reads TFDS (`--data-dir` for a local copy); `--data shapes`
generates coloured squares, circles and triangles (`keras_barlow.transfer.synthetic_shapes.shapes_dataset`).
The images go in as pixels in [0, 255]: the detector applies the encoder's pretraining
normalisation from its model card. Writes `metrics.json` to `--output-dir`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before keras_barlow imports Keras
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_barlow.cli import fine_tune
from keras_barlow.transfer import datasets


def parse_args(argv=None):
    parser = fine_tune.transfer_parser(
        __doc__,
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
    add("--kind", choices=("retinanet", "yolov8"), default="retinanet")
    add("--bounding-box-format", choices=datasets.BOX_FORMATS, default="xywh")
    add("--max-boxes", type=int, default=50, help="boxes per image after padding/truncation")
    add("--head-conv-layers", type=int, default=None, help="RetinaNet head depth (library default if unset)")
    args = fine_tune.parse_transfer_args(parser, argv, smoke_epochs=10)
    if args.smoke and args.head_conv_layers is None:
        args.head_conv_layers = 1
    return args


def load_data(args, library):
    """`(train dataset, (eval images, boxes, classes), num_classes)` for `args.data`."""
    import tensorflow as tf

    from keras_barlow import transfer

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


def main(argv=None):
    args = parse_args(argv)
    import keras

    from keras_barlow import transfer

    keras.utils.set_random_seed(args.seed)

    train, (images, boxes, classes), num_classes = load_data(args, args.library)
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

    return fine_tune.fine_tune_and_report(
        model,
        train,
        evaluate,
        args,
        title=f"{args.kind} ({args.library})",
        printed=("MaP", "MaP@[IoU=50]"),
        details={"kind": args.kind},
    )


if __name__ == "__main__":
    main()
