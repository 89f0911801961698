"""Bad input, as a new user would give it: every case ends in an error that names the problem
and the fix, or in correct behaviour, with nothing written or lost.

The first part holds the cases of issue 19 §4; the rest widen the probe, per area (data and
transfer; model, projector and optimizers).
"""

import json
import math
import os
import re
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_barlow
from keras_barlow import LARS, BarlowTwins, resnet
from keras_barlow.augment import AugmentationConfig
from keras_barlow.export import export_encoder, load_encoder, read_model_card

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDENTITY = {"preprocessing": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}}


def tiny_encoder(image_size=16, channels=3):
    inputs = keras.Input((image_size, image_size, channels))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    return keras.Model(inputs, features)


def tiny_model(**kwargs):
    model = BarlowTwins(tiny_encoder(), projector_dims=(8,), **kwargs)
    model.compile(optimizer="sgd")
    return model


def images(n=40, size=16, channels=3, dtype="float32", scale=1.0, offset=0.0):
    rng = np.random.default_rng(0)
    return (rng.random((n, size, size, channels)) * scale + offset).astype(dtype)


def first_batch(source, **kwargs):
    from keras_barlow.data import pretraining_dataset

    kwargs = {"batch_size": 8, "image_size": 16, "preset": "cifar", "seed": 0, **kwargs}
    return next(iter(pretraining_dataset(source, **kwargs)))


def pretrain_recipe():
    sys.path.insert(0, os.path.join(REPO, "recipes"))
    import pretrain

    return pretrain


def files_under(directory):
    return sorted(
        os.path.relpath(os.path.join(root, name), directory)
        for root, _, names in os.walk(directory)
        for name in names
    )


# --------------------------------------------------------------------------------------------
# Issue 19 §4
# --------------------------------------------------------------------------------------------


def test_export_into_an_export_directory_keeps_the_users_files(tmp_path):
    model = tiny_model()
    directory = tmp_path / "encoder"
    export_encoder(model, directory, metadata=IDENTITY)
    (directory / "my_notes.txt").write_text("mine")
    try:
        export_encoder(model, directory, metadata=IDENTITY)
    except (ValueError, FileExistsError) as error:  # refusing is fine, if it says why and what to do
        assert "my_notes.txt" in str(error) and "another directory" in str(error)
    assert (directory / "my_notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_a_second_pretrain_run_on_a_locked_output_directory_is_refused(tmp_path):
    import subprocess

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from keras_barlow.cli.run_lock import OutputDirectoryLock as L; "
            f"L({str(out)!r}).acquire(); print('locked', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises((SystemExit, RuntimeError)) as caught:
            pretrain_recipe().main(["--smoke", "--no-export", "--verbose", "0", "--output-dir", str(out)])
        assert f"pid {holder.pid}" in str(caught.value) and "another output directory" in str(caught.value)
        assert files_under(out) == [".keras_barlow.lock"]  # nothing written by the refused run
    finally:
        holder.communicate("\n", timeout=60)


@pytest.mark.slow
def test_steps_per_epoch_beyond_the_data_repeats_it_or_refuses(tmp_path):
    # digits: 1,347 training images = 5 batches of 256; 3 epochs × 4 steps ask for 12.
    argv = [
        "--smoke",
        "--batch-size",
        "256",
        "--steps-per-epoch",
        "4",
        "--epochs",
        "3",
        "--no-export",
        "--verbose",
        "0",
    ]
    try:
        summary = pretrain_recipe().main([*argv, "--output-dir", str(tmp_path / "run")])
    except (SystemExit, ValueError) as error:
        assert "--steps-per-epoch" in str(error) and "5 batches" in str(error)
    else:
        assert summary["optimizer_steps"] == 12


def test_float_images_in_0_255_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\].*(/ ?255|divide)"):
        first_batch(images(scale=255.0))


def test_negative_float_images_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        first_batch(images(offset=-1.0))


