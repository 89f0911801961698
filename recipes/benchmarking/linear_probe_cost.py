"""Seconds per `LinearProbeMonitor` evaluation, built as the quick start builds it.

    python -m benchmarking.linear_probe_cost --encoder savedmodels/mnist5k --dataset mnist5k
    (from recipes/; `--smoke`: the digits encoder, fixed C, one evaluation)

Prints one JSON line: the split sizes, the seconds of each evaluation with the quick start's
C grid and with a fixed C, the probe's top-1 and the load average.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def measure(encoder_dir, dataset, repeats, grid=True, fixed_c=1000.0):
    """`{"train", "validation", "results", "load"}` for `repeats` evaluations of each setting."""
    import numpy as np

    import keras_barlow
    from keras_barlow import data, evaluation, export
    from keras_barlow.augment import AugmentationConfig, default_preset
    from keras_barlow.callbacks import LinearProbeMonitor

    encoder = keras_barlow.load_encoder(encoder_dir)
    size = export.read_model_card(encoder_dir)["input"]["image_shape"][0]
    views = AugmentationConfig.preset(default_preset(dataset), image_size=size)
    labeled = data.labeled_dataset(dataset, split="train", batch_size=256, augment=views)
    images, labels = (np.concatenate(parts) for parts in zip(*evaluation.iterate_batches(labeled)))
    fit, held_out = evaluation.stratified_split(labels, 0.2, seed=0)
    settings = ([("C grid (the quick start's default)", {})] if grid else []) + [
        (f"fixed C={fixed_c:g}", {"C": fixed_c})
    ]
    results = {}
    for name, kwargs in settings:
        monitor = LinearProbeMonitor(
            (images[fit], labels[fit]), (images[held_out], labels[held_out]), **kwargs
        )
        monitor.set_model(encoder)
        monitor.params = {"epochs": 1}
        logs = {}
        for _ in range(repeats):
            monitor.on_epoch_end(0, logs)
        results[name] = {
            "seconds": [round(s, 1) for s in monitor.seconds],
            "linear_top1": logs["linear_top1"],
        }
    return {
        "train": len(labels[fit]),
        "validation": len(labels[held_out]),
        "results": results,
        "load": os.getloadavg(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="savedmodels/mnist5k", help="an export directory")
    parser.add_argument("--dataset", default="mnist5k", help="its labelled dataset (digits, mnist5k, …)")
    parser.add_argument("--repeats", type=int, default=3, help="evaluations per setting")
    parser.add_argument("--smoke", action="store_true", help="digits, fixed C only, one evaluation")
    args = parser.parse_args(argv)
    if args.smoke:
        args.encoder, args.dataset, args.repeats = "savedmodels/digits", "digits", 1
    result = measure(args.encoder, args.dataset, args.repeats, grid=not args.smoke)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
