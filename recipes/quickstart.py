"""Quick start: pretrain Barlow Twins on real data with nothing to download.

With no arguments it pretrains a narrow ResNet-18 on scikit-learn's bundled handwritten
digits (8×8 → 32 px) on the CPU in a few minutes, prints the loss and the collapse
indicator per epoch, a kNN accuracy of the frozen features on the fixed test split, and
saves the encoder to `runs/quickstart/encoder.keras`.

    python recipes/quickstart.py
    python recipes/quickstart.py --epochs 50 --batch-size 256 --output-dir runs/digits
    python recipes/quickstart.py --dataset cifar10 --data-dir ~/tensorflow_datasets \
        --preset cifar --width 64 --epochs 200 --projector 2048,2048,2048
    python recipes/quickstart.py --dataset /path/to/images --preset imagenet --image-size 96
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

BACKBONES = {"resnet18": 18, "resnet34": 34, "resnet50": 50}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits", help="'digits', a TFDS name, or an image directory")
    parser.add_argument("--data-dir", default=None, help="TFDS data directory (local or gs://)")
    parser.add_argument("--split", default="train", help="pretraining split (default: train)")
    parser.add_argument("--test-split", default="test", help="labelled split for the kNN check ('' to skip)")
    parser.add_argument("--preset", default=None, help="augmentation preset: digits, cifar, imagenet (default: digits for digits, cifar for cifar*, else imagenet)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128, help="global batch size")
    parser.add_argument("--image-size", type=int, default=None, help="default: the preset's (32 / 32 / 224)")
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default="resnet18")
    parser.add_argument("--width", type=int, default=16, help="ResNet width (standard 64; 16 is fast on CPUs)")
    parser.add_argument("--projector", default="512,512,512", help="projector sizes, comma-separated (paper: 8192,8192,8192)")
    parser.add_argument("--lambd", type=float, default=None, help="off-diagonal weight (default: the official 0.0051)")
    parser.add_argument("--learning-rate", type=float, default=0.2, help="LARS learning rate of the weights per 256 images (paper: 0.2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=os.path.join("runs", "quickstart"))
    parser.add_argument("--verbose", type=int, default=1, help="Keras fit verbosity: 1 progress bar, 2 one line per epoch")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's C++ info/warning chatter
    import keras

    import keras_barlow
    from keras_barlow import augment, backbones, data, evaluation, optimizers

    keras.utils.set_random_seed(args.seed)
    preset = args.preset or data.default_preset(args.dataset)
    config = augment.AugmentationConfig.preset(preset)
    if args.image_size:
        config = config.replace(image_size=args.image_size)
    height, width = config.image_size
    projector = tuple(int(d) for d in args.projector.split(","))

    train = data.pretraining_dataset(
        args.dataset, batch_size=args.batch_size, augment=config, split=args.split, seed=args.seed, data_dir=args.data_dir
    )
    steps = int(train.cardinality())
    if steps < 0:  # e.g. folders (undecodable files are skipped): count once
        print("counting batches ...", flush=True)
        steps = sum(1 for _ in train)

    encoder = backbones.resnet(
        BACKBONES[args.backbone], (height, width, 3), small_images=max(height, width) <= 96, width=args.width
    )
    model_kwargs = {} if args.lambd is None else {"lambd": args.lambd}
    model = keras_barlow.BarlowTwins(encoder, projector_dims=projector, **model_kwargs)
    model.compile(
        optimizer=optimizers.paper_optimizer(
            args.batch_size, args.epochs, steps, weight_learning_rate=args.learning_rate
        )
    )
    print(
        f"pretraining {args.backbone} (width {args.width}, {encoder.count_params():,} parameters) on "
        f"{args.dataset!r}: {steps} steps/epoch of {args.batch_size} pairs at {height}x{width} px, "
        f"{args.epochs} epochs, augmentation preset {preset!r}",
        flush=True,
    )
    start = time.time()
    history = model.fit(train, epochs=args.epochs, verbose=args.verbose)
    seconds = time.time() - start

    os.makedirs(args.output_dir, exist_ok=True)
    encoder_path = os.path.join(args.output_dir, "encoder.keras")
    encoder.save(encoder_path)
    results = {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "train_seconds": round(seconds, 1),
        "loss": float(history.history["loss"][-1]),
        "embedding_std": float(history.history["embedding_std"][-1]),
        "collapse_reference": round(1.0 / projector[-1] ** 0.5, 4),
        "encoder": encoder_path,
    }
    if args.test_split:
        try:
            labeled = dict(batch_size=256, augment=config, data_dir=args.data_dir)
            train_eval = data.labeled_dataset(args.dataset, split=args.split, **labeled)
            test_eval = data.labeled_dataset(args.dataset, split=args.test_split, **labeled)
        except ValueError as error:  # no labels or no such split
            print(f"skipping the kNN check: {error}")
        else:
            knn = evaluation.knn_accuracy(encoder, train_eval, test_eval)
            results["knn_top1"] = round(knn["top1"], 4)
    print(json.dumps(results, indent=2))
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
