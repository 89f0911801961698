"""Linear evaluation, few-shot probe and weighted kNN of a pretrained encoder on frozen features.

    python recipes/linear_eval.py --encoder savedmodels/digits --dataset digits
    python recipes/linear_eval.py --smoke   # seconds: random small encoder on digits

The same as `keras-barlow evaluate linear`; `--help` lists the arguments and the protocol.
"""

import os

if __name__ == "__main__":  # TensorFlow reads its C++ log level once, when it loads
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_barlow.cli import evaluate


def main(argv=None):
    return evaluate.linear_main(argv, command="python recipes/linear_eval.py")


if __name__ == "__main__":
    main()
