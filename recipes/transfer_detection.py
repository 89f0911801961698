"""Fine-tune a pretrained encoder for object detection: PASCAL VOC (TFDS) or generated shapes.

Loads an exported encoder (`keras_barlow.export_encoder` output, e.g. `savedmodels/digits`),
puts a RetinaNet (KerasCV or KerasHub) or YOLOv8 (KerasCV) on it, fine-tunes it, and reports
the COCO box mAP (KerasCV `BoxCOCOMetrics`) before and after.

    python recipes/transfer_detection.py --encoder runs/pretrain/encoder --data voc/2007 --epochs 30
    python recipes/transfer_detection.py --encoder savedmodels/digits --library keras_hub
    python recipes/transfer_detection.py --encoder savedmodels/digits --kind yolov8
    python recipes/transfer_detection.py --encoder savedmodels/digits --smoke   # shapes, 64 px, CPU

`--data voc/2007` (or `voc/2012`) reads TFDS (`--data-dir` for a local copy); `--data shapes`
generates coloured squares, circles and triangles (`keras_barlow.transfer.shapes_dataset`).
The images go in as pixels in [0, 255]: the detector applies the encoder's pretraining
normalisation from its model card. Writes `metrics.json` to `--output-dir`.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

VOC_NUM_CLASSES = 20
FORMATS = ("xywh", "xyxy", "yxyx")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--encoder", required=True, help="export directory of the pretrained encoder (model_card.json inside)")
    add("--data", default="voc/2007", help="'voc/2007', 'voc/2012' (TFDS) or 'shapes' (generated)")
    add("--data-dir", default=None, help="TFDS data directory")
    add("--train-split", default="train+validation")
    add("--eval-split", default="test")
    add("--library", choices=("keras_cv", "keras_hub"), default="keras_cv")
    add("--kind", choices=("retinanet", "yolov8"), default="retinanet")
    add("--bounding-box-format", choices=FORMATS, default="xywh")
    add("--image-size", type=int, default=384, help="square input size, a multiple of 32")
    add("--max-boxes", type=int, default=50, help="boxes per image after padding/truncation")
    add("--head-conv-layers", type=int, default=None, help="RetinaNet head depth (library default if unset)")
    add("--freeze-encoder", action="store_true", help="train only the heads")
    add("--epochs", type=int, default=30)
    add("--batch-size", type=int, default=16)
    add("--learning-rate", type=float, default=1e-4)
    add("--train-images", type=int, default=None, help="limit the training set (default: all)")
    add("--eval-images", type=int, default=500, help="images used for the mAP")
    add("--seed", type=int, default=0)
    add("--output-dir", default=os.path.join("runs", "transfer_detection"))
    add("--verbose", type=int, default=2)
    add("--smoke", action="store_true", help="tiny CPU run on generated shapes: 64 px, 48 images, light heads")
    args = parser.parse_args(argv)
    if args.smoke:
        args.data, args.image_size, args.batch_size = "shapes", 64, 8
        args.train_images, args.eval_images = args.train_images or 48, min(args.eval_images, 24)
        args.head_conv_layers = 1 if args.head_conv_layers is None else args.head_conv_layers
        args.learning_rate = 1e-3
        if "--epochs" not in (argv if argv is not None else sys.argv[1:]):
            args.epochs = 10
    if args.image_size % 32:
        parser.error(f"--image-size must be a multiple of 32, got {args.image_size}")
    return args


# ---------------------------------------------------------------------------------------
# PASCAL VOC from TFDS


def convert_boxes(boxes_yxyx, height, width, bounding_box_format):
    """Relative `[ymin, xmin, ymax, xmax]` (TFDS) → absolute pixel boxes in `bounding_box_format`."""
    import tensorflow as tf

    ymin, xmin, ymax, xmax = tf.unstack(tf.cast(boxes_yxyx, tf.float32), axis=-1)
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    ymin, ymax, xmin, xmax = ymin * h, ymax * h, xmin * w, xmax * w
    if bounding_box_format == "xywh":
        return tf.stack([xmin, ymin, xmax - xmin, ymax - ymin], axis=-1)
    if bounding_box_format == "xyxy":
        return tf.stack([xmin, ymin, xmax, ymax], axis=-1)
    if bounding_box_format == "yxyx":
        return tf.stack([ymin, xmin, ymax, xmax], axis=-1)
    raise ValueError(f"bounding_box_format must be one of {FORMATS}, got {bounding_box_format!r}")


def voc_example(example, *, image_size, bounding_box_format="xywh", max_boxes=50):
    """One TFDS VOC example → `(image, {"boxes", "classes"})`.

    The image is resized to `image_size`² (float32 pixels in [0, 255]); boxes follow it, in
    absolute pixels, padded with -1 (classes too) or truncated to `max_boxes`.
    """
    import tensorflow as tf

    image = tf.image.resize(tf.cast(example["image"], tf.float32), (image_size, image_size))
    image = tf.clip_by_value(image, 0.0, 255.0)
    objects = example["objects"]
    n = tf.minimum(tf.shape(objects["bbox"])[0], tf.shape(objects["label"])[0])
    n = tf.minimum(n, max_boxes)
    boxes = convert_boxes(objects["bbox"][:n], image_size, image_size, bounding_box_format)
    classes = tf.cast(objects["label"][:n], tf.float32)
    pad = max_boxes - n
    boxes = tf.pad(boxes, [[0, pad], [0, 0]], constant_values=-1.0)
    classes = tf.pad(classes, [[0, pad]], constant_values=-1.0)
    boxes = tf.ensure_shape(boxes, (max_boxes, 4))
    classes = tf.ensure_shape(classes, (max_boxes,))
    return image, {"boxes": boxes, "classes": classes}


def voc_dataset(split, *, image_size, batch_size, bounding_box_format="xywh", max_boxes=50, data_dir=None,
                shuffle=True, seed=0, limit=None, name="voc/2007"):
    """Batched PASCAL VOC from TFDS: `(images, {"boxes", "classes"})` (KerasCV's target keys).

    Use `keras_barlow.transfer.detection_targets` on the targets for KerasHub's keys.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    dataset = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=shuffle)
    if limit:
        dataset = dataset.take(limit)
    if shuffle:
        dataset = dataset.shuffle(1024, seed=seed)
    dataset = dataset.map(
        lambda ex: voc_example(ex, image_size=image_size, bounding_box_format=bounding_box_format, max_boxes=max_boxes),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.batch(batch_size, drop_remainder=shuffle).prefetch(tf.data.AUTOTUNE)


def to_arrays(dataset, limit):
    """First `limit` examples of a batched detection dataset as NumPy arrays."""
    import numpy as np

    images, boxes, classes = [], [], []
    for batch_images, targets in dataset:
        images.append(batch_images.numpy())
        boxes.append(targets["boxes"].numpy())
        classes.append(targets["classes"].numpy())
        if sum(len(i) for i in images) >= limit:
            break
    return np.concatenate(images)[:limit], np.concatenate(boxes)[:limit], np.concatenate(classes)[:limit]


# ---------------------------------------------------------------------------------------


def load_data(args, library):
    """`(train dataset, (eval images, boxes, classes), num_classes)` for `args.data`."""
    import tensorflow as tf

    from keras_barlow import transfer

    def with_keys(dataset):
        return dataset.map(lambda images, y: (images, transfer.detection_targets(y["boxes"], y["classes"], library)))

    if args.data == "shapes":
        if args.bounding_box_format != "xywh":
            raise SystemExit("--data shapes generates xywh boxes; use --bounding-box-format xywh")
        common = dict(image_size=args.image_size, max_objects=1, size_range=(0.4, 0.7))
        train = transfer.shapes_dataset(args.train_images or 256, seed=args.seed + 1, **common)
        test = transfer.shapes_dataset(args.eval_images, seed=args.seed + 2, **common)
        dataset = tf.data.Dataset.from_tensor_slices((train["images"], {"boxes": train["boxes"], "classes": train["classes"]}))
        dataset = dataset.shuffle(len(train["images"]), seed=args.seed).batch(args.batch_size)
        return with_keys(dataset), (test["images"], test["boxes"], test["classes"]), len(transfer.SHAPE_CLASSES)
    if not args.data.startswith("voc"):
        raise SystemExit(f"--data must be voc/2007, voc/2012 or shapes, got {args.data!r}")
    common = dict(image_size=args.image_size, bounding_box_format=args.bounding_box_format, max_boxes=args.max_boxes,
                  data_dir=args.data_dir, name=args.data)
    train = voc_dataset(args.train_split, batch_size=args.batch_size, seed=args.seed, limit=args.train_images, **common)
    evaluation = voc_dataset(args.eval_split, batch_size=args.batch_size, shuffle=False, limit=args.eval_images, **common)
    return with_keys(train), to_arrays(evaluation, args.eval_images), VOC_NUM_CLASSES


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
    evaluate = lambda: transfer.evaluate_detector(  # noqa: E731
        model, images, boxes, classes, bounding_box_format=args.bounding_box_format, batch_size=args.batch_size
    )
    before = evaluate()
    print(f"{args.kind} ({args.library}) on {args.data}: mAP before fine-tuning {before['MaP']:.4f}", flush=True)
    start = time.time()
    history = model.fit(train, epochs=args.epochs, verbose=args.verbose)
    seconds = time.time() - start
    after = evaluate()
    metrics = {
        "data": args.data,
        "library": args.library,
        "kind": args.kind,
        "encoder": args.encoder,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "train_seconds": round(seconds, 1),
        "loss": [float(v) for v in history.history["loss"]],
        "before": before,
        "after": after,
    }
    print(f"mAP {before['MaP']:.4f} -> {after['MaP']:.4f}, mAP@0.5 {before['MaP@[IoU=50]']:.4f} -> "
          f"{after['MaP@[IoU=50]']:.4f} ({seconds:.0f} s)", flush=True)
    os.makedirs(args.output_dir, exist_ok=True)
    transfer.save_metrics(os.path.join(args.output_dir, "metrics.json"), metrics)
    return metrics


if __name__ == "__main__":
    main()
