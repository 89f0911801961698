"""The pretraining recipes as a user runs them: kill -9 at a random step, then the same
command again, ends with the weights of an uninterrupted run; kill -9 during the export, then
the same command again, only finishes the export, and once more reports the finished run;
history.csv never holds an epoch twice; one run per output directory; --steps-per-epoch
beyond the data. (Flags checked as they are parsed: tests/cli/test_pretrain_arguments.py; a
finished output directory and --retrain: tests/cli/test_pretrain.py.)"""

import csv
import io
import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import zipfile

import h5py
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 900

# Runs a recipe with TensorFlow's op determinism on; with KILL_AFTER_STEP=k it SIGKILLs
# itself right after the backup of step k is complete (as a pre-emption would); with
# PAUSE_AFTER_STEP=k it prints PAUSED there and waits for a line on stdin; with
# KILL_IN_EXPORT=1 it SIGKILLs itself in the middle of the encoder export, after `fit`.
WRAPPER = textwrap.dedent(
    """
    import os, runpy, signal, sys
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    kill_after = int(os.environ.get("KILL_AFTER_STEP", "0"))
    pause_after = int(os.environ.get("PAUSE_AFTER_STEP", "0"))
    if os.environ.get("KILL_IN_EXPORT") == "1":
        from keras_barlow.export import writer
        def kill(*args, **kwargs):  # encoder.keras is staged, the SavedModel not yet
            os.kill(os.getpid(), signal.SIGKILL)
        writer.write_saved_model = kill
    if kill_after or pause_after:
        from keras_barlow.fault_tolerance import backup
        save = backup.BackupAndRestore._save
        def save_then_stop(self):
            save(self)
            if kill_after and self._step >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            if self._step == pause_after:
                print("PAUSED", flush=True)
                sys.stdin.readline()
        backup.BackupAndRestore._save = save_then_stop
    recipe = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(recipe, run_name="__main__")
    """
)


def _weights(keras_file):
    """Every array of a `.keras` file's weights (model and optimizer), by HDF5 path."""
    with zipfile.ZipFile(keras_file) as archive:
        data = io.BytesIO(archive.read("model.weights.h5"))
    arrays = {}
    with h5py.File(data, "r") as handle:
        handle.visititems(
            lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None
        )
    return arrays


def _start(tmp_path, recipe, backend, out, argv, kill_after=0, pause_after=0, kill_in_export=False):
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    env = {
        **os.environ,
        "PYTHONPATH": REPO,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KILL_AFTER_STEP": str(kill_after),
        "PAUSE_AFTER_STEP": str(pause_after),
        "KILL_IN_EXPORT": "1" if kill_in_export else "0",
    }
    command = [sys.executable, str(wrapper), os.path.join(REPO, "recipes", recipe), *argv]
    command += ["--backend", backend, "--output-dir", str(out)]
    return subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(process):
    output, _ = process.communicate(timeout=TIMEOUT)
    return process.returncode, output


