"""`keras-barlow evaluate linear` / `semi-supervised`: argument checks, input loading, smoke runs.

The evaluation on a quick-start export: tests/evaluation/test_evaluation_recipes.py.
"""

import json
from pathlib import Path

import pytest

from keras_barlow.augment import PRESETS
from keras_barlow.cli import evaluate


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "--encoder is required (or --smoke)"),
        (["--encoder", "e", "--epochs", "2"], "add --protocol sgd"),
        (["--encoder", "e", "--learning-rate", "1"], "add --protocol sgd"),
        (["--smoke", "--preset", "nope"], "--preset: invalid choice: 'nope'"),
    ],
)
def test_linear_argument_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as caught:
        evaluate.parse_linear_args(argv)
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_linear_arguments():
    args = evaluate.parse_linear_args(["--encoder", "e", "--protocol", "sgd", "--epochs", "2"])
    assert (args.protocol, args.epochs, args.shots, args.seeds, args.dataset) == ("sgd", 2, 5, 10, "digits")


def test_semi_supervised_arguments(capsys):
    args = evaluate.parse_semi_supervised_args(["--encoder", "e", "--fraction", "0.1"])
    assert (args.fraction, args.epochs, args.encoder_lr, args.head_lr, args.seeds) == (
        0.1,
        20,
        0.002,
        0.5,
        10,
    )
    with pytest.raises(SystemExit):
        evaluate.parse_semi_supervised_args([])
    assert "--encoder is required (or --smoke)" in capsys.readouterr().err


def test_preset_choices_are_the_library_presets():
    for parser in (evaluate.build_linear_parser(), evaluate.build_semi_supervised_parser()):
        (preset,) = [a for a in parser._actions if "--preset" in a.option_strings]
        assert list(preset.choices) == sorted(PRESETS)


def test_help_texts_name_the_command():
    assert (
        "python recipes/linear_eval.py --smoke"
        in evaluate.build_linear_parser("python recipes/linear_eval.py").format_help()
    )
    assert (
        "keras-barlow evaluate semi-supervised --smoke"
        in evaluate.build_semi_supervised_parser().format_help()
    )


def test_load_encoder_and_views_reads_the_model_card(encoder_dir):
    args = evaluate.parse_linear_args(["--encoder", str(encoder_dir)])
    encoder, config = evaluate.load_encoder_and_views(args)
    card = json.loads(Path(encoder_dir, "model_card.json").read_text())
    assert config.image_size == tuple(card["input"]["image_shape"][:2])
    assert list(config.mean) == card["preprocessing"]["mean"] and encoder.output.shape[-1] > 0
    resized = evaluate.load_encoder_and_views(
        evaluate.parse_linear_args(["--encoder", str(encoder_dir), "--image-size", "48"])
    )
    assert resized[1].image_size == (48, 48)


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_linear_smoke_run_writes_its_record(tmp_path, capsys):
    out = tmp_path / "linear.json"
    metrics = evaluate.linear_main(["--smoke", "--output", str(out)])
    assert json.loads(out.read_text())["dataset"] == "digits" == metrics["dataset"]
    assert set(metrics["knn"]) == {"k20", "k200"} and len(metrics["few_shot"]["seeds"]) == 2
    assert "smoke encoder" in capsys.readouterr().out
