"""The generated shapes data: deterministic, tight boxes, masks inside their boxes."""

import numpy as np

from keras_barlow import transfer


def test_shapes_dataset_is_deterministic_and_consistent():
    data = transfer.shapes_dataset(12, image_size=64, max_objects=2, seed=5)
    again = transfer.shapes_dataset(12, image_size=64, max_objects=2, seed=5)
    for key in data:
        np.testing.assert_array_equal(data[key], again[key])
    assert data["images"].shape == (12, 64, 64, 3) and data["images"].dtype == np.float32
    assert data["images"].min() >= 0 and data["images"].max() <= 255
    assert data["masks"].shape == (12, 64, 64, 1)
    for i in range(12):
        mask = data["masks"][i, ..., 0]
        objects = data["classes"][i] >= 0
        assert 1 <= objects.sum() <= 2
        assert np.all(data["boxes"][i][~objects] == -1)
        covered = np.zeros_like(mask, bool)
        for (x, y, w, h), cls in zip(data["boxes"][i][objects], data["classes"][i][objects]):
            x, y, w, h = (int(v) for v in (x, y, w, h))
            region = mask[y : y + h, x : x + w] == cls + 1
            # Tight box: the shape touches all four sides of its box.
            assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any()
            covered[y : y + h, x : x + w] |= region
        assert np.array_equal(covered, mask > 0)  # every shape pixel lies in its box
