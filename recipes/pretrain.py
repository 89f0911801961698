"""Barlow Twins pretraining: any dataset, backbone, backend and hardware, resumable.

    python recipes/pretrain.py --dataset cifar10 --backbone resnet18 --small-images \\
        --image-size 32 --epochs 1000 --batch-size 256 --output-dir runs/cifar10
    python recipes/pretrain.py --smoke   # digits, a tiny network, 2 steps (CI)

The same as `keras-barlow pretrain`; `--help` lists the arguments and what is written.
"""

import os

if __name__ == "__main__":  # TensorFlow reads its C++ log level once, when it loads
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_barlow.cli import pretrain


def main(argv=None):
    return pretrain.main(argv, command="python recipes/pretrain.py")


if __name__ == "__main__":
    main()
