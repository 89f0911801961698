"""keras-barlow: Barlow Twins self-supervised learning for Keras 3 (TensorFlow and JAX).

The model, loss, projector, optimizers and backbones import without TensorFlow (so the
JAX backend needs no TF for them); the `tf.data`, SavedModel and `tf.distribute` parts are
imported on first use.
"""

import importlib

from keras_barlow.losses import (
    BarlowTwinsLoss,
    barlow_twins_loss,
    barlow_twins_terms,
    cross_correlation,
    loss_terms_from_correlation,
    standardize,
)
from keras_barlow.model import BarlowTwins, FeaturePooling, NonFiniteLossGuard, embedding_std, unpack_views
from keras_barlow.projector import build_projector
from keras_barlow.optimizers import LARS, WarmupCosine, paper_optimizer, paper_schedule
from keras_barlow.backbones import BarlowResNetBackbone, resnet

# Imported eagerly (not lazily) so that `keras.models.load_model` finds the registered
# classes that saved transfer models name.
from keras_barlow import transfer as _transfer  # noqa: E402,F401

__version__ = "0.1.0"

# name -> module, imported on first access (these modules need TensorFlow or are heavy).
_LAZY = {
    **dict.fromkeys(
        ["pretraining_dataset", "labeled_dataset", "load_digits_arrays", "scan_image_folder",
         "ImageFolder", "default_preset", "throughput"],
        "data",
    ),
    **dict.fromkeys(["AugmentationConfig", "ViewConfig", "two_views", "crop_pair", "finish_views"], "augment"),
    **dict.fromkeys(
        ["linear_probe", "knn_accuracy", "fine_tune", "extract_features", "balanced_subset"], "evaluation"
    ),
    **dict.fromkeys(["KNNMonitor", "CrossCorrelationMonitor"], "callbacks"),
    **dict.fromkeys(["export_encoder", "load_encoder", "read_model_card", "model_card"], "export"),
    **dict.fromkeys(["detector", "segmenter", "compile_detector", "compile_segmenter", "transfer_backbone", "shapes_dataset"], "transfer"),
    **dict.fromkeys(
        ["get_strategy", "setup_hardware", "Hardware", "jax_distribution", "initialize_jax_processes",
         "select_jax_devices", "hide_accelerators_from_tensorflow"],
        "distribute",
    ),
    **dict.fromkeys(["BackupAndRestore", "PeriodicCheckpoint", "CorruptCheckpointError", "resumable_dataset"], "fault_tolerance"),
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_barlow' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"keras_barlow.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
