"""compare_semi_supervised: three rows on the same labelled draws; the pixel row is scikit-learn's."""

import keras
import numpy as np
import pytest

from keras_barlow.evaluation import compare_semi_supervised
from keras_barlow.evaluation.subsets import balanced_subset


def _encoder():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def _data(n_per_class, seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    images = rng.uniform(0, 0.3, size=(len(labels), 8, 8, 3)).astype("float32")
    images[np.arange(len(labels)), :, :, labels] += 0.6
    return images, labels


def test_rows_share_the_draws_and_the_pixel_row_is_the_converged_probe():
    from sklearn.linear_model import LogisticRegression

    train, test = _data(20, seed=1), _data(10, seed=2)
    pixels = (train, test)  # the raw images themselves
    result = compare_semi_supervised(
        _encoder(), train, test, pixels, fraction=0.2, seeds=(0, 1), epochs=2, batch_size=8
    )
    assert result["num_labeled"] == 12 and result["seeds"] == [0, 1]
    for row in ("barlow_twins", "scratch", "raw_pixels"):
        assert len(result[row]["top1"]["per_seed"]) == 2
        assert 0 <= result[row]["top1"]["mean"] <= 1
    # The pixel row on each seed's draw, against scikit-learn on L2-normalised pixels with the
    # C the probe chose (well-separated classes: every C gives the same accuracy here).
    for seed, value in zip((0, 1), result["raw_pixels"]["top1"]["per_seed"]):
        subset = balanced_subset(train[1], 0.2, seed=seed)
        x = train[0][subset].reshape(len(subset), -1)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        xt = test[0].reshape(len(test[0]), -1)
        xt = xt / np.linalg.norm(xt, axis=1, keepdims=True)
        reference = LogisticRegression(C=1.0, max_iter=10_000).fit(x, train[1][subset]).score(xt, test[1])
        assert value == pytest.approx(reference)


def test_pixels_of_other_examples_are_refused():
    train, test = _data(4, seed=1), _data(2, seed=2)
    shuffled = train[1][::-1]
    with pytest.raises(ValueError, match="same training examples in the same order"):
        compare_semi_supervised(
            _encoder(), train, test, ((train[0], shuffled), test), fraction=0.5, seeds=(0,), epochs=1
        )