@pytest.mark.slow
@pytest.mark.tensorflow_only  # subprocesses with their own backend: once is enough
@pytest.mark.parametrize(
    "recipe, backend",
    [("pretrain.py", "tensorflow"), ("pretrain.py", "jax"), ("imagenet_resnet50_tpu.py", "jax")],
)
def test_sigkill_at_a_random_step_then_the_same_command_gives_the_uninterrupted_weights(
    tmp_path, recipe, backend
):
    epochs, steps = 2, 3
    kill_after = random.choice([k for k in range(1, epochs * steps) if k % steps])  # mid-epoch
    argv = [
        "--smoke",
        "--no-export",
        "--verbose",
        "0",
        "--epochs",
        str(epochs),
        "--steps-per-epoch",
        str(steps),
    ]
    argv += ["--backup-every", "1"]
    reference = _start(tmp_path, recipe, backend, tmp_path / "reference", argv)
    victim = _start(tmp_path, recipe, backend, tmp_path / "run", argv, kill_after=kill_after)
    try:
        code, output = _finish(victim)
        assert code == -signal.SIGKILL, f"kill after step {kill_after}: exit {code}\n{output[-4000:]}"
        assert (tmp_path / "run" / "backup").is_dir()
        resumed = _start(tmp_path, recipe, backend, tmp_path / "run", argv)
        code, output = _finish(resumed)
        assert code == 0, f"resume after a kill at step {kill_after}:\n{output[-4000:]}"
        assert f"resuming at step {kill_after}" in output
        code, reference_output = _finish(reference)
        assert code == 0, reference_output[-4000:]
    finally:
        for process in (reference, victim):
            if process.poll() is None:
                process.kill()
                process.wait()
    final = f"checkpoints/epoch-{epochs:04d}.keras"
    expected, actual = _weights(tmp_path / "reference" / final), _weights(tmp_path / "run" / final)
    assert sorted(expected) == sorted(actual) and expected
    worst = max(float(np.max(np.abs(actual[name] - expected[name]), initial=0.0)) for name in expected)
    print(f"{recipe} on {backend}, killed after step {kill_after}: max |dw| = {worst}")
    assert worst == 0.0, f"killed after step {kill_after}: max |dw| = {worst}"
    assert (
        not (tmp_path / "run" / "backup").exists() and not (tmp_path / "run" / ".keras_barlow.lock").exists()
    )


