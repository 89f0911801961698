"""The input contract: `unpack_views` accepts pairs and dicts, and explains anything else;
`check_last_batch` refuses a last batch of one image; both as `BarlowTwins.fit` meets them."""

import math
import re

import numpy as np
import pytest
from helpers import tiny_encoder, tiny_model, uniform_images

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


# --- bad input through BarlowTwins.fit / evaluate, as a new user gives it -------------------
# 16-px images, 4 features, an 8-wide projector.


def model_16px():
    return tiny_model(tiny_encoder(16, filters=4), projector_dims=(8,))


def test_a_last_batch_of_one_image_is_explained_or_dropped():
    model = model_16px()
    x = uniform_images(33)
    try:
        history = model.fit((x, x), batch_size=16, epochs=1, verbose=0)
    except Exception as error:
        assert isinstance(error, ValueError), f"{type(error).__name__}: {str(error)[:200]}"
        assert re.search(r"33.*16.*batch of 1", str(error)) and "drop_remainder" in str(error)
    else:
        assert math.isfinite(history.history["loss"][-1])


def test_fit_on_single_images_instead_of_view_pairs_says_how_to_build_pairs():
    x = uniform_images(32)
    with pytest.raises(ValueError, match=r"\(view_a, view_b\) pairs.*pretraining_dataset"):
        model_16px().fit(x, batch_size=16, epochs=1, verbose=0)


def test_fit_with_a_batch_of_one_is_refused():
    x = uniform_images(4)
    with pytest.raises(ValueError, match=r"batch of 1.*at least 2"):
        model_16px().fit((x, x), batch_size=1, epochs=1, verbose=0)


def test_fit_on_views_without_a_channel_axis_names_the_expected_rank():
    x = uniform_images(32)[..., 0]
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\), got shapes \(16, 16, 16\)"):
        model_16px().fit((x, x), batch_size=16, epochs=1, verbose=0)


def test_integer_views_are_refused_with_the_way_to_normalise_them():
    x = uniform_images(32, dtype="uint8", scale=255.0)
    with pytest.raises(ValueError, match=r"view_a holds uint8 values.*float images.*pretraining_dataset"):
        model_16px().fit((x, x), batch_size=16, epochs=1, verbose=0)


def test_fit_with_labels_says_it_is_self_supervised():
    x = uniform_images(32)
    with pytest.raises(ValueError, match=r"self-supervised: pass fit\(x=\(view_a, view_b\)\) without y"):
        model_16px().fit((x, x), np.zeros(32), batch_size=16, epochs=1, verbose=0)


def test_evaluate_with_a_last_batch_of_one_image_is_explained():
    x = uniform_images(33)
    with pytest.raises(ValueError, match=r"33 % 16 == 1.*drop_remainder.*batch_size=15"):
        model_16px().evaluate((x, x), batch_size=16, verbose=0)


def test_a_validation_split_leaving_a_batch_of_one_is_explained():
    x = uniform_images(40)  # 40 × 0.8 = 32 for training, 8 % 7 == 1 for validation
    with pytest.raises(ValueError, match=r"8 pairs of views with batch_size=7.*8 % 7 == 1"):
        model_16px().fit((x, x), batch_size=7, validation_split=0.2, epochs=1, verbose=0)


def test_a_dataset_whose_last_batch_holds_one_image_is_explained():
    tf = pytest.importorskip("tensorflow")
    x = uniform_images(33)
    dataset = tf.data.Dataset.from_tensor_slices((x, x)).batch(16)
    with pytest.raises(ValueError, match=r"batch of (fewer than 2|1).*drop_remainder=True"):
        model_16px().fit(dataset, epochs=1, verbose=0)


def test_views_of_different_batch_sizes_in_a_dataset_are_explained():
    tf = pytest.importorskip("tensorflow")
    dataset = tf.data.Dataset.from_tensor_slices(uniform_images(32)).batch(16).map(lambda x: (x, x[:8]))
    with pytest.raises(ValueError, match=r"(different numbers of images.*\(received 16 and 8\)|same shape)"):
        model_16px().fit(dataset, epochs=1, verbose=0)
