"""The `keras-barlow` command: its tree, every `--help`, argument errors, dispatch, the restart."""

import argparse
import re
import sys

import pytest

import keras_barlow
from keras_barlow.augment import PRESETS
from keras_barlow.cli import (
    benchmark,
    evaluate,
    main,
    pretrain,
    pretrain_arguments,
    quickstart,
    startup,
    transfer,
)

# The flags of each command (those of the recipes in recipes/, which use the same parsers).
FLAGS = {
    ("quickstart",): (
        "--data --dataset --data-dir --split --test-split --preset --epochs --batch-size --image-size "
        "--backbone --width --grayscale --no-grayscale --projector --lambd --learning-rate "
        "--warmup-epochs --weight-decay --knn-every --linear-every --precision --seed --shots --eval-seeds "
        "--output-dir --verbose --smoke"
    ),
    ("pretrain",): (
        "--dataset --split --data-dir --preset --image-size --backbone --width --small-images --projector "
        "--lambd --scale-loss --epochs --batch-size --steps-per-epoch --learning-rate --bias-learning-rate "
        "--weight-decay --eta --warmup-epochs --backend --hardware --tpu-address --precision "
        "--fused-batchnorm --pointwise-matmul "
        "--steps-per-execution --run-eagerly --seed --output-dir --backup-every --checkpoint-every "
        "--keep-checkpoints --no-export --retrain --verbose --smoke"
    ),
    ("evaluate", "linear"): (
        "--encoder --dataset --data-dir --train-split --test-split --preset --image-size --protocol --epochs "
        "--batch-size --learning-rate --weight-decay --shots --seeds --augmentations --no-flip --seed "
        "--output --smoke"
    ),
    ("evaluate", "semi-supervised"): (
        "--encoder --dataset --data-dir --train-split --test-split --preset --image-size --fraction --epochs "
        "--batch-size --encoder-lr --head-lr --weight-decay --augment --no-flip --seed --seeds --output "
        "--baselines --smoke"
    ),
    ("transfer", "detection"): (
        "--encoder --data --data-dir --train-split --eval-split --library --image-size --freeze-encoder "
        "--epochs --batch-size --learning-rate --train-images --eval-images --seed --output-dir --verbose "
        "--smoke --kind --bounding-box-format --max-boxes --head-conv-layers"
    ),
    ("transfer", "segmentation"): (
        "--encoder --data --data-dir --train-split --eval-split --library --image-size --freeze-encoder "
        "--epochs --batch-size --learning-rate --train-images --eval-images --seed --output-dir --verbose "
        "--smoke"
    ),
}


def _run(capsys, *argv):
    """`main(argv)`: (exit code, stdout, stderr)."""
    try:
        code = main.main(list(argv))
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def _options(parser):
    return {option for action in parser._actions for option in action.option_strings} - {"-h", "--help"}


