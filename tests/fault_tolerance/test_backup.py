"""BackupAndRestore: kill -9 mid-epoch and resume exactly; atomic, verified backups; errors
that say how to recover."""

import errno
import hashlib
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
from helpers import REPO

from keras_barlow.fault_tolerance import (
    BackupAndRestore,
    CorruptCheckpointError,
    read_backup_state,
    resumable_dataset,
)
from keras_barlow.fault_tolerance import backup as backup_module
from tests.fault_tolerance.helpers import EPOCHS, STEPS, data, epoch_data, small_model, train

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


# --- in-process: fast (eager tiny models; one shared training run) ----------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A completed run that kept its backups (every batch, the newest 2), and its model."""
    directory = tmp_path_factory.mktemp("finished") / "backup"
    keras.utils.set_random_seed(0)
    model = small_model()
    train(model, directory, save_freq=1, delete_checkpoint=False, keep=2)
    return directory, model


def test_backups_are_complete_verified_and_pruned(finished, tmp_path):
    directory, _ = finished
    assert sorted(os.listdir(directory)) == ["LATEST", "step-000000000005", "step-000000000006"]
    state = read_backup_state(str(directory))
    assert (state["step"], state["epoch"], state["batch"], state["steps_per_epoch"]) == (6, 2, 0, STEPS)
    assert read_backup_state(str(tmp_path / "nothing")) is None
    train(small_model(), tmp_path / "c", save_freq="epoch")
    assert not (tmp_path / "c").exists()  # delete_checkpoint=True: removed after a completed fit


def test_a_kept_backup_holds_the_final_step_and_resuming_from_it_trains_nothing(tmp_path):
    keras.utils.set_random_seed(0)
    model = small_model()
    train(model, tmp_path / "b", save_freq=4, delete_checkpoint=False)  # 4 does not divide 2 × 3
    assert sorted(os.listdir(tmp_path / "b")) == ["LATEST", "step-000000000004", "step-000000000006"]
    assert read_backup_state(str(tmp_path / "b"))["step"] == EPOCHS * STEPS

    keras.utils.set_random_seed(1)
    again = small_model()
    steps = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: steps.append(batch))
    backup = train(again, tmp_path / "b", callbacks=[counter], save_freq=4, delete_checkpoint=False)
    assert backup.resume_step() == EPOCHS * STEPS and steps == []  # restored, nothing trained
    assert int(keras.ops.convert_to_numpy(again.optimizer.iterations)) == EPOCHS * STEPS
    for want, got in zip(model.weights, again.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))


def test_resume_mid_epoch_restores_weights_optimizer_and_step(finished, tmp_path):
    _, reference = finished

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:  # mid-epoch, right after the backup of step 2
                raise KeyboardInterrupt

    keras.utils.set_random_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(small_model(), tmp_path / "b", callbacks=[Crash()], save_freq=2)
    assert read_backup_state(str(tmp_path / "b"))["step"] == 2

    keras.utils.set_random_seed(0)
    second = small_model()
    train(second, tmp_path / "b", save_freq=2)
    assert int(keras.ops.convert_to_numpy(second.optimizer.iterations)) == EPOCHS * STEPS
    for want, got in zip(reference.weights, second.weights):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want), atol=1e-6
        )