def test_negative_lambd_is_refused():
    with pytest.raises(ValueError, match=r"lambd.*-1\.0.*0\.0051"):
        BarlowTwins(tiny_encoder(), projector_dims=(8,), lambd=-1.0)


def test_nan_lambd_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"lambd.*nan"):
        BarlowTwins(tiny_encoder(), projector_dims=(8,), lambd=float("nan"))


def test_negative_lars_learning_rate_is_refused():
    with pytest.raises(ValueError, match=r"learning_rate.*-1\.0"):
        LARS(learning_rate=-1.0)


def test_nan_lars_learning_rate_is_refused():
    with pytest.raises(ValueError, match=r"learning_rate.*nan"):
        LARS(learning_rate=float("nan"))


def test_fractional_projector_size_is_refused():
    with pytest.raises(ValueError, match=r"projector_dims.*32\.7.*integer"):
        BarlowTwins(tiny_encoder(), projector_dims=(32.7,))


def test_a_last_batch_of_one_image_is_explained_or_dropped():
    model = tiny_model()
    x = images(33)
    try:
        history = model.fit((x, x), batch_size=16, epochs=1, verbose=0)
    except Exception as error:
        assert isinstance(error, ValueError), f"{type(error).__name__}: {str(error)[:200]}"
        assert re.search(r"33.*16.*batch of 1", str(error)) and "drop_remainder" in str(error)
    else:
        assert math.isfinite(history.history["loss"][-1])


@pytest.mark.parametrize("task", ["detector", "segmenter"])
def test_task_model_at_a_size_not_a_multiple_of_32_is_refused_when_built(task):
    with pytest.raises(ValueError, match=r"100.*multiple of 32.*(96|128)"):
        getattr(keras_barlow, task)(
            resnet(18, width=4),
            num_classes=3,
            image_shape=(100, 100, 3),
            preprocessing=IDENTITY["preprocessing"],
        )


@pytest.mark.parametrize(("library", "size"), [("keras_cv", 64), ("keras_hub", 32)])
def test_detector_on_a_small_images_encoder_predicts(library, size):
    model = keras_barlow.detector(
        resnet(18, width=4, small_images=True),
        num_classes=3,
        library=library,
        image_shape=(size, size, 3),
        preprocessing=IDENTITY["preprocessing"],
    )
    predictions = model.predict(np.zeros((1, size, size, 3), "float32"), verbose=0)
    assert predictions


def test_export_of_an_uncompiled_model_works(tmp_path):
    model = BarlowTwins(tiny_encoder(), projector_dims=(8,))
    export_encoder(model, tmp_path / "encoder", metadata=IDENTITY)
    assert load_encoder(tmp_path / "encoder").output_shape == (None, 4)


def test_a_bad_projector_flag_is_refused_when_parsed(capsys):
    from keras_barlow.cli import pretrain

    with pytest.raises(SystemExit) as caught:
        pretrain.parse(["--smoke", "--projector", "abc"])
    assert caught.value.code == 2
    assert re.search(r"--projector.*abc.*comma-separated", capsys.readouterr().err)


