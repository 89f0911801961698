"""Fault tolerance: kill -9 mid-epoch and resume exactly; atomic, verified backups."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_barlow import BarlowTwins
from keras_barlow.fault_tolerance import (
    BackupAndRestore,
    CorruptCheckpointError,
    PeriodicCheckpoint,
    read_backup_state,
    resumable_dataset,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 300

# A small BarlowTwins run (3 epochs × 6 steps, SGD with momentum and a cosine schedule, so
# the optimizer state and the step count both matter), backed up every 2 batches. It
# prints one line per batch; SLOW seconds of sleep per batch let the test kill it mid-run.
TRAIN_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import keras
    import tensorflow as tf
    from keras_barlow import BarlowTwins
    from keras_barlow.fault_tolerance import BackupAndRestore, resumable_dataset

    out, backup_dir = sys.argv[1], sys.argv[2]
    slow = float(os.environ.get("SLOW", "0"))
    if keras.backend.backend() == "tensorflow":
        tf.config.experimental.enable_op_determinism()
    EPOCHS, STEPS, BATCH = 3, 6, 8

    def epoch_data(epoch):  # depends on the epoch number only
        seed = lambda k: tf.stack([tf.constant(k, tf.int64), epoch])
        images = tf.random.stateless_normal([STEPS * BATCH, 8, 8, 3], seed=seed(7))
        noise = tf.random.stateless_normal([STEPS * BATCH, 8, 8, 3], seed=seed(8))
        views = tf.data.Dataset.from_tensor_slices((images, images + 0.3 * noise))
        return views.batch(BATCH, drop_remainder=True)

    class Report(keras.callbacks.Callback):
        def __init__(self, backup):
            super().__init__()
            self.backup = backup

        def on_train_batch_end(self, batch, logs=None):
            print(f"BATCH saved={self.backup._last_saved_step}", flush=True)
            time.sleep(slow)

    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, padding="same"),
                                keras.layers.BatchNormalization(), keras.layers.ReLU()])
    model = BarlowTwins(encoder, projector_dims=(16, 16))
    schedule = keras.optimizers.schedules.CosineDecay(0.05, EPOCHS * STEPS)
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9))
    backup = BackupAndRestore(backup_dir, save_freq=2)
    start = backup.resume_step()
    print(f"START step={start}", flush=True)
    data = resumable_dataset(epoch_data, epochs=EPOCHS, steps_per_epoch=STEPS, start_step=start)
    model.fit(data, epochs=EPOCHS, steps_per_epoch=STEPS, callbacks=[backup, Report(backup)], verbose=0)
    print(f"DONE iterations={int(keras.ops.convert_to_numpy(model.optimizer.iterations))}", flush=True)
    np.savez(out, *[keras.ops.convert_to_numpy(v) for v in model.weights])
    """
)
STEPS_PER_EPOCH = 6
KILL_AFTER_BACKUP = 8  # epoch 1, batch 2: mid-epoch


def _env(backend, slow=0.0):
    return {
        **os.environ,
        "PYTHONPATH": REPO,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "SLOW": str(slow),
    }


