"""Mean IoU from labels, against a hand count."""

import numpy as np
import pytest

from keras_barlow import transfer


def test_mean_iou_matches_a_hand_count():
    truth = np.array([[0, 0, 1, 1], [0, 2, 2, 1]])
    predicted = np.array([[0, 1, 1, 1], [0, 2, 0, 1]])
    # class 0: inter 2 (0,0),(1,0); union 4 -> 0.5. class 1: inter 3, union 4 -> 0.75.
    # class 2: inter 1, union 2 -> 0.5. class 3 absent from both: skipped.
    assert transfer.mean_iou_from_labels(truth, predicted, 4) == pytest.approx((0.5 + 0.75 + 0.5) / 3)
