"""The self-supervised model and its input contract."""

from keras_barlow.models.barlow_twins import BarlowTwins
from keras_barlow.models.view_pairs import VIEW_KEYS, check_last_batch, unpack_views

__all__ = ["VIEW_KEYS", "BarlowTwins", "check_last_batch", "unpack_views"]