@pytest.mark.slow
@pytest.mark.tensorflow_only  # subprocesses with their own backend: once is enough
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path, backend):
    # Subprocesses with their own KERAS_BACKEND: both backends run in the first (TF) pass.
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    command = [sys.executable, str(script)]
    reference = subprocess.Popen(
        command + [str(tmp_path / "reference.npz"), str(tmp_path / "reference_backup")],
        env=_env(backend),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    victim = subprocess.Popen(
        command + [str(tmp_path / "resumed.npz"), str(tmp_path / "backup")],
        env=_env(backend, slow=0.5),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        killed = False
        for line in victim.stdout:
            if line.startswith("BATCH") and int(line.split("saved=")[1]) >= KILL_AFTER_BACKUP:
                victim.send_signal(signal.SIGKILL)
                killed = True
                break
        victim.wait(timeout=TIMEOUT)
        assert killed and victim.returncode == -signal.SIGKILL, (
            "the training run ended before it could be killed"
        )
        assert not (tmp_path / "resumed.npz").exists()

        resumed = subprocess.run(
            command + [str(tmp_path / "resumed.npz"), str(tmp_path / "backup")],
            env=_env(backend),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert resumed.returncode == 0, resumed.stderr[-4000:]
        out, err = reference.communicate(timeout=TIMEOUT)
        assert reference.returncode == 0, err[-4000:]
    finally:
        for process in (reference, victim):
            if process.poll() is None:
                process.kill()
                process.wait()

    start = int(resumed.stdout.split("START step=")[1].split()[0])
    assert start >= KILL_AFTER_BACKUP and start % STEPS_PER_EPOCH != 0, (
        f"expected a mid-epoch backup, got step {start}"
    )
    assert "DONE iterations=18" in resumed.stdout, resumed.stdout  # 3 × 6 steps in all, not more
    assert "START step=0" in out and "DONE iterations=18" in out
    expected, actual = np.load(tmp_path / "reference.npz"), np.load(tmp_path / "resumed.npz")
    assert len(expected.files) == len(actual.files) > 0
    for name in expected.files:
        np.testing.assert_allclose(actual[name], expected[name], rtol=0, atol=1e-6, err_msg=name)
    assert not (tmp_path / "backup").exists()  # deleted once fit completed


# --- in-process unit tests: fast (eager tiny models; one shared training run) -------------

EPOCHS, STEPS, BATCH = 2, 3, 4


def _model():
    encoder = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(2, 3, padding="same")])
    model = BarlowTwins(encoder, projector_dims=(8, 8))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), run_eagerly=True)
    return model


def _epoch_data(epoch):
    import tensorflow as tf

    images = tf.random.stateless_normal(
        [STEPS * BATCH, 6, 6, 3], seed=tf.stack([tf.constant(1, tf.int64), epoch])
    )
    return tf.data.Dataset.from_tensor_slices((images, images * 0.9)).batch(BATCH, drop_remainder=True)


def _data(start=0):
    return resumable_dataset(_epoch_data, epochs=EPOCHS, steps_per_epoch=STEPS, start_step=start)


