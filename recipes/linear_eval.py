"""Linear evaluation, few-shot probe and weighted kNN of a pretrained encoder on frozen features.

The encoder is frozen and runs in inference mode; its features are computed once,
L2-normalised and cached, then evaluated with `keras_barlow.evaluation.evaluate_representation`:
a converged L2-regularised logistic regression (C chosen on a stratified validation split,
refit on all training data), the same probe on `--shots` labelled images per class over
`--seeds` draws (mean ± std), and weighted kNN at k=20 and 200. `--protocol sgd` replaces
the linear probe by the paper's (SGD, momentum 0.9, cosine decay, 100 epochs, batch 256),
meant for ImageNet-scale features; `--augmentations N` fits the probe on N cached random
resized crop (+ flip) copies of the training set.

    # an exported encoder (its model card gives the input size and normalisation)
    python recipes/linear_eval.py --encoder savedmodels/digits_resnet18 --dataset digits
    # a TFDS dataset prepared in --data-dir (nothing is downloaded)
    python recipes/linear_eval.py --encoder my_export --dataset cifar10 --data-dir ~/tensorflow_datasets
    python recipes/linear_eval.py --smoke   # seconds: random small encoder on digits

Prints a table (few-shot as mean ± std) and the protocol, and writes the record to --output as JSON.
"""

import argparse
import json
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", help="export directory (keras_barlow.export_encoder) or .keras file")
    parser.add_argument("--dataset", default="digits", help="'digits' or a TFDS name (default: digits)")
    parser.add_argument("--data-dir", default=None, help="TFDS data directory (local or gs://)")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--test-split", default="test")
    parser.add_argument(
        "--preset",
        default=None,
        help="augmentation preset for the input size/normalisation when the model card has none "
        "(default: digits for digits, else imagenet)",
    )
    parser.add_argument("--image-size", type=int, default=None, help="input size (default: the model card's)")
    parser.add_argument(
        "--protocol",
        choices=("logistic", "sgd"),
        default="logistic",
        help="linear probe: converged logistic regression (default) or the paper's SGD",
    )
    parser.add_argument("--epochs", type=int, default=None, help="sgd: epochs (default 100)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="sgd: classifier learning rate (default: 3.0 for the L2-normalised features)",
    )
    parser.add_argument("--weight-decay", type=float, default=None, help="sgd: weight decay (default 1e-6)")
    parser.add_argument(
        "--shots", type=int, default=5, help="labelled images per class of the few-shot probe"
    )
    parser.add_argument("--seeds", type=int, default=10, help="few-shot draws (mean ± std over them)")
    parser.add_argument(
        "--augmentations",
        type=int,
        default=0,
        help="cached random-resized-crop copies of the training set (0: clean images)",
    )
    parser.add_argument(
        "--no-flip", action="store_true", help="no horizontal flips in --augmentations (chiral data)"
    )
    parser.add_argument(
        "--knn", action="store_true", help="accepted for old command lines: kNN is always reported"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="write the metrics to this JSON file")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny end-to-end run on digits with a random encoder"
    )
    args = parser.parse_args(argv)
    if not args.encoder and not args.smoke:
        parser.error("--encoder is required (or --smoke)")
    if args.protocol == "logistic" and any(
        v is not None for v in (args.epochs, args.learning_rate, args.weight_decay)
    ):
        parser.error("--epochs, --learning-rate and --weight-decay set the SGD probe: add --protocol sgd")
    return args


def load(args):
    """Returns `(encoder, AugmentationConfig)` for the evaluation inputs."""
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


def main(argv=None):
    args = parse_args(argv)
    from keras_barlow import data, evaluation

    start = time.time()
    encoder, config = load(args)
    splits = {}
    for name, split in (("train", args.train_split), ("test", args.test_split)):
        dataset = data.labeled_dataset(
            args.dataset, split=split, batch_size=args.batch_size, augment=config, data_dir=args.data_dir
        )
        if args.smoke:
            dataset = dataset.take(1)
        splits[name] = dataset
    train = evaluation.extract_features(encoder, splits["train"])
    test = evaluation.extract_features(encoder, splits["test"])
    seeds = range(2 if args.smoke else args.seeds)
    metrics = evaluation.evaluate_representation(None, train, test, shots=args.shots, seeds=seeds)
    if args.protocol == "sgd" or args.augmentations:
        augment = (
            evaluation.crop_flip_augmentation(
                scale=config.view_a.crop_scale, flip_prob=0.0 if args.no_flip else 0.5
            )
            if args.augmentations
            else None
        )
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
            augment=augment,
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
    if args.output:
        with open(args.output, "w") as f:
            json.dump(metrics, f, indent=2)
    return metrics


if __name__ == "__main__":
    main()
