"""keras-barlow: Barlow Twins self-supervised learning for Keras 3 (TensorFlow and JAX).

The public API is `__all__` below, grouped by role:

- model and objective: `BarlowTwins`, `FeaturePooling`, `build_projector`, the loss
  functions (`barlow_twins_loss`, `BarlowTwinsLoss`, `cross_correlation`, ...);
- optimisation: `LARS`, `WarmupCosine`, `paper_optimizer`, `paper_schedule`;
- encoders: `resnet`, `BarlowResNetBackbone`;
- data and augmentation: `pretraining_dataset`, `labeled_dataset`, `AugmentationConfig`, ...;
- evaluation: `linear_probe`, `knn_accuracy`, `fine_tune`, ...;
- callbacks: `KNNMonitor`, `CrossCorrelationMonitor`, `NonFiniteLossGuard`, and the
  fault-tolerance callbacks `BackupAndRestore`, `PeriodicCheckpoint`;
- export and transfer: `export_encoder`, `load_encoder`, `detector`, `segmenter`, ...;
- distribution: `setup_hardware`, `get_strategy`, `jax_distribution`, ....

Internals (`unpack_views`, `shapes_dataset`, `crop_pair`, `finish_views`, `throughput`, ...)
stay importable from their modules (`keras_barlow.models.view_pairs`, `keras_barlow.data`, ...).

Every module is imported eagerly, with no lazy attribute table: with TensorFlow installed,
`import keras_hub` (the encoders) imports it whatever the Keras backend, so deferring
modules would save no import time, and eager imports register every serialisable class
before `keras.models.load_model` looks one up. TensorFlow stays optional for the JAX path:
only the `tf.data` modules (`keras_barlow.data`, `keras_barlow.augment`) need it, and their
names are exported when TensorFlow can be imported.
"""

# First, before anything imports TensorFlow: oneDNN on where TensorFlow leaves it off.
from keras_barlow import _onednn  # isort: skip

_onednn.enable_onednn()

from keras_barlow.backbones import BarlowResNetBackbone, resnet
from keras_barlow.callbacks import CrossCorrelationMonitor, KNNMonitor, LinearProbeMonitor, NonFiniteLossGuard
from keras_barlow.distribute import (
    Hardware,
    get_strategy,
    hide_accelerators_from_tensorflow,
    initialize_jax_processes,
    jax_distribution,
    select_jax_devices,
    setup_hardware,
)
from keras_barlow.evaluation import balanced_subset, extract_features, fine_tune, knn_accuracy, linear_probe
from keras_barlow.export import export_encoder, load_encoder, model_card, read_model_card
from keras_barlow.fault_tolerance import (
    BackupAndRestore,
    CorruptCheckpointError,
    PeriodicCheckpoint,
    resumable_dataset,
)
from keras_barlow.layers import FeaturePooling, build_projector
from keras_barlow.losses import (
    BarlowTwinsLoss,
    barlow_twins_loss,
    barlow_twins_terms,
    cross_correlation,
    embedding_std,
    loss_terms_from_correlation,
    standardize,
)
from keras_barlow.models.barlow_twins import BarlowTwins
from keras_barlow.optimizers import LARS, WarmupCosine, paper_optimizer, paper_schedule
from keras_barlow.transfer import compile_detector, compile_segmenter, detector, segmenter, transfer_backbone

__version__ = "0.3.0"

# Grouped by role, as in the module docstring (hence not sorted).
__all__ = [  # noqa: RUF022
    # model and objective
    "BarlowTwins",
    "FeaturePooling",
    "build_projector",
    "BarlowTwinsLoss",
    "barlow_twins_loss",
    "barlow_twins_terms",
    "cross_correlation",
    "embedding_std",
    "loss_terms_from_correlation",
    "standardize",
    # optimisation
    "LARS",
    "WarmupCosine",
    "paper_optimizer",
    "paper_schedule",
    # encoders
    "BarlowResNetBackbone",
    "resnet",
    # evaluation
    "balanced_subset",
    "extract_features",
    "fine_tune",
    "knn_accuracy",
    "linear_probe",
    # callbacks, fault tolerance
    "CrossCorrelationMonitor",
    "KNNMonitor",
    "LinearProbeMonitor",
    "NonFiniteLossGuard",
    "BackupAndRestore",
    "CorruptCheckpointError",
    "PeriodicCheckpoint",
    "resumable_dataset",
    # export and transfer
    "export_encoder",
    "load_encoder",
    "model_card",
    "read_model_card",
    "compile_detector",
    "compile_segmenter",
    "detector",
    "segmenter",
    "transfer_backbone",
    # distribution
    "Hardware",
    "get_strategy",
    "hide_accelerators_from_tensorflow",
    "initialize_jax_processes",
    "jax_distribution",
    "select_jax_devices",
    "setup_hardware",
    "__version__",
]

# The package imports on a JAX-only machine too; with TensorFlow installed, keras_hub has
# already imported it by now, so this costs nothing.
try:
    import tensorflow  # noqa: F401
except ImportError:
    HAS_TENSORFLOW = False
else:
    HAS_TENSORFLOW = True
if HAS_TENSORFLOW:
    from keras_barlow.augment import AugmentationConfig, ViewConfig, two_views
    from keras_barlow.data import (
        ImageFolder,
        labeled_dataset,
        load_digits_arrays,
        pretraining_dataset,
        scan_image_folder,
    )

    __all__ += [  # data and augmentation
        "AugmentationConfig",
        "ImageFolder",
        "ViewConfig",
        "labeled_dataset",
        "load_digits_arrays",
        "pretraining_dataset",
        "scan_image_folder",
        "two_views",
    ]
