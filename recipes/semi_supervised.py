"""Semi-supervised evaluation: fine-tune an encoder + linear head on 1 % or 10 % of the labels,
over several seeds (mean ± std).

    python recipes/semi_supervised.py --encoder savedmodels/digits --fraction 0.1
    python recipes/semi_supervised.py --smoke

The same as `keras-barlow evaluate semi-supervised`; `--help` lists the arguments.
"""

import os

if __name__ == "__main__":  # TensorFlow reads its C++ log level once, when it loads
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_barlow.cli import evaluate


def main(argv=None):
    return evaluate.semi_supervised_main(argv, command="python recipes/semi_supervised.py")


if __name__ == "__main__":
    main()
