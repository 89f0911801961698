"""CIFAR-10 with a ResNet-18 on one GPU — the common small-scale Barlow Twins benchmark —
then the linear evaluation of the frozen encoder.

    python recipes/cifar10_resnet18.py --output-dir runs/cifar10_resnet18

Settings: solo-learn's Barlow Twins CIFAR recipe (vturrisi/solo-learn,
`scripts/pretrain/cifar/barlow.yaml`): ResNet-18 with the CIFAR stem (3×3 convolution,
no max-pool), projector 2048-2048-2048, λ = 0.0051, loss scale 0.1, batch 256, 1000
epochs, LARS with learning rate 0.3 for all parameters (biases and batch-norm parameters
without LARS adaptation and weight decay), weight decay 1e-4, trust coefficient 0.02, 10
warm-up epochs then cosine decay; augmentations of the `cifar` preset at 32 px. CIFAR-10
must be prepared for TFDS in `--data-dir` (nothing is downloaded at run time).

Target (not measured here — this project has no GPU run of it): ≥ 92 % linear top-1;
solo-learn reports 92.1 % after 1000 epochs. The linear evaluation at the end trains a
softmax classifier on the frozen, L2-normalised features of the training set for 100
epochs (`keras_barlow.evaluation.linear_probe`) and reports top-1/top-5 on the test set
in `summary.json`.

`--smoke`: digits, a narrow network, 2 steps and a 1-epoch linear probe (CI).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain  # noqa: E402

SOLO_LEARN = dict(
    dataset="cifar10",
    preset="cifar",
    image_size=32,
    backbone="resnet18",
    small_images=True,
    projector="2048,2048,2048",
    lambd=0.0051,
    scale_loss=0.1,
    epochs=1000,
    batch_size=256,
    learning_rate=0.3,
    bias_learning_rate=0.3,
    weight_decay=1e-4,
    eta=0.02,
    warmup_epochs=10,
    output_dir="runs/cifar10_resnet18",
    checkpoint_every=50,
    keep_checkpoints=3,
)
SMOKE = {**pretrain.SMOKE, "output_dir": "runs/smoke_cifar10", "no_export": True}


def main(argv=None):
    parser = pretrain.build_parser(__doc__, **SOLO_LEARN)
    parser.add_argument("--linear-epochs", type=int, default=100, help="linear evaluation epochs (0: skip)")
    args = pretrain.parse(argv, parser, smoke={**SMOKE, "linear_epochs": 1})
    summary, model = pretrain.run(args)
    if args.linear_epochs and summary["worker_index"] == 0:  # the chief evaluates
        from keras_barlow.data import default_preset, labeled_dataset
        from keras_barlow.evaluation import linear_probe

        encoder = model.encoder
        preset = args.preset or default_preset(args.dataset)
        data = dict(batch_size=256, image_size=args.image_size, preset=preset, data_dir=args.data_dir)
        result = linear_probe(
            encoder,
            labeled_dataset(args.dataset, split=args.split, **data),
            labeled_dataset(args.dataset, split="test", **data),
            epochs=args.linear_epochs,
        )
        summary["linear_eval"] = {**result, "epochs": args.linear_epochs}
        with open(os.path.join(os.path.abspath(args.output_dir), "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        print(f"linear evaluation: top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f}")
    return summary


if __name__ == "__main__":
    main()
