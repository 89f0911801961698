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
        data="oxford_iiit_pet",
        data_help="'oxford_iiit_pet' (TFDS) or 'shapes' (generated)",
        image_size=256,
        epochs=20,
        output_dir=os.path.join("runs", "transfer_segmentation"),
        freeze_help="train only the decoder",
        smoke_help="tiny CPU run on generated shapes: 64 px, 48 images",
    )
    return fine_tune.parse_transfer_args(parser, argv, smoke_epochs=5)


def load_data(args):
    """`(train dataset, (eval images, masks), num_classes)` for `args.data`."""
    import tensorflow as tf

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


def main(argv=None):
    args = parse_args(argv)
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

    def evaluate():
        return {"mean_iou": transfer.mean_iou(model, images, masks, num_classes, batch_size=args.batch_size)}

    title = f"DeepLabV3+ ({args.library})"
    return fine_tune.fine_tune_and_report(model, train, evaluate, args, title=title, printed=("mean_iou",))


if __name__ == "__main__":
    main()
