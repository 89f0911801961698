"""Pipelines: static batches, ranges, determinism per seed and epoch, evaluation batches
normalised like the views, sharding, distribution."""

import textwrap

import numpy as np
import pytest
import tensorflow as tf
from helpers import uniform_images

from keras_barlow import data
from keras_barlow.augment import AugmentationConfig, default_preset
from tests.conftest import run_python
from tests.data.helpers import first, first_batch, pixels

pytestmark = pytest.mark.tensorflow_only


def test_digits_pretraining_static_batches_and_ranges():
    ds = data.pretraining_dataset("digits", batch_size=128, augment="digits", seed=0)
    assert [s.shape.as_list() for s in ds.element_spec] == [[128, 32, 32, 3]] * 2
    batches = first(ds, 20)
    assert len(batches) == 1347 // 128  # drop_remainder
    view_a, view_b = batches[0]
    for view in (view_a, view_b):
        rgb = pixels(tf.constant(view), "digits")
        assert rgb.min() >= -1e-5 and rgb.max() <= 1 + 1e-5 and rgb.std() > 0.1
    assert np.abs(view_a - view_b).mean() > 0.05


def test_same_seed_same_batches_new_seed_and_new_epoch_differ():
    make = lambda seed: data.pretraining_dataset("digits", batch_size=64, augment="digits", seed=seed)  # noqa: E731
    seeded, again, other = make(3), make(3), make(4)
    epoch1 = first(seeded, 2)
    for (a1, b1), (a2, b2) in zip(epoch1, first(again, 2)):
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(b1, b2)
    assert np.abs(epoch1[0][0] - first(other)[0][0]).max() > 0.5
    epoch2 = first(seeded, 1)  # a new iterator: reshuffled, new augmentation draws
    assert np.abs(epoch1[0][0] - epoch2[0][0]).max() > 0.5


def test_labeled_digits_normalised_like_the_views():
    test_x, test_y = data.load_digits_arrays("test")
    ds = data.labeled_dataset("digits", batch_size=100, augment="digits", split="test")
    images, labels = zip(*first(ds, 10))
    images, labels = np.concatenate(images), np.concatenate(labels)
    np.testing.assert_array_equal(labels, test_y)  # fixed order, no drop
    expected = tf.image.resize(np.repeat(test_x, 3, -1) / 255.0, (32, 32), "bilinear").numpy()
    np.testing.assert_allclose(pixels(tf.constant(images), "digits"), expected, atol=1e-5)


def test_default_presets():
    assert default_preset("digits") == "digits"
    assert default_preset("cifar100") == "cifar"
    assert default_preset("imagenet2012") == default_preset(np.zeros([2, 4, 4, 3])) == "imagenet"


def test_input_context_shards_and_uses_per_replica_batch():
    images = np.zeros([40, 6, 6, 3], np.uint8)
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2
        )
        ds = data.labeled_dataset(
            (images, np.arange(40)),
            batch_size=8,
            augment=AugmentationConfig.preset("cifar", image_size=6),
            input_context=context,
        )
        batches = first(ds, 10)
        assert all(len(labels) == 4 for _, labels in batches)
        seen.append(set(np.concatenate([labels for _, labels in batches]).tolist()))
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(40))
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=4)
    ds = data.pretraining_dataset(
        images, batch_size=16, augment=AugmentationConfig.preset("cifar", image_size=6), input_context=context
    )
    assert ds.element_spec[0].shape.as_list() == [4, 6, 6, 3]


@pytest.mark.slow
def test_distribute_datasets_from_function_on_two_replicas():
    out = run_python(
        textwrap.dedent("""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from keras_barlow import data
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        fn = lambda ctx: data.pretraining_dataset(
            "digits", batch_size=32, augment="digits", seed=0, input_context=ctx
        )
        dist = strategy.distribute_datasets_from_function(fn)
        view_a, view_b = next(iter(dist))
        shapes = [tuple(v.shape) for v in strategy.experimental_local_results(view_a)]
        print("SHAPES", shapes)
    """)
    )
    assert "SHAPES [(16, 32, 32, 3), (16, 32, 32, 3)]" in out


