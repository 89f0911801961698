"""CIFAR-10 with a ResNet-18 on one GPU, the common small-scale Barlow Twins benchmark, then the
linear evaluation of the frozen encoder.

    python recipes/cifar10_resnet18.py --output-dir runs/cifar10_resnet18

Settings: solo-learn's Barlow Twins CIFAR recipe (vturrisi/solo-learn,
`scripts/pretrain/cifar/barlow.yaml`): ResNet-18 with the CIFAR stem (3×3 convolution,
no max-pool), projector 2048-2048-2048, λ = 0.0051, loss scale 0.1, batch 256, 1000
epochs, LARS with learning rate 0.3 for all parameters (biases and batch-norm parameters
without LARS adaptation and weight decay), weight decay 1e-4, trust coefficient 0.02, 10
warm-up epochs then cosine decay; augmentations of the `cifar` preset at 32 px. CIFAR-10
must be prepared for TFDS in `--data-dir` (nothing is downloaded at run time).

Reference result: solo-learn reports 92.1 % linear top-1 after 1000 epochs (not measured
with this package). The linear evaluation at the end trains a softmax classifier on the
frozen, L2-normalised features of the training set for `--linear-epochs` epochs
(`keras_barlow.evaluation.linear_probe`) and reports top-1/top-5 on the test set in
`summary.json`. The other arguments are those of `keras-barlow pretrain`.

`--smoke`: digits, a narrow network, 2 steps and a 1-epoch linear probe (CI).
"""

import os

if __name__ == "__main__":  # TensorFlow reads its C++ log level once, when it loads
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_barlow.cli import pretrain

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
# Over keras_barlow.cli.pretrain_arguments.SMOKE:
SMOKE = {"output_dir": "runs/smoke_cifar10", "no_export": True, "linear_epochs": 1}


def main(argv=None):
    return pretrain.main(
        argv,
        command="python recipes/cifar10_resnet18.py",
        description=__doc__,
        defaults=SOLO_LEARN,
        smoke=SMOKE,
        linear_epochs=100,
    )


if __name__ == "__main__":
    main()
