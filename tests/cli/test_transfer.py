"""`keras-barlow transfer detection` / `segmentation`: argument checks and the smoke settings.

The fine-tuning runs: tests/recipes/test_transfer_detection.py and test_transfer_segmentation.py.
"""

import pytest

from keras_barlow.cli import transfer


def test_detection_smoke_settings():
    args = transfer.parse_detection_args(["--encoder", "e", "--smoke"])
    assert (args.data, args.image_size, args.batch_size, args.epochs) == ("shapes", 64, 8, 10)
    assert (args.train_images, args.eval_images, args.head_conv_layers) == (48, 24, 1)
    assert args.train_split == "train+validation"  # VOC trains on both
    assert transfer.parse_detection_args(["--encoder", "e", "--smoke", "--epochs", "6"]).epochs == 6
    full = transfer.parse_detection_args(["--encoder", "e"])
    assert (full.data, full.image_size, full.epochs, full.kind, full.head_conv_layers) == (
        "voc/2007",
        384,
        30,
        "retinanet",
        None,
    )


def test_segmentation_smoke_settings():
    args = transfer.parse_segmentation_args(["--encoder", "e", "--smoke"])
    assert (args.data, args.image_size, args.epochs, args.train_split) == ("shapes", 64, 5, "train")
    full = transfer.parse_segmentation_args(["--encoder", "e"])
    assert (full.data, full.image_size, full.epochs) == ("oxford_iiit_pet", 256, 20)


@pytest.mark.parametrize(
    "parse, argv, message",
    [
        (transfer.parse_detection_args, [], "the following arguments are required: --encoder"),
        (transfer.parse_detection_args, ["--encoder", "e", "--image-size", "100"], "multiple of 32, got 100"),
        (transfer.parse_detection_args, ["--encoder", "e", "--kind", "ssd"], "--kind: invalid choice"),
        (transfer.parse_segmentation_args, ["--encoder", "e", "--library", "torch"], "--library: invalid"),
    ],
)
def test_argument_errors(capsys, parse, argv, message):
    with pytest.raises(SystemExit) as caught:
        parse(argv)
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_shapes_need_xywh_boxes():
    args = transfer.parse_detection_args(["--encoder", "e", "--smoke", "--bounding-box-format", "xyxy"])
    with pytest.raises(SystemExit, match="--bounding-box-format xywh"):
        transfer.load_detection_data(args, "keras_cv")


def test_help_texts_name_the_command():
    assert (
        "python recipes/transfer_detection.py --encoder"
        in transfer.build_detection_parser("python recipes/transfer_detection.py").format_help()
    )
    assert (
        "keras-barlow transfer segmentation --encoder" in transfer.build_segmentation_parser().format_help()
    )