def test_labeled_train_augment_crops_and_flips_per_seed():
    make = lambda seed: data.labeled_dataset(  # noqa: E731
        "digits",
        batch_size=64,
        augment=AugmentationConfig.preset("cifar", image_size=16),
        split="test",
        train_augment=True,
        seed=seed,
    )
    ((images, labels),) = first(make(0))
    ((again, _),) = first(make(0))
    ((other, _),) = first(make(1))
    ((centred, centred_labels),) = first(
        data.labeled_dataset(
            "digits", batch_size=64, augment=AugmentationConfig.preset("cifar", image_size=16), split="test"
        )
    )
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, centred_labels)  # no shuffle: same order
    assert np.abs(images - other).max() > 0.5 and np.abs(images - centred).max() > 0.5
    assert images.shape == (64, 16, 16, 3)


def test_epoch_batches_are_a_function_of_seed_epoch_and_step():
    from keras_barlow.data.pipelines import pretraining_epochs

    def make():
        views = AugmentationConfig.preset("digits", image_size=16)
        return pretraining_epochs("digits", batch_size=64, augment=views, seed=3)

    passes = make()
    assert passes.steps_per_epoch == 1347 // 64
    one = first(passes(1), 2)
    again = first(make()(tf.constant(1, tf.int64)), 2)  # a new pipeline, a tensor epoch
    for (a1, b1), (a2, b2) in zip(one, again):
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(b1, b2)
    np.testing.assert_array_equal(first(passes(1), 1)[0][0], one[0][0])  # iterating again: the same
    assert np.abs(one[0][0] - first(passes(2), 1)[0][0]).max() > 0.5  # another epoch differs
    assert np.abs(one[0][0] - first(passes(1 + 2**32), 1)[0][0]).max() > 0.5  # all 64 bits count
    with pytest.raises(ValueError, match="needs an int seed"):
        pretraining_epochs(
            "digits",
            batch_size=64,
            augment="digits",
        )(0)
    with pytest.raises(ValueError, match="non-negative"):
        passes(-1)


def test_the_source_is_cached_once_not_per_epoch():
    from keras_barlow.data.pipelines import pretraining_epochs
    from keras_barlow.fault_tolerance import resumable_dataset

    reads = tf.Variable(0, dtype=tf.int64)

    def count(image):
        reads.assign_add(1)
        return image

    images = tf.data.Dataset.from_tensor_slices(np.zeros([24, 8, 8, 3], np.uint8)).map(count)
    passes = pretraining_epochs(
        images, batch_size=8, augment=AugmentationConfig.preset("cifar", image_size=8), seed=0, cache=True
    )
    stream = resumable_dataset(passes, epochs=3, steps_per_epoch=3)
    assert len(list(stream)) == 9
    assert int(reads.numpy()) == 24  # decoded once, not once per epoch


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (uniform_images(0), r"0 images.*fewer than one batch of 8"),
        (uniform_images(4), r"4 images.*fewer than one batch of 8"),
    ],
    ids=["empty", "fewer-than-a-batch"],
)
def test_pretraining_dataset_refuses_unusable_arrays(source, message):
    with pytest.raises(ValueError, match=message):
        first_batch(source)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 1}, r"per-replica batch is 1.*at least 2"),
        ({"batch_size": 8.5}, r"batch_size must be a positive int, got 8.5"),
        (
            {"augment": "imagnet"},
            r"unknown augmentation preset 'imagnet'; "
            r"choose one of \['cifar', 'digits', 'imagenet', 'mnist5k'\]",
        ),
    ],
    ids=["batch-1", "fractional-batch", "preset-typo"],
)
def test_pretraining_dataset_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        first_batch(uniform_images(), **kwargs)
