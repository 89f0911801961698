"""Fine-tune a pretrained encoder for object detection: PASCAL VOC (TFDS) or generated shapes,
COCO box mAP before and after.

    python recipes/transfer_detection.py --encoder runs/pretrain/encoder --data voc/2007 --epochs 30
    python recipes/transfer_detection.py --encoder savedmodels/digits --smoke   # shapes, 64 px, CPU

The same as `keras-barlow transfer detection`; `--help` lists the arguments.
"""

import os

if __name__ == "__main__":  # read once, when Keras and TensorFlow load
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # KerasCV (the default --library) needs it
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_barlow.cli import transfer


def main(argv=None):
    return transfer.detection_main(argv, command="python recipes/transfer_detection.py")


if __name__ == "__main__":
    main()
