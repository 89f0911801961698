"""The public API: `keras_barlow.__all__`."""

import importlib

import pytest

import keras_barlow

# Internals that left the top level, and the modules that keep them.
INTERNALS = {
    "unpack_views": "keras_barlow.models.view_pairs",
    "embedding_std": "keras_barlow.losses",
    "shapes_dataset": "keras_barlow.transfer",
    "crop_pair": "keras_barlow.augment",
    "finish_views": "keras_barlow.augment",
    "throughput": "keras_barlow.data",
    "default_preset": "keras_barlow.augment",
}


def test_public_api():
    for name in ("BarlowTwins", "barlow_twins_loss", "cross_correlation", "build_projector", "__version__"):
        assert hasattr(keras_barlow, name)
    with pytest.raises(AttributeError):
        _ = keras_barlow.does_not_exist


def test_every_name_in_all_is_importable_and_all_is_unique():
    assert len(set(keras_barlow.__all__)) == len(keras_barlow.__all__)
    missing = [name for name in keras_barlow.__all__ if not hasattr(keras_barlow, name)]
    assert missing == []


@pytest.mark.parametrize("name, module", sorted(INTERNALS.items()))
def test_internals_stay_importable_from_their_modules(name, module):
    assert hasattr(importlib.import_module(module), name)
    if name != "embedding_std":  # a user-facing collapse indicator, kept at top level
        assert name not in keras_barlow.__all__


def test_no_lazy_attribute_table():
    # Every module is imported eagerly (see the package docstring).
    assert not hasattr(keras_barlow, "__getattr__")
