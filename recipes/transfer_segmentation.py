"""Fine-tune a pretrained encoder for semantic segmentation: Oxford-IIIT Pets (TFDS) or
generated shapes, mean IoU before and after.

    python recipes/transfer_segmentation.py --encoder runs/pretrain/encoder --data oxford_iiit_pet
    python recipes/transfer_segmentation.py --encoder savedmodels/digits --smoke   # shapes, 64 px, CPU

The same as `keras-barlow transfer segmentation`; `--help` lists the arguments.
"""

import os

if __name__ == "__main__":  # read once, when Keras and TensorFlow load
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # KerasCV (the default --library) needs it
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_barlow.cli import transfer


def main(argv=None):
    return transfer.segmentation_main(argv, command="python recipes/transfer_segmentation.py")


if __name__ == "__main__":
    main()
