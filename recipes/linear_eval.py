"""Linear evaluation (and weighted kNN) of a pretrained encoder on frozen features.

The encoder is frozen and runs in inference mode; its features are computed once,
L2-normalised and cached; a linear softmax classifier is trained on them (SGD, momentum
0.9, cosine decay, 100 epochs, batch 256; `--augmentations N` adds the paper's random
resized crop + flip as N cached augmented copies of the training set).

    # an exported encoder (its model card gives the input size and normalisation)
    python recipes/linear_eval.py --encoder savedmodels/digits_resnet18 --dataset digits
    # a TFDS dataset prepared in --data-dir (nothing is downloaded)
    python recipes/linear_eval.py --encoder my_export --dataset cifar10 --data-dir ~/tensorflow_datasets
    python recipes/linear_eval.py --smoke   # seconds: random small encoder on digits

Prints top-1 / top-5 (and kNN top-1 with --knn) and writes them to --output as JSON.
"""

import argparse
import json
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", help="export directory (keras_barlow.export_encoder) or .keras file")
    parser.add_argument("--dataset", default="digits", help="'digits' or a TFDS name (default: digits)")
    parser.add_argument("--data-dir", default=None, help="TFDS data directory (local or gs://)")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--test-split", default="test")
    parser.add_argument("--preset", default=None,
                        help="augmentation preset for the input size/normalisation when the model card has none "
                             "(default: digits for digits, else imagenet)")
    parser.add_argument("--image-size", type=int, default=None, help="input size (default: the model card's)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="classifier learning rate (default: 3.0 for the L2-normalised features)")
    parser.add_argument("--weight-decay", type=float, default=1e-6)
    parser.add_argument("--augmentations", type=int, default=0,
                        help="cached random-resized-crop copies of the training set (0: clean images)")
    parser.add_argument("--no-flip", action="store_true", help="no horizontal flips in --augmentations (chiral data)")
    parser.add_argument("--knn", action="store_true", help="also report weighted kNN (k=200, T=0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="write the metrics to this JSON file")
    parser.add_argument("--smoke", action="store_true", help="tiny end-to-end run on digits with a random encoder")
    args = parser.parse_args(argv)
    if not args.encoder and not args.smoke:
        parser.error("--encoder is required (or --smoke)")
    return args


def load(args):
    """Returns `(encoder, AugmentationConfig)` for the evaluation inputs."""
    from keras_barlow import augment, export

    preset = args.preset or ("digits" if args.dataset == "digits" else "imagenet")
    if args.smoke:
        from keras_barlow.backbones import resnet

        size = args.image_size or 16
        return resnet(18, (size, size, 3), small_images=True, width=4), augment.AugmentationConfig.preset(preset, image_size=size)
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


def main(argv=None):
    args = parse_args(argv)
    from keras_barlow import data, evaluation

    start = time.time()
    encoder, config = load(args)
    splits = {}
    for name, split in (("train", args.train_split), ("test", args.test_split)):
        dataset = data.labeled_dataset(args.dataset, split=split, batch_size=args.batch_size, augment=config,
                                       data_dir=args.data_dir)
        if args.smoke:
            dataset = dataset.take(1)
        splits[name] = dataset
    epochs = 2 if args.smoke else args.epochs
    augment = evaluation.crop_flip_augmentation(
        scale=config.view_a.crop_scale, flip_prob=0.0 if args.no_flip else 0.5
    ) if args.augmentations else None
    train = evaluation.extract_features(encoder, splits["train"])
    test = evaluation.extract_features(encoder, splits["test"])
    probe_train = splits["train"] if args.augmentations else train
    metrics = {
        "linear": evaluation.linear_probe(
            encoder, probe_train, test, epochs=epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
            weight_decay=args.weight_decay, augmentations=args.augmentations, augment=augment, seed=args.seed,
        )
    }
    if args.knn:
        metrics["knn"] = evaluation.knn_accuracy(None, train, test)
    metrics.update(dataset=args.dataset, train_examples=len(train), test_examples=len(test),
                   feature_dim=int(train.features.shape[1]), seconds=round(time.time() - start, 1))
    print(json.dumps(metrics, indent=2))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(metrics, f, indent=2)
    return metrics


if __name__ == "__main__":
    main()
