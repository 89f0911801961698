"""The input contract: `unpack_views` accepts pairs and dicts, and explains anything else."""

import numpy as np
import pytest

from keras_barlow.models.view_pairs import VIEW_KEYS, unpack_views


def images(n=4, size=8):
    return np.zeros((n, size, size, 3), "float32")


@pytest.mark.parametrize(
    "data",
    [
        (images(), images()),
        [images(), images()],
        {"view_a": images(), "view_b": images(), "extra": 1},
        ((images(), images()),),  # Keras passes `x` alone as a 1-tuple
    ],
    ids=["tuple", "list", "dict", "wrapped"],
)
def test_accepted_forms(data):
    view_a, view_b = unpack_views(data)
    assert view_a.shape == view_b.shape == (4, 8, 8, 3)
    assert VIEW_KEYS == ("view_a", "view_b")


@pytest.mark.parametrize(
    "data, message",
    [
        (images(), r"got a single tensor of shape \(4, 8, 8, 3\)"),
        ((images(), images(), images()), r"got a tuple of 3 \(a single tensor"),
        ({"view_a": images()}, r"got keys \['view_a'\] \(missing \['view_b'\]\)"),
        ((images(), np.arange(4)), r"labels \(4,\)\): Barlow Twins is self-supervised"),
        ((images()[0], images()[0]), r"got shapes \(8, 8, 3\) and \(8, 8, 3\)"),
        ((images(), images(size=6)), "must have the same shape"),
        ((images(1), images(1)), "batch of 1"),
        ("not data", "got <class 'str'>"),
    ],
    ids=["single", "triple", "missing-key", "labels", "unbatched", "shapes", "batch-of-one", "other"],
)
def test_rejected_forms_say_what_was_received(data, message):
    with pytest.raises(ValueError, match=message):
        unpack_views(data)


def test_unknown_batch_and_image_sizes_pass():
    class Symbolic:  # e.g. a traced tensor with unknown sizes
        shape = (None, None, None, 3)

    assert unpack_views((Symbolic(), Symbolic()))[0].shape == (None, None, None, 3)