def test_a_crash_while_saving_keeps_the_previous_backup(finished, tmp_path, monkeypatch):
    directory = tmp_path / "b"
    shutil.copytree(finished[0], directory)
    model = small_model()
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
    assert not any(name.startswith(".tmp-") for name in os.listdir(directory))  # removed at once


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
    model = small_model()
    backup = BackupAndRestore(str(directory), save_freq=2)
    with pytest.raises(CorruptCheckpointError):
        model.fit(data(), epochs=EPOCHS, steps_per_epoch=STEPS, callbacks=[backup], verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0  # nothing trained


def test_resume_with_another_epoch_length_is_refused(finished, tmp_path):
    directory = tmp_path / "b"
    shutil.copytree(finished[0], directory)
    backup = BackupAndRestore(str(directory), save_freq=2)
    stream = resumable_dataset(epoch_data, epochs=EPOCHS, steps_per_epoch=2)
    with pytest.raises(ValueError, match="steps per epoch"):
        small_model().fit(stream, epochs=EPOCHS, steps_per_epoch=2, callbacks=[backup], verbose=0)


def test_backup_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="save_freq"):
        BackupAndRestore(str(tmp_path), save_freq=0)
    with pytest.raises(ValueError, match="keep"):
        BackupAndRestore(str(tmp_path), keep=0)
    with pytest.raises(ValueError, match="local path"):
        BackupAndRestore("gs://bucket/run")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        small_model().fit(
            data(), epochs=1, callbacks=[BackupAndRestore(str(tmp_path / "x"), save_freq=2)], verbose=0
        )
    assert isinstance(BackupAndRestore(str(tmp_path)), keras.callbacks.BackupAndRestore)


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
    model = small_model()
    backup = train(model, directory, save_freq=1)
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


# --- bad input, as a new user gives it: an error naming the problem and the fix -------------


def write_backup(backup_dir, step, weights=b"weights"):
    """A complete backup of `step` written by hand (no training), made the newest."""
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
    backup = tmp_path / "backup"
    older = write_backup(backup, 500)
    newest = write_backup(backup, 1000)
    (newest / "model.weights.h5").write_bytes(b"truncat")
    with pytest.raises(CorruptCheckpointError) as caught:
        read_backup_state(backup)
    message = str(caught.value)
    assert (
        str(older) in message and "LATEST" in message
    )  # e.g. "write step-…500 into LATEST to resume from it"
    assert "Delete the backup directory" not in message
    assert (older / "model.weights.h5").read_bytes() == b"weights"


def test_backup_every_zero_batches_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"save_freq must be 'epoch' or a positive number of batches, got 0"):
        BackupAndRestore(str(tmp_path / "backup"), save_freq=0)
    assert os.listdir(tmp_path) == []


LIMIT = 16 * 1024  # bytes: below the 26 KiB weights file of the model below

# Two epochs backed up at each epoch end; after the first backup the file-size limit drops
# to LIMIT (`ulimit -f`, SIGXFSZ ignored as shells do), so the second backup cannot be written.
SCRIPT = textwrap.dedent(
    f"""
    import os, resource, signal, sys
    import numpy as np
    import keras
    from keras_barlow.fault_tolerance import BackupAndRestore
    if sys.argv[2] == "while-writing":  # the space check cannot foresee it (e.g. another writer)
        BackupAndRestore._check_space = lambda self, needed: None
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64), keras.layers.Dense(1)])
    model.compile("adam", "mse")

    class Limit(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, resource.RLIM_INFINITY))

    x, y = np.zeros((32, 8)), np.zeros((32, 1))
    try:
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[BackupAndRestore(sys.argv[1]), Limit()])
    except OSError as error:
        if sys.argv[2] == "before-writing":
            raise
        # After a failed write, HDF5 may crash while closing its files at interpreter exit.
        print(f"OSError: {{error}}", file=sys.stderr, flush=True)
        os._exit(1)
    """
)


def _size_text(path):
    return backup_module._bytes_text(sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path)))


