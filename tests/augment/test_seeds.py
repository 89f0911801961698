"""Seed derivation: deterministic, distinct per use, checked inputs; seed streams per epoch."""

import numpy as np
import pytest
import tensorflow as tf

from keras_barlow import augment as aug
from keras_barlow.augment import seeds

pytestmark = pytest.mark.tensorflow_only


def test_derive_seed_is_deterministic_and_distinct_per_use():
    assert seeds.derive_seed(None, 0, 1) is None
    assert seeds.derive_seed(3, 0, 1) == seeds.derive_seed(3, 0, 1)
    derived = {seeds.derive_seed(3, pipeline, stream) for pipeline in range(4) for stream in range(6)}
    assert len(derived) == 24 and all(0 <= value < 2**62 for value in derived)
    assert seeds.derive_seed(3, 0, 1) != seeds.derive_seed(4, 0, 1)


def test_seed_tensor_forms_and_errors():
    np.testing.assert_array_equal(seeds.seed_tensor(5), [5, 0])
    np.testing.assert_array_equal(seeds.seed_tensor(2**31 + 1), [2, 0])  # folded into int32 range
    np.testing.assert_array_equal(seeds.seed_tensor([1, 2]), [1, 2])
    assert seeds.seed_tensor(None).shape == (2,)
    with pytest.raises(ValueError, match="shape \\[2\\]"):
        seeds.seed_tensor([1, 2, 3])
    with pytest.raises(ValueError, match="integer tensor"):
        seeds.seed_tensor(tf.constant([1.0, 2.0]))


def test_seed_stream_repeats_per_seed_and_changes_per_epoch():
    first = [s.numpy().tolist() for s in aug.seed_stream(7).take(3)]
    assert first == [s.numpy().tolist() for s in aug.seed_stream(7).take(3)]
    stream = aug.seed_stream(7)
    epoch1 = [s.numpy().tolist() for s in stream.take(3)]
    epoch2 = [s.numpy().tolist() for s in stream.take(3)]
    assert epoch1 != epoch2 and len({tuple(s) for s in epoch1}) == 3
