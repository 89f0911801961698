"""TransferBackbone: the normalisation of pretraining, the pyramid P2-P5, preprocessing
from the model card."""

import keras
import numpy as np
import pytest
from helpers import relative_error

import keras_barlow  # (also registers the classes saved models name)
from keras_barlow import export, transfer
from keras_barlow.backbones import resnet

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def numpy_maxpool2(x):
    n, h, w, c = x.shape
    padded = np.full((n, h + h % 2, w + w % 2, c), -np.inf, x.dtype)
    padded[:, :h, :w] = x
    return padded.reshape(n, padded.shape[1] // 2, 2, padded.shape[2] // 2, 2, c).max(axis=(2, 4))


@pytest.mark.parametrize("small_images", [False, True])
def test_backbone_normalises_as_pretraining_and_exposes_p2_to_p5(small_images):
    keras.utils.set_random_seed(0)
    encoder = resnet(18, (None, None, 3), width=4, small_images=small_images)
    backbone = transfer.TransferBackbone(encoder, mean=MEAN, std=STD, max_pixel_value=255.0)
    images = np.random.default_rng(0).uniform(0, 255, size=(2, 64, 64, 3)).astype("float32")
    got = {k: keras.ops.convert_to_numpy(v) for k, v in backbone(images).items()}

    # Reference: NumPy normalisation, then the encoder's own pyramid; missing deep levels
    # are 2x2 max-pools of the previous one.
    pyramid = keras.Model(encoder.inputs, encoder.pyramid_outputs)
    normalized = (images / 255.0 - np.float32(MEAN)) / np.float32(STD)
    expected = {k: keras.ops.convert_to_numpy(v) for k, v in pyramid(normalized).items()}
    for n in range(2, 6):
        level = f"P{n}"
        if level not in expected:
            expected[level] = numpy_maxpool2(expected[f"P{n - 1}"])
        assert got[level].shape[1:3] == (64 // 2**n, 64 // 2**n), level
        assert relative_error(got[level], expected[level]) <= 1e-5, level
    assert sorted(backbone.pyramid_outputs) == ["P2", "P3", "P4", "P5"]
    assert backbone.pyramid_level_inputs == {f"P{n}": f"P{n}" for n in range(2, 6)}
    # Shared weights: the encoder's variables are the backbone's.
    assert {id(v) for v in encoder.weights} <= {id(v) for v in backbone.weights}


def test_fixed_size_encoder_is_rebuilt_for_the_detection_size():
    keras.utils.set_random_seed(0)
    encoder = resnet(18, (32, 32, 3), width=4)
    backbone = transfer.transfer_backbone(encoder, preprocessing="imagenet", image_shape=(64, 64, 3))
    assert tuple(backbone.encoder.inputs[0].shape[1:]) == (64, 64, 3)
    for a, b in zip(backbone.encoder.get_weights(), encoder.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_preprocessing_comes_from_the_card_and_mismatches_are_errors(encoder_dir):
    _, spec = transfer.resolve_encoder(encoder_dir)
    card = export.read_model_card(encoder_dir)
    assert spec == {"mean": tuple(card["preprocessing"]["mean"]), "std": tuple(card["preprocessing"]["std"])}
    loaded = export.load_encoder(encoder_dir)
    assert transfer.resolve_encoder(loaded)[1] == spec  # load_encoder remembers the card
    assert transfer.resolve_encoder(loaded, preprocessing="imagenet")[1] == spec  # agrees: fine
    with pytest.raises(ValueError, match="differs from the normalisation the encoder was pretrained with"):
        transfer.resolve_encoder(encoder_dir, preprocessing={"mean": (0.5,) * 3, "std": (0.5,) * 3})
    with pytest.raises(ValueError, match="no preprocessing is known"):
        transfer.resolve_encoder(resnet(18, (None, None, 3), width=4))
    backbone = transfer.transfer_backbone(encoder_dir)
    assert backbone.mean == spec["mean"] and backbone.std == spec["std"]


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------

IDENTITY = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


@pytest.mark.parametrize("task", ["detector", "segmenter"])
def test_task_model_at_a_size_not_a_multiple_of_32_is_refused_when_built(task):
    with pytest.raises(ValueError, match=r"100.*multiple of 32.*(96|128)"):
        getattr(keras_barlow, task)(
            resnet(18, width=4), num_classes=3, image_shape=(100, 100, 3), preprocessing=IDENTITY
        )


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
            resnet(18, width=4), num_classes=3, image_shape=image_shape, preprocessing=IDENTITY
        )


def test_a_small_images_encoder_at_48_px_is_refused_when_built():
    # Probed: a small_images=True encoder predicts at 32, 64, 96 and 128 px in all five heads
    # (KerasCV RetinaNet/YOLOv8/DeepLabV3+, KerasHub RetinaNet/DeepLabV3); 48 px failed at predict.
    with pytest.raises(ValueError, match=r"height 48 is not a multiple of 32.*32 or 64"):
        keras_barlow.detector(
            resnet(18, width=4, small_images=True),
            num_classes=3,
            image_shape=(48, 48, 3),
            preprocessing=IDENTITY,
        )