def _train(model, backup_dir, callbacks=(), **kwargs):
    backup = BackupAndRestore(str(backup_dir), **kwargs)
    data = _data(backup.resume_step())
    model.fit(data, epochs=EPOCHS, steps_per_epoch=STEPS, callbacks=[backup, *callbacks], verbose=0)
    return backup


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A completed run that kept its backups (every batch, the newest 2), and its model."""
    directory = tmp_path_factory.mktemp("finished") / "backup"
    keras.utils.set_random_seed(0)
    model = _model()
    _train(model, directory, save_freq=1, delete_checkpoint=False, keep=2)
    return directory, model


def test_resumable_dataset_starts_anywhere_in_the_same_stream():
    full = [a.numpy() for a, _ in _data(0)]
    assert len(full) == EPOCHS * STEPS
    for start in (1, STEPS, STEPS + 2, EPOCHS * STEPS):
        tail = [a.numpy() for a, _ in _data(start)]
        assert len(tail) == len(full) - start
        for got, want in zip(tail, full[start:]):
            np.testing.assert_array_equal(got, want)
    assert not np.array_equal(full[0], full[STEPS])  # epochs differ
    with pytest.raises(ValueError, match="start_step"):
        _data(EPOCHS * STEPS + 1)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        resumable_dataset(_epoch_data, epochs=1, steps_per_epoch=0)


def test_backups_are_complete_verified_and_pruned(finished, tmp_path):
    directory, _ = finished
    assert sorted(os.listdir(directory)) == ["LATEST", "step-000000000005", "step-000000000006"]
    state = read_backup_state(str(directory))
    assert (state["step"], state["epoch"], state["batch"], state["steps_per_epoch"]) == (6, 2, 0, STEPS)
    assert read_backup_state(str(tmp_path / "nothing")) is None
    _train(_model(), tmp_path / "c", save_freq="epoch")
    assert not (tmp_path / "c").exists()  # delete_checkpoint=True: removed after a completed fit


def test_resume_mid_epoch_restores_weights_optimizer_and_step(finished, tmp_path):
    _, reference = finished

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:  # mid-epoch, right after the backup of step 2
                raise KeyboardInterrupt

    keras.utils.set_random_seed(0)
    with pytest.raises(KeyboardInterrupt):
        _train(_model(), tmp_path / "b", callbacks=[Crash()], save_freq=2)
    assert read_backup_state(str(tmp_path / "b"))["step"] == 2

    keras.utils.set_random_seed(0)
    second = _model()
    _train(second, tmp_path / "b", save_freq=2)
    assert int(keras.ops.convert_to_numpy(second.optimizer.iterations)) == EPOCHS * STEPS
    for want, got in zip(reference.weights, second.weights):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want), atol=1e-6
        )


def test_a_crash_while_saving_keeps_the_previous_backup(finished, tmp_path, monkeypatch):
    directory = tmp_path / "b"
    shutil.copytree(finished[0], directory)
    model = _model()
    backup = BackupAndRestore(str(directory), save_freq=1)
    backup.set_model(model)

    def die_half_way(self, filepath, **kwargs):
        with open(filepath, "wb") as handle:
            handle.write(b"\x89HDF half a file")
        raise OSError("disk full")

    monkeypatch.setattr(type(model), "save_weights", die_half_way)
    backup._step = 7
    with pytest.raises(OSError, match="disk full"):
        backup._save()
    assert read_backup_state(str(directory))["step"] == 6  # the half-written directory is ignored
    assert any(name.startswith(".tmp-") for name in os.listdir(directory))


@pytest.mark.parametrize("damage", ["truncate", "flip", "state", "pointer", "missing"])
def test_a_corrupt_backup_is_reported_not_skipped(finished, tmp_path, damage):
    directory = tmp_path / "b"
    shutil.copytree(finished[0], directory)
    state = read_backup_state(str(directory))
    weights = state["weights"]
    data = pathlib.Path(weights).read_bytes()
    if damage == "truncate":
        pathlib.Path(weights).write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0xFF
        pathlib.Path(weights).write_bytes(bytes(flipped))
    elif damage == "state":
        pathlib.Path(state["directory"], "state.json").write_text("{not json")
    elif damage == "pointer":
        (directory / "LATEST").write_text("step-000000000099\n")
    else:
        os.remove(weights)
    with pytest.raises(CorruptCheckpointError, match="is corrupt") as error:
        read_backup_state(str(directory))
    assert "not restarted from scratch" in str(error.value)
    assert "step-000000000005" in str(error.value)  # names the older backup


def test_fit_stops_at_a_corrupt_backup_before_training(finished, tmp_path):
    directory = tmp_path / "b"
    shutil.copytree(finished[0], directory)
    weights = read_backup_state(str(directory))["weights"]
    with open(weights, "ab") as handle:
        handle.write(b"tampered")
    model = _model()
    backup = BackupAndRestore(str(directory), save_freq=2)
    with pytest.raises(CorruptCheckpointError):
        model.fit(_data(), epochs=EPOCHS, steps_per_epoch=STEPS, callbacks=[backup], verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0  # nothing trained


def test_resume_with_another_epoch_length_is_refused(finished, tmp_path):
    directory = tmp_path / "b"
    shutil.copytree(finished[0], directory)
    backup = BackupAndRestore(str(directory), save_freq=2)
    data = resumable_dataset(_epoch_data, epochs=EPOCHS, steps_per_epoch=2)
    with pytest.raises(ValueError, match="steps per epoch"):
        _model().fit(data, epochs=EPOCHS, steps_per_epoch=2, callbacks=[backup], verbose=0)


def test_backup_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="save_freq"):
        BackupAndRestore(str(tmp_path), save_freq=0)
    with pytest.raises(ValueError, match="keep"):
        BackupAndRestore(str(tmp_path), keep=0)
    with pytest.raises(ValueError, match="local path"):
        BackupAndRestore("gs://bucket/run")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        _model().fit(
            _data(), epochs=1, callbacks=[BackupAndRestore(str(tmp_path / "x"), save_freq=2)], verbose=0
        )
    assert isinstance(BackupAndRestore(str(tmp_path)), keras.callbacks.BackupAndRestore)


def test_periodic_checkpoints_are_whole_models_written_atomically(tmp_path):
    model = _model()
    checkpoint = PeriodicCheckpoint(str(tmp_path / "ckpt"), every_epochs=1, keep=1)
    model.fit(_data(), epochs=EPOCHS, steps_per_epoch=STEPS, callbacks=[checkpoint], verbose=0)
    assert os.listdir(tmp_path / "ckpt") == ["epoch-0002.keras"]  # keep=1, no temporary left
    restored = keras.models.load_model(tmp_path / "ckpt" / "epoch-0002.keras")
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == EPOCHS * STEPS
    for want, got in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))
    with pytest.raises(ValueError, match="every_epochs"):
        PeriodicCheckpoint(str(tmp_path), every_epochs=0)
    config = json.dumps(checkpoint.get_config())
    assert "every_epochs" in config


@pytest.mark.parametrize("damage", ["truncate", "pointer"])
def test_a_corrupt_backup_says_how_to_resume_from_the_older_one_and_that_works(finished, tmp_path, damage):
    directory = tmp_path / "b"
    shutil.copytree(finished[0], directory)
    newest = read_backup_state(str(directory))
    if damage == "truncate":
        os.truncate(newest["weights"], 100)
        older = directory / "step-000000000005"
    else:
        (directory / "LATEST").write_text("step-000000000099\n")
        older = directory / "step-000000000006"
    with pytest.raises(CorruptCheckpointError) as error:
        read_backup_state(str(directory))
    message = str(error.value)
    assert f"The older backup {older} (step {int(older.name[5:])}) is complete" in message
    assert f"echo {older.name} > {directory / 'LATEST'}" in message
    assert "Delete the backup directory" not in message  # would discard the good older backup

    # Following the advice resumes from the older backup, and training completes.
    (directory / "LATEST").write_text(older.name + "\n")
    assert read_backup_state(str(directory))["step"] == int(older.name[5:])
    model = _model()
    backup = _train(model, directory, save_freq=1)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == EPOCHS * STEPS
    assert backup.resume_step() == 0 and not directory.exists()


def test_a_corrupt_backup_without_an_older_good_one_says_so(finished, tmp_path):
    directory = tmp_path / "b"
    shutil.copytree(finished[0], directory)
    shutil.rmtree(directory / "step-000000000005")
    with open(read_backup_state(str(directory))["weights"], "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(CorruptCheckpointError, match=r"no older complete backup.*move .* away to start over"):
        read_backup_state(str(directory))


def test_resumable_dataset_refills_short_epochs_with_fresh_passes():
    import tensorflow as tf

    def short(epoch):  # 2 batches per pass, each batch the pass number
        return tf.data.Dataset.from_tensors(epoch).repeat(2)

    stream = resumable_dataset(short, epochs=2, steps_per_epoch=5, refill=True)
    refill = 2**32
    first, second = [0, 0, refill, refill, 2 * refill], [1, 1, 1 + refill, 1 + refill, 1 + 2 * refill]
    assert [int(b) for b in stream] == first + second
    tail = resumable_dataset(short, epochs=2, steps_per_epoch=5, start_step=3, refill=True)
    assert [int(b) for b in tail] == [refill, 2 * refill, 1, 1, 1 + refill, 1 + refill, 1 + 2 * refill]
    assert len(list(resumable_dataset(short, epochs=2, steps_per_epoch=5))) == 4  # without refill: short
