"""Fine-tune a pretrained encoder for semantic segmentation: Oxford-IIIT Pets (TFDS) or shapes.

Loads an exported encoder (`keras_barlow.export_encoder` output, e.g. `savedmodels/digits`),
puts DeepLabV3+ (KerasCV `DeepLabV3Plus` or KerasHub `DeepLabV3ImageSegmenter`) on it,
fine-tunes it, and reports the mean IoU before and after.

    python recipes/transfer_segmentation.py --encoder runs/pretrain/encoder --data oxford_iiit_pet
    python recipes/transfer_segmentation.py --encoder savedmodels/digits --library keras_hub
    python recipes/transfer_segmentation.py --encoder savedmodels/digits --smoke   # shapes, 64 px, CPU

`--data oxford_iiit_pet` reads TFDS (3 classes: background, pet, pet border; TFDS has no
PASCAL VOC segmentation masks); `--data shapes` generates coloured squares, circles and
triangles with masks (4 classes with the background). Images go in as pixels in [0, 255]:
the segmenter applies the encoder's pretraining normalisation from its model card. Writes
`metrics.json` to `--output-dir`.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

PETS_NUM_CLASSES = 3  # 0 background, 1 pet, 2 border


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--encoder", required=True, help="export directory of the pretrained encoder (model_card.json inside)")
    add("--data", default="oxford_iiit_pet", help="'oxford_iiit_pet' (TFDS) or 'shapes' (generated)")
    add("--data-dir", default=None, help="TFDS data directory")
    add("--train-split", default="train")
    add("--eval-split", default="test")
    add("--library", choices=("keras_cv", "keras_hub"), default="keras_cv")
    add("--image-size", type=int, default=256, help="square input size, a multiple of 32")
    add("--freeze-encoder", action="store_true", help="train only the decoder")
    add("--epochs", type=int, default=20)
    add("--batch-size", type=int, default=16)
    add("--learning-rate", type=float, default=1e-4)
    add("--train-images", type=int, default=None, help="limit the training set (default: all)")
    add("--eval-images", type=int, default=500, help="images used for the mean IoU")
    add("--seed", type=int, default=0)
    add("--output-dir", default=os.path.join("runs", "transfer_segmentation"))
    add("--verbose", type=int, default=2)
    add("--smoke", action="store_true", help="tiny CPU run on generated shapes: 64 px, 48 images")
    args = parser.parse_args(argv)
    if args.smoke:
        args.data, args.image_size, args.batch_size = "shapes", 64, 8
        args.train_images, args.eval_images = args.train_images or 48, min(args.eval_images, 24)
        args.learning_rate = 1e-3
        if "--epochs" not in (argv if argv is not None else sys.argv[1:]):
            args.epochs = 5
    if args.image_size % 32:
        parser.error(f"--image-size must be a multiple of 32, got {args.image_size}")
    return args


def pets_example(example, *, image_size):
    """One TFDS Oxford-IIIT Pets example → `(image, mask)`.

    The image is resized to `image_size`² (float32 pixels in [0, 255]); the trimap
    (1 pet, 2 background, 3 border) is resized with nearest neighbours and relabelled
    0 background, 1 pet, 2 border, shape `(image_size, image_size, 1)`, int32.
    """
    import tensorflow as tf

    image = tf.clip_by_value(tf.image.resize(tf.cast(example["image"], tf.float32), (image_size, image_size)), 0.0, 255.0)
    trimap = tf.image.resize(example["segmentation_mask"], (image_size, image_size), method="nearest")
    relabel = tf.constant([0, 1, 0, 2], tf.int32)  # index: trimap value
    mask = tf.gather(relabel, tf.clip_by_value(tf.cast(trimap, tf.int32), 0, 3))
    return image, tf.ensure_shape(mask, (image_size, image_size, 1))


def pets_dataset(split, *, image_size, batch_size, data_dir=None, shuffle=True, seed=0, limit=None):
    """Batched Oxford-IIIT Pets from TFDS: `(images, masks)`."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    dataset = tfds.load("oxford_iiit_pet", split=split, data_dir=data_dir, shuffle_files=shuffle)
    if limit:
        dataset = dataset.take(limit)
    if shuffle:
        dataset = dataset.shuffle(1024, seed=seed)
    dataset = dataset.map(lambda ex: pets_example(ex, image_size=image_size), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=shuffle).prefetch(tf.data.AUTOTUNE)


def to_arrays(dataset, limit):
    """First `limit` examples of a batched `(images, masks)` dataset as NumPy arrays."""
    import numpy as np

    images, masks = [], []
    for batch_images, batch_masks in dataset:
        images.append(batch_images.numpy())
        masks.append(batch_masks.numpy())
        if sum(len(i) for i in images) >= limit:
            break
    return np.concatenate(images)[:limit], np.concatenate(masks)[:limit]


def load_data(args):
    """`(train dataset, (eval images, masks), num_classes)` for `args.data`."""
    import tensorflow as tf

    from keras_barlow import transfer

    if args.data == "shapes":
        common = dict(image_size=args.image_size, max_objects=2, size_range=(0.3, 0.5))
        train = transfer.shapes_dataset(args.train_images or 256, seed=args.seed + 1, **common)
        test = transfer.shapes_dataset(args.eval_images, seed=args.seed + 2, **common)
        dataset = tf.data.Dataset.from_tensor_slices((train["images"], train["masks"]))
        dataset = dataset.shuffle(len(train["images"]), seed=args.seed).batch(args.batch_size)
        return dataset, (test["images"], test["masks"]), len(transfer.SHAPE_CLASSES) + 1
    if args.data != "oxford_iiit_pet":
        raise SystemExit(f"--data must be oxford_iiit_pet or shapes, got {args.data!r}")
    common = dict(image_size=args.image_size, batch_size=args.batch_size, data_dir=args.data_dir)
    train = pets_dataset(args.train_split, seed=args.seed, limit=args.train_images, **common)
    evaluation = pets_dataset(args.eval_split, shuffle=False, limit=args.eval_images, **common)
    return train, to_arrays(evaluation, args.eval_images), PETS_NUM_CLASSES


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from keras_barlow import transfer

    keras.utils.set_random_seed(args.seed)
    train, (images, masks), num_classes = load_data(args)
    model = transfer.segmenter(
        args.encoder,
        num_classes,
        library=args.library,
        freeze_encoder=args.freeze_encoder,
        image_shape=(args.image_size, args.image_size, 3),
    )
    transfer.compile_segmenter(model, keras.optimizers.Adam(args.learning_rate))
    before = transfer.mean_iou(model, images, masks, num_classes, batch_size=args.batch_size)
    print(f"DeepLabV3+ ({args.library}) on {args.data}: mean IoU before fine-tuning {before:.4f}", flush=True)
    start = time.time()
    history = model.fit(train, epochs=args.epochs, verbose=args.verbose)
    seconds = time.time() - start
    after = transfer.mean_iou(model, images, masks, num_classes, batch_size=args.batch_size)
    metrics = {
        "data": args.data,
        "library": args.library,
        "encoder": args.encoder,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "train_seconds": round(seconds, 1),
        "loss": [float(v) for v in history.history["loss"]],
        "before": {"mean_iou": before},
        "after": {"mean_iou": after},
    }
    print(f"mean IoU {before:.4f} -> {after:.4f} ({seconds:.0f} s)", flush=True)
    os.makedirs(args.output_dir, exist_ok=True)
    transfer.save_metrics(os.path.join(args.output_dir, "metrics.json"), metrics)
    return metrics


if __name__ == "__main__":
    main()
