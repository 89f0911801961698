"""Rebuilds `savedmodels/digits` (or `mnist5k`) from the quick start's export, after checking its kNN.

    python recipes/ship_digits_encoder.py                      # runs the quick start, ships its export
    python recipes/ship_digits_encoder.py -- --epochs 50       # arguments after -- go to the quick start
    python recipes/ship_digits_encoder.py --export runs/quickstart/encoder   # ship an existing export
    python recipes/ship_digits_encoder.py --reexport           # rewrite savedmodels/digits in the
                                                               # current layout from its encoder.keras + card
    python recipes/ship_digits_encoder.py --output savedmodels/mnist5k --export runs/mnist5k_150/encoder

The quick start records its evaluation in `model_card.json`; this script recomputes the kNN
top-1 (`keras_barlow.evaluation.knn_accuracy` on the digits evaluation pipeline at the
card's input size, train split as memory bank, test split as queries) from the exported
files, refuses to ship if it differs, re-exports the encoder with `export_encoder` (so the
artefact has the current layout: `encoder.keras` carrying its normalisation, `saved_model/`,
`keras_hub_preset/`, `model_card.json`) keeping every recorded figure of the card, adds
the export's README.md and pictures (the quick start writes them for its dataset; a README is
written from the card where the export has none), and swaps the directory in atomically (files
already in the output directory that neither writes are kept; `--reexport` keeps the README).
`tests/integration/test_shipped_artefacts.py` repeats the check on every shipped artefact.
"""

import argparse
import json
import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KNN_TOLERANCE = 0.005  # accuracy points the reproduction may differ by (float summation order)


def card_dataset(card):
    """The quick-start dataset a card was trained on (`digits` or `mnist5k`, from its name)."""
    name = card.get("name", "")
    return "mnist5k" if name.endswith("mnist5k") else "digits"


def knn_on_digits(encoder, card, batch_size=256):
    """kNN-20 top-1 accuracy of `encoder` on the card's quick-start dataset (train → test), with
    that dataset's preset at the card's input size (the quick start's protocol)."""
    from keras_barlow import augment, data, evaluation

    dataset = card_dataset(card)
    height, width = card["input"]["image_shape"][:2]
    views = augment.AugmentationConfig.preset(augment.default_preset(dataset), image_size=(height, width))
    common = dict(batch_size=batch_size, augment=views)
    train = data.labeled_dataset(dataset, split="train", **common)
    test = data.labeled_dataset(dataset, split="test", **common)
    return float(evaluation.knn_accuracy(encoder, train, test, k=(20,))["k20"]["top1"])


def recorded_knn(card):
    """The kNN-20 top-1 a quick-start card records (`evaluation.barlow_twins.knn20_top1`)."""
    return float((card.get("evaluation") or {})["barlow_twins"]["knn20_top1"])


README = """# {dataset}: a Barlow Twins ResNet-18 pretrained by the quick start

Produced by `python recipes/ship_digits_encoder.py`, which runs the quick start
(`{recipe}`) and ships its export. See `model_card.json` for the exact settings.

- `encoder.keras`: `keras_barlow.load_encoder("savedmodels/{dataset}")` (or
  `keras.models.load_model(".../encoder.keras")` after `import keras_barlow`), TensorFlow or JAX.
  Its config holds the normalisation and input size:
  `keras_barlow.export.pretraining_preprocessing(encoder)`.
- `saved_model/`: signature `serving_default`, `images` float32 `(batch, {size}, {size}, 3)` RGB in
  [0, 1] → `features` float32 `(batch, {feature_dim})`; normalisation inside.
- Input: {size}×{size} RGB, normalised with mean {mean} and std {std} (the card's
  `preprocessing`).
- Evaluation: kNN top-1 {knn:.4f} on the {dataset} test split (the quick start's protocol;
  linear-probe figures in the card); re-checked by
  `tests/integration/test_shipped_artefacts.py`.
- `keras_hub_preset/`: `keras_hub.models.Backbone.from_preset(path)` or
  `keras_hub.models.ImageClassifier.from_preset(path, num_classes=10)` (after `import keras_barlow`);
  its image converter resizes raw 0–255 RGB to {size}×{size} and normalises it.
- Transfer: `keras_barlow.detector("savedmodels/{dataset}", num_classes=20)` or
  `keras_barlow.segmenter("savedmodels/{dataset}", num_classes=3)`.
"""


def add_readme(export_dir, staged, card, knn, *, keep_existing):
    """Puts the README (and the pictures) of the export `export_dir` into `staged`.

    The quick start's export has a README.md and pictures that describe its dataset and run:
    those are shipped. With `keep_existing` (re-exporting a shipped directory) nothing is
    written and the shipped README stays. Otherwise the README is written from the card.
    """
    if keep_existing:
        return
    if os.path.isfile(os.path.join(export_dir, "README.md")):
        for name in os.listdir(export_dir):
            if name == "README.md" or name.endswith(".png"):
                shutil.copy2(os.path.join(export_dir, name), os.path.join(staged, name))
        return
    with open(os.path.join(staged, "README.md"), "w") as f:
        f.write(
            README.format(
                dataset=card_dataset(card),
                size=card["input"]["image_shape"][0],
                feature_dim=card["architecture"]["feature_dim"],
                mean=card["preprocessing"]["mean"],
                std=card["preprocessing"]["std"],
                knn=knn,
                recipe=card.get("recipe"),
            )
        )


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    quickstart_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--export", default=None, help="a quick-start export directory (default: run the quick start)"
    )
    parser.add_argument(
        "--reexport",
        action="store_true",
        help="re-export --output itself (no retraining; the card's figures kept)",
    )
    parser.add_argument("--output", default=os.path.join(REPO, "savedmodels", "digits"))
    args = parser.parse_args(argv)
    if args.reexport and args.export is not None:
        parser.error("--reexport rewrites --output from itself; do not combine it with --export")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before the package loads Keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # and TensorFlow, which reads it once

    from keras_barlow import export

    output = os.path.abspath(args.output)
    if args.reexport:
        args.export = output
    elif args.export is None:
        from keras_barlow.cli import quickstart

        run_dir = os.path.join(REPO, "runs", "digits_artefact")
        quickstart.main(["--output-dir", run_dir, *quickstart_args], command="python recipes/quickstart.py")
        args.export = os.path.join(run_dir, "encoder")
    card = export.read_model_card(args.export)
    encoder = export.load_encoder(args.export)
    knn = knn_on_digits(encoder, card)
    if abs(knn - recorded_knn(card)) > KNN_TOLERANCE:
        raise SystemExit(f"kNN top-1 {knn:.4f} does not reproduce the card's {recorded_knn(card):.4f}")
    # Write the export in the current layout to a staging directory (with the README and the
    # output's own extra files), then swap it in atomically.
    export.check_replaceable(output)
    staging = export.staging_directory(output)
    try:
        staged = os.path.join(staging, "digits")
        export.export_encoder(encoder, staged, metadata=export.metadata_from_card(card))
        new_card = export.read_model_card(staged)
        add_readme(args.export, staged, new_card, knn, keep_existing=args.reexport)
        export.carry_over_foreign_files(output, staged)
        export.replace_directory(staged, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(json.dumps({"output": output, "knn20_top1": knn}, indent=2))
    return new_card


if __name__ == "__main__":
    main()
