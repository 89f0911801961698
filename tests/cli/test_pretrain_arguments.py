"""The pretraining command line: checked flags, the smoke settings, the preset choices."""

import argparse
import re

import pytest

from keras_barlow.augment import PRESETS
from keras_barlow.cli import pretrain_arguments


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--projector", "abc", r"--projector: 'abc' is not a comma-separated list of positive layer sizes"),
        ("--projector", "32,0", r"--projector: '32,0' is not a comma-separated list"),
        ("--epochs", "0", r"--epochs: '0' must be a positive integer"),
        ("--batch-size", "-4", r"--batch-size: '-4' must be a positive integer"),
        ("--image-size", "1.5", r"--image-size: '1.5' is not an integer"),
        ("--steps-per-epoch", "0", r"--steps-per-epoch: '0' must be a positive integer"),
        ("--backup-every", "-1", r"--backup-every: '-1' must be a positive integer"),
        ("--lambd", "-1", r"--lambd: '-1' must be a finite number ≥ 0"),
        ("--learning-rate", "nan", r"--learning-rate: 'nan' must be a finite number ≥ 0"),
        ("--learning-rate", "0", r"--learning-rate: '0' must be greater than 0"),
        ("--warmup-epochs", "x", r"--warmup-epochs: 'x' is not a number"),
        ("--preset", "cifar100", r"--preset: invalid choice: 'cifar100'"),
    ],
)
def test_bad_flags_are_argparse_errors_before_anything_is_built(capsys, flag, value, expected):
    with pytest.raises(SystemExit) as caught:
        pretrain_arguments.parse(["--smoke", flag, value])
    assert caught.value.code == 2
    assert re.search(expected, capsys.readouterr().err)


def test_the_preset_choices_are_the_library_presets():
    (preset,) = [a for a in pretrain_arguments.build_parser()._actions if "--preset" in a.option_strings]
    assert list(preset.choices) == sorted(PRESETS)


def test_parse_projector():
    assert pretrain_arguments.parse_projector("2048,2048,2048") == [2048, 2048, 2048]
    with pytest.raises(argparse.ArgumentTypeError):
        pretrain_arguments.parse_projector("2048,")


def test_recipe_defaults_and_smoke_settings_with_explicit_flags_winning():
    parser = pretrain_arguments.build_parser("help text", epochs=1000, backbone="resnet50")
    assert parser.description == "help text"
    args = pretrain_arguments.parse([], parser)
    assert (args.epochs, args.backbone, args.dataset) == (1000, "resnet50", "cifar10")
    smoke = pretrain_arguments.parse(["--smoke", "--epochs", "3"], pretrain_arguments.build_parser())
    assert (smoke.dataset, smoke.steps_per_epoch, smoke.epochs, smoke.width) == ("digits", 2, 3, 4)
    own = pretrain_arguments.parse(["--smoke"], pretrain_arguments.build_parser(), smoke={"projector": "8,8"})
    assert own.projector == "8,8" and own.steps_per_epoch is None  # `smoke` replaces SMOKE


def test_add_arguments_fills_any_parser_alike():
    def options(parser):
        return sorted(option for action in parser._actions for option in action.option_strings)

    assert options(pretrain_arguments.add_arguments(argparse.ArgumentParser())) == options(
        pretrain_arguments.build_parser()
    )
