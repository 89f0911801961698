"""Quick start: pretrain Barlow Twins on scikit-learn's digits or MNIST-5k (nothing to download),
evaluate it against random init and raw pixels, export it.

    python recipes/quickstart.py                      # digits, a few minutes on a CPU
    python recipes/quickstart.py --data mnist5k --output-dir runs/mnist5k
    python recipes/quickstart.py --smoke              # seconds: checks the pipeline

The same as `keras-barlow quickstart`; `--help` lists the arguments and what is written.
"""

import os

if __name__ == "__main__":  # TensorFlow reads its C++ log level once, when it loads
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_barlow.cli import quickstart


def main(argv=None):
    return quickstart.main(argv, command="python recipes/quickstart.py")


if __name__ == "__main__":
    main()