def _snapshot(directory):
    """{relative path: bytes} of every file under `directory`."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, directory)] = handle.read()
    return files


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_a_second_run_on_a_busy_output_directory_is_refused_and_touches_nothing(tmp_path):
    argv = ["--smoke", "--no-export", "--verbose", "0", "--epochs", "2", "--steps-per-epoch", "2"]
    argv += ["--backup-every", "1"]
    first = _start(tmp_path, "pretrain.py", "tensorflow", tmp_path / "run", argv, pause_after=3)
    try:
        lines = []
        for line in first.stdout:  # wait until the first run is mid-training, paused
            lines.append(line)
            if line.strip() == "PAUSED":
                break
        assert lines and lines[-1].strip() == "PAUSED", "".join(lines)[-4000:]
        before = _snapshot(tmp_path / "run")
        assert "history.csv" in before and any(name.startswith("backup/step-") for name in before)
        second = _start(tmp_path, "pretrain.py", "tensorflow", tmp_path / "run", argv)
        code, output = _finish(second)
        assert code == 1, output[-4000:]
        assert f"is in use by another run: pid {first.pid}" in output and "another output directory" in output
        assert _snapshot(tmp_path / "run") == before  # nothing written, moved or deleted
        output, _ = first.communicate("\n", timeout=TIMEOUT)
        assert first.returncode == 0, output[-4000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["epoch-0001.keras", "epoch-0002.keras"]
    assert not (tmp_path / "run" / ".keras_barlow.lock").exists()  # released at the end


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_steps_per_epoch_beyond_the_data_reads_it_again(tmp_path):
    import pretrain

    # digits: 1,347 training images = 5 batches of 256; 3 epochs × 7 steps ask for 21.
    argv = ["--smoke", "--batch-size", "256", "--steps-per-epoch", "7", "--epochs", "3", "--no-export"]
    summary = pretrain.main([*argv, "--verbose", "0", "--output-dir", str(tmp_path / "run")])
    assert summary["optimizer_steps"] == 21 and summary["steps_per_epoch"] == 7
    with open(tmp_path / "run" / "history.csv") as handle:
        assert len(handle.read().strip().splitlines()) == 1 + 3


def _history(out):
    with open(out / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_sigkill_during_the_export_then_the_same_command_only_finishes_it(tmp_path):
    out = tmp_path / "run"
    argv = ["--smoke", "--verbose", "0"]
    code, output = _finish(_start(tmp_path, "pretrain.py", "tensorflow", out, argv, kill_in_export=True))
    assert code == -signal.SIGKILL, output[-4000:]
    # Killed after fit: the backup of the final step is kept, nothing marks the run finished.
    assert (out / "backup" / "step-000000000002").is_dir() and not (out / "summary.json").exists()
    trained = _snapshot(out / "checkpoints"), _history(out)

    code, output = _finish(_start(tmp_path, "pretrain.py", "tensorflow", out, argv))
    assert code == 0, output[-4000:]
    assert "resuming at step 2" in output and "nothing left to train" in output
    assert (_snapshot(out / "checkpoints"), _history(out)) == trained  # no step trained again
    summary = json.loads((out / "summary.json").read_text())
    assert summary["optimizer_steps"] == 2 and summary["final_loss"] == float(trained[1][0]["loss"])
    card = json.loads((out / "encoder" / "model_card.json").read_text())
    assert card["training"]["epochs"] == 1 and card["training"]["final_loss"] == summary["final_loss"]
    assert sorted(os.listdir(out)) == ["checkpoints", "encoder", "history.csv", "logs", "summary.json"]

    finished = _snapshot(out)
    code, output = _finish(_start(tmp_path, "pretrain.py", "tensorflow", out, argv))
    assert code == 0, output[-4000:]
    assert f"{out} holds a finished run (1 epoch(s), 2 steps; encoder: {out}/encoder" in output
    assert "resuming" not in output and _snapshot(out) == finished


class _Killed(BaseException):
    """Stands for a kill in the tests that run in this process: nothing catches it."""


def _kill(*args, **kwargs):
    raise _Killed


@pytest.mark.slow
def test_a_run_stopped_during_its_export_resumes_at_its_end_and_only_exports(tmp_path, monkeypatch, caplog):
    import pretrain

    from keras_barlow.export import writer

    out = tmp_path / "run"
    argv = ["--smoke", "--verbose", "0", "--output-dir", str(out)]
    with monkeypatch.context() as patch, pytest.raises(_Killed):
        patch.setattr(writer, "write_saved_model", _kill)
        pretrain.main(argv)
    assert sorted(os.listdir(out)) == ["backup", "checkpoints", "history.csv", "logs"]
    trained = _snapshot(out / "checkpoints"), _history(out)
    with caplog.at_level(logging.INFO):
        summary = pretrain.main(argv)
    assert "resuming at step 2" in caplog.text and "nothing left to train" in caplog.text
    assert (_snapshot(out / "checkpoints"), _history(out)) == trained
    assert summary["optimizer_steps"] == 2 and summary["final_loss"] == float(trained[1][0]["loss"])
    assert sorted(os.listdir(out)) == ["checkpoints", "encoder", "history.csv", "logs", "summary.json"]


@pytest.mark.slow
@pytest.mark.tensorflow_only  # history.csv is the same on both backends: once is enough
def test_resuming_from_an_older_backup_writes_each_epoch_of_the_history_once(tmp_path, monkeypatch):
    import pretrain

    from keras_barlow.export import writer

    out = tmp_path / "run"
    argv = ["--smoke", "--verbose", "0", "--epochs", "3", "--backup-every", "3", "--output-dir", str(out)]
    with monkeypatch.context() as patch, pytest.raises(_Killed):
        patch.setattr(writer, "write_saved_model", _kill)
        pretrain.main(argv)
    assert [row["epoch"] for row in _history(out)] == ["0", "1", "2"]
    # Resume from the older backup (as after a corrupt newest one): step 3, in epoch 1.
    assert sorted(os.listdir(out / "backup"))[:2] == ["LATEST", "step-000000000003"]
    (out / "backup" / "LATEST").write_text("step-000000000003\n")
    summary = pretrain.main([*argv, "--no-export"])
    rows = _history(out)
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]  # epochs 1 and 2 trained again, written once
    assert summary["optimizer_steps"] == 6 and summary["final_loss"] == float(rows[-1]["loss"])