@pytest.mark.parametrize("when", ["before-writing", "while-writing"])
def test_a_backup_past_the_file_size_limit_leaves_nothing_and_says_disk_full(tmp_path, when):
    directory = tmp_path / "backup"
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(directory), when],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    previous = directory / "step-000000000004"
    assert sorted(os.listdir(directory)) == ["LATEST", previous.name]  # no .tmp-step-… left
    assert read_backup_state(str(directory))["step"] == 4
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        f"OSError: [Errno {errno.EFBIG}] disk full: the backup of step 8 could not be written to "
        f"{directory}: File too large (the file-size limit, ulimit -f, is 16.0 KiB); a backup needs about "
        f"{_size_text(previous)} (the size of the last backup). Nothing was left behind, and the previous "
        f"backup {previous} is intact: raise the file-size limit (ulimit -f unlimited) or pass a backup_dir "
        "on another file system, then run the same command again to resume."
    )
    if when == "before-writing":
        assert "h5py" not in result.stderr  # refused before the weights file was opened


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _variables_text(model):
    variables = list(model.weights) + list(model.optimizer.variables)
    total = sum(
        int(np.prod(v.shape)) * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize for v in variables
    )
    return backup_module._bytes_text(total)


@pytest.mark.parametrize(
    "failure, code",
    [
        (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC),
        (
            RuntimeError(
                "Can't decrement id ref count (file write failed: errno = 28, error message = 'No space')"
            ),
            28,
        ),
        (OSError(errno.EFBIG, "Unable to extend file properly"), errno.EFBIG),
    ],
)
def test_a_failed_first_backup_is_removed_and_says_disk_full(tmp_path, monkeypatch, failure, code):
    model = _model()
    backup = BackupAndRestore(str(tmp_path / "b"), save_freq=1)
    backup.set_model(model)

    def half_then_fail(self, filepath, **kwargs):
        with open(filepath, "wb") as handle:
            handle.write(b"\x89HDF half a file")
        raise failure

    monkeypatch.setattr(type(model), "save_weights", half_then_fail)
    monkeypatch.setattr(backup_module, "_file_size_limit", lambda: None)
    backup._step = 7
    with pytest.raises(OSError) as caught:
        backup._save()
    assert caught.value.errno == code and caught.value.__cause__ is None
    message = caught.value.strerror
    assert message.startswith(f"disk full: the backup of step 7 could not be written to {tmp_path / 'b'}: ")
    assert (
        f"a backup needs about {_variables_text(model)} (the size of the weights and optimizer state)"
        in message
    )
    assert "Nothing was left behind, and there is no backup yet" in message
    assert os.listdir(tmp_path / "b") == []


def test_a_backup_is_refused_before_writing_when_less_space_is_free_than_the_last_one_took(
    tmp_path, monkeypatch
):
    model = _model()
    backup = BackupAndRestore(str(tmp_path / "b"), save_freq=1)
    backup.set_model(model)
    backup._step = 1
    backup._save()
    previous = tmp_path / "b" / "step-000000000001"

    class Usage:
        free = 100

    monkeypatch.setattr(backup_module.shutil, "disk_usage", lambda path: Usage)
    monkeypatch.setattr(type(model), "save_weights", lambda *args, **kwargs: pytest.fail("wrote"))
    backup._step = 2
    with pytest.raises(OSError) as caught:
        backup._save()
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.strerror == (
        f"disk full: the backup of step 2 could not be written to {tmp_path / 'b'}: No space left on "
        f"device (100 bytes free); a backup needs about {_size_text(previous)} (the size of the last "
        f"backup). Nothing was left behind, and the previous backup {previous} is intact: free space there "
        "or pass a backup_dir with room, then run the same command again to resume."
    )
    assert sorted(os.listdir(tmp_path / "b")) == ["LATEST", previous.name]


def test_other_write_errors_propagate_unchanged_and_leave_nothing(tmp_path, monkeypatch):
    model = _model()
    backup = BackupAndRestore(str(tmp_path / "b"), save_freq=1)
    backup.set_model(model)
    failure = PermissionError(errno.EACCES, "Permission denied")

    def fail(self, filepath, **kwargs):
        open(filepath, "wb").close()
        raise failure

    monkeypatch.setattr(type(model), "save_weights", fail)
    backup._step = 3
    with pytest.raises(PermissionError) as caught:
        backup._save()
    assert caught.value is failure
    assert os.listdir(tmp_path / "b") == []
