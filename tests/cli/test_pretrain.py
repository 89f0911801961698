"""`keras_barlow.cli.pretrain`: the help text, `main`'s wiring, the backend check.

The runs themselves: tests/recipes/test_pretrain.py (each recipe's smoke run) and
tests/recipes/test_pretrain_resume.py (kill -9 and resume).
"""

import sys

import keras
import pytest

from keras_barlow.cli import pretrain, startup


def test_describe_names_the_command():
    text = pretrain.describe("python recipes/pretrain.py")
    assert "python recipes/pretrain.py --smoke" in text and "{command}" not in text
    assert "keras-barlow pretrain --dataset cifar10" in pretrain.describe()


@pytest.fixture
def runs(monkeypatch):
    """Replaces the run by a recorder of its arguments."""
    calls = []

    def run(args):
        calls.append(args)
        return {"worker_index": 0}, "model"

    monkeypatch.setattr(pretrain, "run", run)
    return calls


def test_main_parses_with_the_recipes_defaults_and_records_the_command(runs):
    summary = pretrain.main(
        ["--smoke", "--output-dir", "out"],
        command="python recipes/x.py",
        defaults={"epochs": 7, "projector": "64,64"},
        smoke={"projector": "8,8"},
    )
    (args,) = runs
    assert summary == {"worker_index": 0}
    assert (args.epochs, args.projector, args.steps_per_epoch, args.output_dir) == (1, "8,8", 2, "out")
    assert args.invocation == "python recipes/x.py --smoke --output-dir out"


def test_main_with_linear_epochs_adds_the_flag_and_evaluates(runs, monkeypatch):
    evaluated = []
    monkeypatch.setattr(
        pretrain, "linear_evaluation", lambda args, model, summary: evaluated.append(args) or "eval"
    )
    assert pretrain.main(["--smoke"], linear_epochs=100, smoke={"linear_epochs": 1}) == "eval"
    assert evaluated[0].linear_epochs == 1
    assert pretrain.main(["--linear-epochs", "5"], linear_epochs=100) == "eval"
    assert evaluated[1].linear_epochs == 5
    with pytest.raises(SystemExit):
        pretrain.main(["--linear-epochs", "5"])  # only where the recipe asks for it


def test_main_on_its_own_command_line_restarts_for_another_backend(runs, monkeypatch):
    restarts = []
    monkeypatch.setattr(startup, "restart_if_needed", lambda **kwargs: restarts.append(kwargs))
    monkeypatch.setattr(sys, "argv", ["pretrain.py", "--smoke", "--backend", "jax"])
    pretrain.main()
    assert restarts == [{"backend": "jax"}]
    pretrain.main(["--smoke", "--backend", "jax"])  # given arguments: no restart
    assert len(restarts) == 1


def test_a_different_backend_than_the_running_one_is_refused():
    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    with pytest.raises(SystemExit, match="already running"):
        pretrain.select_backend(other)


def test_augmentation_config_follows_the_dataset_and_size():
    from keras_barlow.cli.pretrain_arguments import parse

    config = pretrain.augmentation_config(parse(["--dataset", "digits", "--image-size", "24"]))
    assert config.image_size == (24, 24) and config.view_a.flip_prob == 0.0  # the digits preset
    cifar = pretrain.augmentation_config(parse(["--dataset", "cifar100", "--preset", "imagenet"]))
    assert cifar.image_size == (32, 32) and cifar.view_a.blur_prob > 0  # --preset wins over the dataset