def dead_pid():
    """The pid of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_killed_exports_partial_folder_is_cleaned_by_the_next_export(tmp_path):
    # The staging name records its writer (`.NAME.partial-PID@HOST-RANDOM`); this writer is dead.
    leftover = tmp_path / f".encoder.partial-{dead_pid()}@{socket.gethostname()}-killed"
    (leftover / "saved_model").mkdir(parents=True)
    (leftover / "encoder.keras").write_bytes(b"half")
    os.utime(leftover, (0, 0))  # written long ago: its export is not running any more
    export_encoder(tiny_model(), tmp_path / "encoder", metadata=IDENTITY)
    assert sorted(os.listdir(tmp_path)) == ["encoder"]


def _write_backup(backup_dir, step, weights=b"weights"):
    import hashlib

    directory = backup_dir / f"step-{step:012d}"
    directory.mkdir(parents=True)
    (directory / "model.weights.h5").write_bytes(weights)
    state = {
        "format": 1,
        "step": step,
        "epoch": 0,
        "batch": step,
        "steps_per_epoch": 100,
        "sha256": hashlib.sha256(weights).hexdigest(),
    }
    (directory / "state.json").write_text(json.dumps(state))
    (backup_dir / "LATEST").write_text(directory.name + "\n")
    return directory


def test_a_corrupt_backup_error_says_how_to_resume_from_the_older_one(tmp_path):
    from keras_barlow.fault_tolerance import CorruptCheckpointError, read_backup_state

    backup = tmp_path / "backup"
    older = _write_backup(backup, 500)
    newest = _write_backup(backup, 1000)
    (newest / "model.weights.h5").write_bytes(b"truncat")
    with pytest.raises(CorruptCheckpointError) as caught:
        read_backup_state(backup)
    message = str(caught.value)
    assert (
        str(older) in message and "LATEST" in message
    )  # e.g. "write step-…500 into LATEST to resume from it"
    assert "Delete the backup directory" not in message
    assert (older / "model.weights.h5").read_bytes() == b"weights"


def test_a_truncated_image_in_a_folder_is_skipped_and_counted(tmp_path):
    import tensorflow as tf

    from keras_barlow.data import scan_image_folder

    png = tf.io.encode_png(images(1, dtype="uint8", scale=255.0)[0]).numpy()
    for index in range(4):
        (tmp_path / f"{index}.png").write_bytes(png if index else png[:40])
    folder = scan_image_folder(tmp_path)
    assert [(os.path.basename(path), "truncated" in reason) for path, reason in folder.skipped] == [
        ("0.png", True)
    ]
    assert len(folder.files) == 3


# --------------------------------------------------------------------------------------------
# A wider probe: what a new user gets wrong first
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", [(0,), (-8,), ()])
def test_non_positive_or_empty_projector_is_refused(dims):
    with pytest.raises(ValueError, match=r"projector_dims must be a non-empty list of positive sizes"):
        BarlowTwins(tiny_encoder(), projector_dims=dims)


def test_a_string_projector_is_refused():
    with pytest.raises(ValueError, match=r"projector_dims.*'512'.*\(512,\)"):
        BarlowTwins(tiny_encoder(), projector_dims="512")


@pytest.mark.parametrize(
    "kwargs",
    [{"lambd": float("inf")}, {"scale_loss": float("nan")}, {"scale_loss": -1.0}, {"scale_loss": 0.0}],
)
def test_non_finite_or_non_positive_loss_weights_are_refused(kwargs):
    ((name, value),) = kwargs.items()
    with pytest.raises(ValueError, match=rf"{name}.*{value}"):
        BarlowTwins(tiny_encoder(), projector_dims=(8,), **kwargs)


def test_encoder_that_is_not_a_layer_is_refused():
    with pytest.raises(ValueError, match=r"encoder must be a Keras model or layer, got str"):
        BarlowTwins("resnet18")


def test_lars_momentum_and_weight_decay_are_checked():
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), got 1.5"):
        LARS(learning_rate=0.1, momentum=1.5)
    with pytest.raises(ValueError, match=r"weight_decay must be a non-negative number, got -1.0"):
        LARS(learning_rate=0.1, weight_decay=-1.0)


def test_fit_on_single_images_instead_of_view_pairs_says_how_to_build_pairs():
    x = images(32)
    with pytest.raises(ValueError, match=r"\(view_a, view_b\) pairs.*pretraining_dataset"):
        tiny_model().fit(x, batch_size=16, epochs=1, verbose=0)


def test_fit_with_a_batch_of_one_is_refused():
    x = images(4)
    with pytest.raises(ValueError, match=r"batch of 1.*at least 2"):
        tiny_model().fit((x, x), batch_size=1, epochs=1, verbose=0)


def test_fit_on_images_of_another_size_names_both_shapes():
    x = images(32, size=20)
    with pytest.raises(
        ValueError, match=r"expected shape=\(None, 16, 16, 3\), found shape=\(16, 20, 20, 3\)"
    ):
        tiny_model().fit((x, x), batch_size=16, epochs=1, verbose=0)


def test_fit_on_views_without_a_channel_axis_names_the_expected_rank():
    x = images(32)[..., 0]
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\), got shapes \(16, 16, 16\)"):
        tiny_model().fit((x, x), batch_size=16, epochs=1, verbose=0)


def test_fit_on_views_of_different_lengths_is_refused():
    x = images(32)
    with pytest.raises(ValueError, match=r"cardinality.*32, 16"):
        tiny_model().fit((x, x[:16]), batch_size=16, epochs=1, verbose=0)


def test_fit_before_compile_says_compile():
    x = images(32)
    with pytest.raises(ValueError, match=r"compile\(\)"):
        BarlowTwins(tiny_encoder(), projector_dims=(8,)).fit((x, x), batch_size=16, epochs=1, verbose=0)


def test_grey_images_without_channel_axis_become_rgb():
    view_a, view_b = first_batch(images(channels=3)[..., 0])
    assert view_a.shape == view_b.shape == (8, 16, 16, 3)


def test_uint8_images_are_accepted():
    view_a, _ = first_batch(images(dtype="uint8", scale=255.0))
    assert view_a.shape == (8, 16, 16, 3) and np.isfinite(view_a).all()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (images(channels=5), r"\(height, width, 1 or 3\), got \(16, 16, 5\).*\[\.\.\., :3\]"),
        (images(dtype="int64", scale=255.0), r"uint8 \[0, 255\] or float \[0, 1\] images, got dtype int64"),
        (images(0), r"0 images.*fewer than one batch of 8"),
        (images(4), r"4 images.*fewer than one batch of 8"),
    ],
    ids=["five-channels", "int64", "empty", "fewer-than-a-batch"],
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
            {"preset": "imagnet"},
            r"unknown augmentation preset 'imagnet'; "
            r"choose one of \['cifar', 'digits', 'imagenet', 'mnist5k'\]",
        ),
        ({"image_size": 0}, r"image_size must be a positive int or \(height, width\), got 0"),
        ({"image_size": -5}, r"image_size must be a positive int or \(height, width\), got -5"),
    ],
    ids=["batch-1", "fractional-batch", "preset-typo", "image-size-0", "negative-image-size"],
)
def test_pretraining_dataset_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        first_batch(images(), **kwargs)


def test_a_string_image_size_is_named_as_a_string():
    with pytest.raises(ValueError, match=r"image_size.*got '32'"):
        first_batch(images(), image_size="32")


def test_unknown_source_names_what_was_tried():
    with pytest.raises(
        ValueError,
        match=r"unknown source 'digitz': not 'digits' or 'mnist5k', not an existing directory, "
        r"and not a TFDS",
    ):
        first_batch("digitz")


def test_missing_image_folder_is_refused(tmp_path):
    from keras_barlow.data import scan_image_folder

    with pytest.raises(ValueError, match=r"does not exist or is not a directory"):
        scan_image_folder(tmp_path / "nope")


@pytest.mark.parametrize(("name", "content"), [("notes.txt", "hi"), ("photo.jpg", "not a jpeg")])
def test_folder_without_real_images_is_refused(tmp_path, name, content):
    from keras_barlow.data import scan_image_folder

    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=r"no readable images \(\.jpg.*found in"):
        scan_image_folder(tmp_path)


def test_labels_and_images_of_different_lengths_are_refused():
    from keras_barlow.data import labeled_dataset

    with pytest.raises(ValueError, match=r"got 40 images but 30 labels"):
        labeled_dataset(
            (images(), np.arange(30)),
            batch_size=8,
            augment=AugmentationConfig.preset("cifar", image_size=16),
        )


def test_negative_labels_are_refused():
    from keras_barlow.data import labeled_dataset

    with pytest.raises(ValueError, match=r"labels.*-5.*non-negative"):
        labeled_dataset(
            (images(), np.arange(40) - 5),
            batch_size=8,
            augment=AugmentationConfig.preset("cifar", image_size=16),
        )


def test_model_card_of_a_non_export_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no model_card.json in .*not an encoder export"):
        read_model_card(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"has no encoder.keras \(found nothing\).*export_encoder"):
        load_encoder(tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((19, (32, 32, 3)), {}, r"depth must be one of \[18, 34, 50, 101, 152\], got 19"),
        (
            (18, (32, 32, 3)),
            {"width": 0},
            r"width must be a positive integer \(64 for the standard ResNets\), got 0",
        ),
        ((18, (32, 32)), {}, r"image_shape must be \(height, width, channels\), got \(32, 32\)"),
    ],
    ids=["depth-19", "width-0", "image-shape-without-channels"],
)
def test_resnet_refuses_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        resnet(*args, **kwargs)


def test_schedules_and_optimizers_refuse_zero_sizes():
    from keras_barlow.optimizers import WarmupCosine, paper_optimizer

    with pytest.raises(ValueError, match=r"total_steps must be a positive integer, got 0"):
        WarmupCosine(0.1, total_steps=0, warmup_steps=10)
    with pytest.raises(
        ValueError, match=r"steps_per_epoch must be a positive integer, got 0 \(use len\(dataset\)"
    ):
        paper_optimizer(256, 10, 0)
    with pytest.raises(ValueError, match=r"global_batch_size must be a positive integer, got 0"):
        paper_optimizer(0, 10, 10)


def test_backup_every_zero_batches_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"save_freq must be 'epoch' or a positive number of batches, got 0"):
        keras_barlow.BackupAndRestore(str(tmp_path / "backup"), save_freq=0)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Data sources, augmentation config and transfer (bad-input engineer)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (images(offset=np.nan), r"NaN or infinite pixels.*nan_to_num"),
        (images(dtype="uint16", scale=65535.0), r"got dtype uint16.*/ 65535"),
        (images(1)[0], r"got shape \(16, 16, 3\), one colour image\?.*images\[None\]"),
        ([images(1, size=16)[0], images(1, size=20)[0]], r"different shapes.*tf\.data\.Dataset"),
        ((images(), np.arange(40) + 0.5), r"labels must be whole class indices, got 0\.5"),
        ((images(), np.array(["cat", "dog"] * 20)), r"integer class indices.*np\.unique"),
        ((images(), np.eye(40)), r"labels must have shape \(n,\).*\(40, 40\).*one-hot.*argmax"),
    ],
    ids=["nan-pixels", "uint16", "one-image", "ragged-list", "fractional-labels", "string-labels", "one-hot"],
)
def test_array_sources_refuse_what_they_cannot_use(source, message):
    with pytest.raises(ValueError, match=message):
        first_batch(source)


def test_unlabelled_marker_minus_one_is_accepted_for_pretraining():
    view_a, _ = first_batch((images(), np.full(40, -1)))
    assert view_a.shape == (8, 16, 16, 3)


@pytest.mark.parametrize(
    ("element", "message"),
    [
        ((images(scale=255.0), np.arange(40)), r"pixels in \[0, 1\].*divide 0-255 pixels by 255"),
        ((images(), np.arange(40) - 5), r"class indices must be non-negative"),
    ],
    ids=["float-0-255", "negative-labels"],
)
def test_tf_data_sources_are_checked_in_the_graph(element, message):
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        first_batch(tf.data.Dataset.from_tensor_slices(element))


@pytest.mark.parametrize(
    ("size", "shown"),
    [(True, r"True \(bool\)"), ((32, 32, 3), r"\(32, 32, 3\) \(tuple\)"), (16.5, r"16\.5 \(float\)")],
)
def test_image_sizes_that_are_not_sizes_are_named_with_their_type(size, shown):
    with pytest.raises(
        ValueError, match=rf"image_size must be a positive int or \(height, width\), got {shown}"
    ):
        first_batch(images(), image_size=size)


def test_a_scalar_crop_scale_is_refused_as_not_a_pair():
    with pytest.raises(ValueError, match=r"crop_scale must be a \(min, max\) pair of numbers, got 0\.5"):
        first_batch(images(), augment={"crop_scale": 0.5})


@pytest.mark.parametrize(
    "statistics",
    [
        {"mean": (123.7, 116.3, 103.5), "std": (58.4, 57.1, 57.4)},
        {"mean": (0.5,) * 3, "std": (58.4, 57.1, 57.4)},
    ],
    ids=["0-255-mean", "0-255-std"],
)
def test_normalisation_statistics_on_the_0_255_scale_are_refused(statistics):
    with pytest.raises(
        ValueError, match=r"statistics of RGB pixels in \[0, 1\].*divide 0-255 statistics by 255"
    ):
        first_batch(images(), augment=statistics)
    with pytest.raises(ValueError, match=r"divide 0-255 statistics by 255"):
        keras_barlow.detector(resnet(18, width=4), num_classes=3, preprocessing=statistics)


def test_a_folder_whose_only_image_is_truncated_is_refused(tmp_path):
    import tensorflow as tf

    from keras_barlow.data import scan_image_folder

    jpeg = tf.io.encode_jpeg(images(1, dtype="uint8", scale=255.0)[0]).numpy()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    with pytest.raises(ValueError, match=r"no readable images"):
        scan_image_folder(tmp_path)


@pytest.mark.parametrize("task", ["detector", "segmenter"])
@pytest.mark.parametrize(
    ("image_shape", "message"),
    [
        ((None, 100, 3), r"width 100 is not a multiple of 32.*96 or 128"),
        ((16, 16, 3), r"height 16 is not a multiple of 32.*resize or pad to 32"),
        ((64, 64), r"image_shape must be \(height, width, 3\), got \(64, 64\)"),
        ((64.0, 64, 3), r"height must be a positive integer or None, got 64\.0"),
    ],
    ids=["width-100", "16-px", "no-channels", "float-size"],
)
def test_task_image_shapes_are_checked_when_built(task, image_shape, message):
    with pytest.raises(ValueError, match=message):
        getattr(keras_barlow, task)(
            resnet(18, width=4),
            num_classes=3,
            image_shape=image_shape,
            preprocessing=IDENTITY["preprocessing"],
        )


@pytest.mark.parametrize("library", ["keras_cv", "keras_hub"])
def test_a_bounding_box_format_typo_is_refused_when_built(library):
    with pytest.raises(ValueError, match=r"bounding_box_format must be one of \(.*'xywh'.*\), got 'xywhh'"):
        keras_barlow.detector(
            resnet(18, width=4),
            num_classes=3,
            library=library,
            bounding_box_format="xywhh",
            preprocessing=IDENTITY["preprocessing"],
        )


def test_every_accepted_bounding_box_format_is_one_the_libraries_convert():
    import keras_cv

    from keras_barlow.transfer.tasks import BOUNDING_BOX_FORMATS

    boxes = np.array([[[2.0, 4.0, 10.0, 12.0]]], "float32")
    for box_format in BOUNDING_BOX_FORMATS:  # KerasCV's converter, and Keras's (which KerasHub uses)
        by_keras_cv = keras_cv.bounding_box.convert_format(
            boxes, source="xyxy", target=box_format, images=np.zeros((1, 16, 16, 3), "float32")
        )
        by_keras = keras.utils.bounding_boxes.convert_format(
            boxes, source="xyxy", target=box_format, height=16, width=16
        )
        np.testing.assert_allclose(np.asarray(by_keras_cv), np.asarray(by_keras), err_msg=box_format)


@pytest.mark.parametrize("num_classes", [0, 2.5, True, "3"])
def test_detector_num_classes_must_be_a_positive_integer(num_classes):
    with pytest.raises(ValueError, match=r"num_classes must be a positive integer, got"):
        keras_barlow.detector(
            resnet(18, width=4), num_classes=num_classes, preprocessing=IDENTITY["preprocessing"]
        )


def test_a_one_class_segmenter_is_refused():
    with pytest.raises(ValueError, match=r"num_classes counts the background too.*at least 2, got 1"):
        keras_barlow.segmenter(resnet(18, width=4), num_classes=1, preprocessing=IDENTITY["preprocessing"])


def test_a_small_images_encoder_at_48_px_is_refused_when_built():
    # Probed: a small_images=True encoder predicts at 32, 64, 96 and 128 px in all five heads
    # (KerasCV RetinaNet/YOLOv8/DeepLabV3+, KerasHub RetinaNet/DeepLabV3); 48 px failed at predict.
    with pytest.raises(ValueError, match=r"height 48 is not a multiple of 32.*32 or 64"):
        keras_barlow.detector(
            resnet(18, width=4, small_images=True),
            num_classes=3,
            image_shape=(48, 48, 3),
            preprocessing=IDENTITY["preprocessing"],
        )


# badcore: the model, projector, optimizers and training step
# --------------------------------------------------------------------------------------------


def encoder_with_output(rank):
    inputs = keras.Input((16, 16, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    if rank == 1:
        return keras.Model(inputs, keras.layers.Lambda(lambda f: keras.ops.mean(f, axis=-1))(features))
    return keras.Model(inputs, keras.layers.Reshape((2, 2, 1, 1))(features))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"projector_dims": 512}, r"projector_dims.*single number 512.*\(512,\)"),
        ({"projector_dims": "8192-8192"}, r"projector_dims.*'8192-8192'.*\(8192, 8192\)"),
        ({"projector_dims": (float("nan"),)}, r"projector_dims.*nan is not an integer"),
        ({"lambd": "0.005"}, r"lambd must be a finite number ≥ 0, got '0.005'"),
        ({"image_shape": (16, 16)}, r"image_shape must be \(height, width, channels\), got \(16, 16\)"),
    ],
    ids=["projector-int", "projector-dashes", "projector-nan", "lambd-string", "image-shape-2d"],
)
def test_barlow_twins_refuses_bad_arguments_when_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BarlowTwins(keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.Flatten()]), **kwargs)


def test_zero_lambd_is_accepted_as_the_on_diagonal_only_ablation():
    assert BarlowTwins(tiny_encoder(), projector_dims=(8,), lambd=0).lambd == 0.0


@pytest.mark.parametrize("rank", [5, 1])
def test_an_encoder_output_that_cannot_be_pooled_is_refused_when_built(rank):
    with pytest.raises(ValueError, match=r"must output \(batch, dim\), \(batch, tokens, dim\).*got.*shape"):
        BarlowTwins(encoder_with_output(rank), projector_dims=(8,))


def test_integer_views_are_refused_with_the_way_to_normalise_them():
    x = images(32, dtype="uint8", scale=255.0)
    with pytest.raises(ValueError, match=r"view_a holds uint8 values.*float images.*pretraining_dataset"):
        tiny_model().fit((x, x), batch_size=16, epochs=1, verbose=0)


def test_compile_with_a_loss_or_metrics_is_refused():
    model = BarlowTwins(tiny_encoder(), projector_dims=(8,))
    with pytest.raises(ValueError, match=r"computes its own loss.*loss='mse'.*lambd=\.\.\., scale_loss"):
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"does not take metrics=\['accuracy'\]"):
        model.compile(optimizer="sgd", metrics=["accuracy"])


def test_fit_with_labels_says_it_is_self_supervised():
    x = images(32)
    with pytest.raises(ValueError, match=r"self-supervised: pass fit\(x=\(view_a, view_b\)\) without y"):
        tiny_model().fit((x, x), np.zeros(32), batch_size=16, epochs=1, verbose=0)


def test_predict_on_a_pair_of_views_says_to_pass_images():
    x = images(8)
    with pytest.raises(ValueError, match=r"got a tuple of 2 inputs: call predict\(images\)"):
        tiny_model().predict((x, x), verbose=0)
    assert tiny_model().predict(x, verbose=0).shape == (8, 4)


def test_an_encoder_without_trainable_weights_is_refused_at_fit():
    encoder = tiny_encoder()
    encoder.trainable = False
    model = BarlowTwins(encoder, projector_dims=(8,))
    model.compile(optimizer="sgd")
    x = images(32)
    with pytest.raises(ValueError, match=r"has no trainable weights.*encoder.trainable = True"):
        model.fit((x, x), batch_size=16, epochs=1, verbose=0)


def test_evaluate_with_a_last_batch_of_one_image_is_explained():
    x = images(33)
    with pytest.raises(ValueError, match=r"33 % 16 == 1.*drop_remainder.*batch_size=15"):
        tiny_model().evaluate((x, x), batch_size=16, verbose=0)


def test_a_validation_split_leaving_a_batch_of_one_is_explained():
    x = images(40)  # 40 × 0.8 = 32 for training, 8 % 7 == 1 for validation
    with pytest.raises(ValueError, match=r"8 pairs of views with batch_size=7.*8 % 7 == 1"):
        tiny_model().fit((x, x), batch_size=7, validation_split=0.2, epochs=1, verbose=0)


def test_a_dataset_whose_last_batch_holds_one_image_is_explained():
    tf = pytest.importorskip("tensorflow")
    x = images(33)
    dataset = tf.data.Dataset.from_tensor_slices((x, x)).batch(16)
    with pytest.raises(ValueError, match=r"batch of (fewer than 2|1).*drop_remainder=True"):
        tiny_model().fit(dataset, epochs=1, verbose=0)


def test_views_of_different_batch_sizes_in_a_dataset_are_explained():
    tf = pytest.importorskip("tensorflow")
    dataset = tf.data.Dataset.from_tensor_slices(images(32)).batch(16).map(lambda x: (x, x[:8]))
    with pytest.raises(ValueError, match=r"(different numbers of images.*\(received 16 and 8\)|same shape)"):
        tiny_model().fit(dataset, epochs=1, verbose=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learning_rate": float("inf")}, r"learning_rate must be a non-negative number, got inf"),
        ({"learning_rate": "0.1"}, r"learning_rate"),
        ({"momentum": float("nan")}, r"momentum must be a non-negative number, got nan"),
    ],
    ids=["lr-inf", "lr-string", "momentum-nan"],
)
def test_lars_refuses_unusable_numbers(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LARS(**kwargs)


def test_lars_still_takes_a_schedule_or_a_numpy_number():
    from keras_barlow.optimizers import WarmupCosine

    assert isinstance(
        LARS(WarmupCosine(0.2, total_steps=10, warmup_steps=1)).get_config()["learning_rate"], dict
    )
    assert LARS(np.float32(0.5)).get_config()["learning_rate"] == 0.5


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda o: o.WarmupCosine(float("inf"), 10, 1),
            r"peak_learning_rate must be a finite positive number",
        ),
        (lambda o: o.WarmupCosine(0.1, float("nan"), 1), r"total_steps must be a positive integer, got nan"),
        (lambda o: o.WarmupCosine(0.1, 10, 2.5), r"warmup_steps must be an integer.*got 2.5"),
        (
            lambda o: o.paper_optimizer(256, 10, 10, bias_learning_rate=float("nan")),
            r"bias_learning_rate.*nan",
        ),
        (lambda o: o.paper_optimizer(256, float("inf"), 10), r"epochs must be a positive integer, got inf"),
    ],
    ids=["peak-inf", "total-nan", "warmup-fraction", "bias-lr-nan", "epochs-inf"],
)
def test_schedules_refuse_non_finite_numbers(call, message):
    from keras_barlow import optimizers

    with pytest.raises(ValueError, match=message):
        call(optimizers)
