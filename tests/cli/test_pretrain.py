"""`keras_barlow.cli.pretrain`: the help text, `main`'s wiring, the backend check.

The runs themselves: tests/recipes/test_pretrain.py (each recipe's smoke run) and
tests/recipes/test_pretrain_resume.py (kill -9 and resume).
"""

import json
import os
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


# --- a finished run in the output directory: reported, refused or moved aside ---------------


def _finished(out, argv, *, export=True):
    """`out` as a finished run of `argv` leaves it; returns its parsed arguments."""
    from keras_barlow.cli.pretrain_arguments import parse

    args = parse([*argv, "--output-dir", str(out)])
    arguments = {name: value for name, value in vars(args).items() if name != "invocation"}
    summary = {"epochs": args.epochs, "optimizer_steps": 2, "arguments": arguments}
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "epoch-0001.keras").write_bytes(b"model")
    (out / "history.csv").write_text("epoch,loss\n0,1.5\n")
    if export:
        (out / "encoder").mkdir()
        (out / "encoder" / "encoder.keras").write_bytes(b"encoder")
        (out / "encoder" / "model_card.json").write_text("{}")
        summary["encoder"] = str(out / "encoder")
    (out / "summary.json").write_text(json.dumps(summary))
    return args


def _snapshot(directory):
    return {
        os.path.relpath(os.path.join(root, name), directory): open(os.path.join(root, name), "rb").read()
        for root, _, names in os.walk(directory)
        for name in names
    }


@pytest.fixture
def no_training(monkeypatch):
    """Replaces the training by a recorder of the output directory's entries when it starts."""
    started = []

    def pretrain_(args, hardware, out):
        started.append(sorted(os.listdir(out)))
        return {"trained": True}, "model"

    monkeypatch.setattr(pretrain, "_pretrain", pretrain_)
    return started


def test_a_finished_run_run_again_says_where_its_results_are_and_changes_nothing(
    tmp_path, no_training, capsys
):
    out = tmp_path / "run"
    args = _finished(out, ["--smoke"])
    before = _snapshot(out)
    summary, model = pretrain.run(args)
    assert model is None and summary["encoder"] == str(out / "encoder") and no_training == []
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{out} holds a finished run (1 epoch(s), 2 steps; encoder: {out}/encoder")
    assert "nothing was trained or changed" in line and "--retrain" in line
    assert _snapshot(out) == before
    (out / "backup").mkdir()  # left when the run was stopped right after writing summary.json
    assert pretrain.run(args)[1] is None and not (out / "backup").exists() and _snapshot(out) == before
    # Flags that only change how a run executes name the same run.
    assert (
        pretrain.run(_finished(tmp_path / "other", ["--smoke", "--verbose", "2", "--no-export"]))[1] is None
    )


def test_a_finished_run_with_other_settings_is_refused(tmp_path, no_training):
    from keras_barlow.cli.pretrain_arguments import parse

    out = tmp_path / "run"
    _finished(out, ["--smoke"])
    before = _snapshot(out)
    with pytest.raises(SystemExit) as caught:
        pretrain.run(parse(["--smoke", "--epochs", "3", "--width", "8", "--output-dir", str(out)]))
    message = str(caught.value)
    assert f"{out} holds a finished run with other settings (--epochs 1, not 3; --width 4, not 8)" in message
    assert "new --output-dir" in message and f"--retrain to move it to {out}/previous-runs/" in message
    assert _snapshot(out) == before and no_training == []


def test_a_finished_run_without_the_export_asked_for_is_refused(tmp_path, no_training):
    from keras_barlow.cli.pretrain_arguments import parse

    out = tmp_path / "run"
    _finished(out, ["--smoke", "--no-export"], export=False)
    with pytest.raises(SystemExit, match=r"without a complete export in .*--no-export to take it as it is"):
        pretrain.run(parse(["--smoke", "--output-dir", str(out)]))
    (out / "summary.json").write_text('{"epochs": ')  # e.g. cut short by an old version
    with pytest.raises(SystemExit, match=r"summary.json marks a finished run but cannot be read"):
        pretrain.run(parse(["--smoke", "--no-export", "--output-dir", str(out)]))
    assert no_training == []


def test_retrain_moves_the_earlier_run_aside_then_trains(tmp_path, no_training, capsys):
    from keras_barlow.cli.pretrain_arguments import parse

    out = tmp_path / "run"
    _finished(out, ["--smoke"])
    (out / "backup").mkdir()  # as a run stopped before its end leaves it
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    assert pretrain.run(parse(["--smoke", "--retrain", "--output-dir", str(out)])) == (
        {"trained": True},
        "model",
    )
    # It trains from step 0 in a directory with only the lock, your files and the earlier runs.
    assert no_training == [[".keras_barlow.lock", "notes.txt", "previous-runs"]]
    (moved,) = (out / "previous-runs").iterdir()
    assert _snapshot(moved) == {name: data for name, data in before.items() if name != "notes.txt"}
    assert (moved / "backup").is_dir() and (out / "notes.txt").read_text() == "mine"
    names = "history.csv, checkpoints, encoder, summary.json, backup"
    assert f"--retrain: moved the earlier run's {names} to {moved}" in capsys.readouterr().out
    assert pretrain.move_previous_run(str(out)) is None  # nothing left to move
    (out / "history.csv").write_text("epoch,loss\n")
    again = pretrain.move_previous_run(str(out))  # a new folder, also within the same second
    assert again != str(moved) and os.listdir(again) == ["history.csv"]