def test_help_lists_the_commands(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for name in ("quickstart", "pretrain", "evaluate", "transfer", "benchmark"):
        assert re.search(rf"^\s+{name}\b", out, re.MULTILINE), out
    assert _run(capsys, "--version")[:2] == (0, f"keras-barlow {keras_barlow.__version__}\n")


@pytest.mark.parametrize(
    "group, modes", [("evaluate", ("linear", "semi-supervised")), ("transfer", ("detection", "segmentation"))]
)
def test_help_of_a_group_lists_its_modes(capsys, group, modes):
    code, out, _ = _run(capsys, group, "--help")
    assert code == 0 and all(mode in out for mode in modes)
    code, _, err = _run(capsys, group)
    assert code == 2 and "required: MODE" in err


@pytest.mark.parametrize("path", sorted(FLAGS))
def test_every_command_help_exits_0_and_lists_its_flags(capsys, path):
    code, out, _ = _run(capsys, *path, "--help")
    assert code == 0
    assert out.startswith(f"usage: keras-barlow {' '.join(path)}")
    for flag in FLAGS[path].split():
        assert re.search(rf"{re.escape(flag)}\b", out), flag
    assert "{command}" not in out and f"keras-barlow {' '.join(path)}" in out  # the examples name the command


@pytest.mark.parametrize("path", sorted(FLAGS))
def test_each_command_has_the_recipes_flags_and_no_others(path):
    (command,) = [c for c in main.COMMANDS if c.path == path]
    parser = main.build_parser()
    sub = parser.parse_args(
        [*path, "--encoder", "x"] if "--encoder" in FLAGS[path] else list(path)
    ).command_parser
    assert _options(sub) == set(FLAGS[path].split())
    recipe_parsers = {
        ("quickstart",): quickstart.build_parser,
        ("pretrain",): pretrain_arguments.build_parser,
        ("evaluate", "linear"): evaluate.build_linear_parser,
        ("evaluate", "semi-supervised"): evaluate.build_semi_supervised_parser,
        ("transfer", "detection"): transfer.build_detection_parser,
        ("transfer", "segmentation"): transfer.build_segmentation_parser,
    }
    assert _options(recipe_parsers[path]()) == _options(sub)
    assert _options(command.add_arguments(argparse.ArgumentParser())) == _options(sub)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["pretrain", "--epochs", "0"], "--epochs: '0' must be a positive integer"),
        (["pretrain", "--preset", "nope"], "--preset: invalid choice: 'nope'"),
        (["quickstart", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["evaluate", "linear", "--protocol", "knn"], "--protocol: invalid choice"),
        (["evaluate", "nonsense"], "invalid choice: 'nonsense'"),
        (["transfer", "detection"], "the following arguments are required: --encoder"),
        (["transfer", "segmentation", "--encoder", "x", "--library", "torch"], "--library: invalid choice"),
    ],
)
def test_bad_arguments_are_argparse_errors(capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and message in err, err


def test_the_preset_choices_are_the_library_presets():
    parser = main.build_parser()
    for path in (("quickstart",), ("pretrain",), ("evaluate", "linear"), ("evaluate", "semi-supervised")):
        argv = [*path, "--encoder", "x"] if path[0] == "evaluate" else list(path)
        sub = parser.parse_args(argv).command_parser
        (preset,) = [action for action in sub._actions if "--preset" in action.option_strings]
        assert list(preset.choices) == sorted(PRESETS), path


@pytest.mark.parametrize(
    "argv, module, function, rest",
    [
        (["quickstart", "--smoke"], quickstart, "main", ["--smoke"]),
        (["pretrain", "--smoke", "--epochs", "3"], pretrain, "main", ["--smoke", "--epochs", "3"]),
        (["evaluate", "linear", "--smoke"], evaluate, "linear_main", ["--smoke"]),
        (["evaluate", "semi-supervised", "--smoke"], evaluate, "semi_supervised_main", ["--smoke"]),
        (["transfer", "detection", "--encoder", "e"], transfer, "detection_main", ["--encoder", "e"]),
        (["transfer", "segmentation", "--encoder", "e"], transfer, "segmentation_main", ["--encoder", "e"]),
    ],
)
def test_dispatch_hands_the_command_its_arguments_and_parser(monkeypatch, argv, module, function, rest):
    calls = []
    monkeypatch.setattr(module, function, lambda argv, parser: calls.append((argv, parser)))
    monkeypatch.setattr(startup, "restart_if_needed", lambda **kwargs: pytest.fail("restarted"))
    assert main.main(argv) == 0
    ((given, parser),) = calls
    assert given == rest and parser.prog == "keras-barlow " + " ".join(argv[: len(argv) - len(rest)])


def test_benchmark_hands_everything_to_the_harness(monkeypatch):
    calls = []
    monkeypatch.setattr(benchmark, "main", lambda argv: calls.append(argv) or 3)
    assert main.main(["benchmark", "--help", "--preset", "smoke"]) == 3
    assert calls == [["--help", "--preset", "smoke"]]


def test_the_own_command_line_may_restart_once_parsed(monkeypatch, capsys):
    restarts = []
    monkeypatch.setattr(startup, "restart_if_needed", lambda **kwargs: restarts.append(kwargs))
    monkeypatch.setattr(pretrain, "main", lambda argv, parser: None)
    monkeypatch.setattr(sys, "argv", ["keras-barlow", "pretrain", "--backend", "jax"])
    assert main.main() == 0
    assert restarts == [{"backend": "jax", "quiet": True}]
    monkeypatch.setattr(sys, "argv", ["keras-barlow", "pretrain", "--help"])
    with pytest.raises(SystemExit):  # --help exits before any restart
        main.main()
    assert len(restarts) == 1
