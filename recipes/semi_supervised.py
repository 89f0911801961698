"""Semi-supervised evaluation: fine-tune an encoder + linear head on 1 % or 10 % of the labels.

Each run draws its own class-balanced labelled subset (deterministic per seed); encoder and
head train end to end with SGD (momentum 0.9, cosine decay) at two learning rates — the
paper's 1 % run: 20 epochs, encoder 0.002, head 0.5, no weight decay. One draw of a few
labels is noisy, so the recipe repeats the run for --seeds seeds (default 10) and reports
mean ± sample std (`keras_barlow.evaluation.fine_tune_over_seeds`).

    python recipes/semi_supervised.py --encoder savedmodels/digits_resnet18 --fraction 0.1
    python recipes/semi_supervised.py --encoder my_export --dataset imagenet2012 \\
        --data-dir gs://bucket/tfds --fraction 0.01
    python recipes/semi_supervised.py --smoke

(The paper's ImageNet 1 %/10 % subsets are SimCLR's fixed file lists; this recipe draws its
own balanced subsets of the TFDS split.) Prints top-1 / top-5 on the test split as
mean ± std and writes them, with the per-seed values, to --output as JSON.
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
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--test-split", default="test")
    parser.add_argument(
        "--preset", default=None, help="preset when the model card has no augmentation config"
    )
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument(
        "--fraction", type=float, default=0.01, help="labelled fraction per class (0.01 or 0.1)"
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--encoder-lr", type=float, default=0.002)
    parser.add_argument("--head-lr", type=float, default=0.5)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument(
        "--augment", action="store_true", help="random resized crop (+ flip) on training batches"
    )
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument(
        "--seeds", type=int, default=10, help="runs, each with its own subset (seeds seed, seed+1, ...)"
    )
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny end-to-end run on digits with a random encoder"
    )
    args = parser.parse_args(argv)
    if not args.encoder and not args.smoke:
        parser.error("--encoder is required (or --smoke)")
    return args


def main(argv=None):
    args = parse_args(argv)
    from linear_eval import load  # same loading rules as the linear evaluation

    from keras_barlow import data, evaluation

    start = time.time()
    encoder, config = load(args)
    train = data.labeled_dataset(
        args.dataset,
        split=args.train_split,
        batch_size=args.batch_size,
        augment=config,
        data_dir=args.data_dir,
    )
    test = data.labeled_dataset(
        args.dataset,
        split=args.test_split,
        batch_size=args.batch_size,
        augment=config,
        data_dir=args.data_dir,
    )
    if args.smoke:
        test = test.take(1)
    augment = (
        evaluation.crop_flip_augmentation(
            scale=config.view_a.crop_scale, flip_prob=0.0 if args.no_flip else 0.5
        )
        if args.augment
        else None
    )
    seeds = range(args.seed, args.seed + (2 if args.smoke else args.seeds))
    metrics = evaluation.fine_tune_over_seeds(
        encoder,
        train,
        args.fraction,
        test_data=test,
        seeds=seeds,
        epochs=1 if args.smoke else args.epochs,
        batch_size=args.batch_size,
        encoder_learning_rate=args.encoder_lr,
        head_learning_rate=args.head_lr,
        weight_decay=args.weight_decay,
        augment=augment,
    )
    metrics.update(dataset=args.dataset, seconds=round(time.time() - start, 1))
    for name in ("top1", "top5"):
        summary = metrics[name]
        print(f"{name}: {summary['mean']:.4f} ± {summary['std']:.4f} over {len(metrics['seeds'])} seeds")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(metrics, f, indent=2)
    return metrics


if __name__ == "__main__":
    main()
