"""Fault tolerance: resume exactly after a crash, from backups that are never half-written.

`keras.callbacks.BackupAndRestore` (Keras 3.15) writes its weights file in place and its
epoch counter after it, so a kill at the wrong moment leaves a truncated file or weights
that do not match the counter; and a backup taken mid-epoch is restored as if the epoch
had not started (its batch counter is written but never read). `BackupAndRestore` here is
a drop-in subclass that fixes the three:

- **atomic**: each backup (weights + optimizer state, and a `state.json` holding the step
  and the SHA-256 of the weights) is written into a temporary directory, renamed into
  place, and only then named by the `LATEST` pointer (itself replaced atomically). A kill
  at any instant leaves the previous backup intact and named.
- **verified**: a backup that fails its checksum, or whose files are missing, raises
  `CorruptCheckpointError` naming the file and the older backups — never a silent
  restart from scratch.
- **no leftovers on a full disk**: a backup that cannot be written (no space left, or the
  file-size limit of `ulimit -f`) leaves no temporary files, keeps the previous backup,
  and raises one `OSError` that says "disk full", where, and how much space a backup needs.
- **exact mid-epoch**: the backup records the global step. Feed `fit` a dataset that
  starts at `backup.resume_step()` (`resumable_dataset` builds one from a per-epoch
  dataset function) and the resumed run sees the same batches, in the same order, with
  the same weights, optimizer state and learning rate as an uninterrupted run. After a
  mid-epoch resume, Keras' epoch labels are shifted by the batches already done; the
  callback stops `fit` after exactly `epochs × steps_per_epoch` steps in all.

Works on the TensorFlow and JAX backends.
"""

import contextlib
import errno
import json
import logging
import os
import re
import shutil

import keras

from keras_barlow import _compat
from keras_barlow._io import atomic_write_text, check_local_path, fsync_directory, fsync_file, sha256_file
from keras_barlow.distribute import worker_of

_log = logging.getLogger(__name__)

_STATE = "state.json"
_WEIGHTS = "model.weights.h5"
_LATEST = "LATEST"
_STEP_DIR = re.compile(r"^step-(\d+)$")
_FORMAT = 1
_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


class CorruptCheckpointError(ValueError):
    """A backup or checkpoint exists but cannot be trusted (checksum, missing file, bad JSON)."""


def _verified_state(directory):
    """The state of the backup in `directory` after checking it, or the reason it is corrupt (str)."""
    if not os.path.isdir(directory):
        return f"{directory} does not exist"
    state_path = os.path.join(directory, _STATE)
    try:
        with open(state_path) as handle:
            state = json.load(handle)
        expected = state["sha256"]
        int(state["step"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"cannot read {state_path} ({type(error).__name__}: {error})"
    weights = os.path.join(directory, _WEIGHTS)
    if not os.path.exists(weights):
        return f"{weights} is missing"
    actual = sha256_file(weights)
    if actual != expected:
        return f"{weights} has SHA-256 {actual[:12]}…, but {state_path} records {expected[:12]}…"
    return {**state, "weights": weights, "directory": directory}


def read_backup_state(backup_dir):
    """The newest complete backup in `backup_dir`, verified, or `None` when there is none.

    Args:
        backup_dir: a `BackupAndRestore` directory.

    Returns:
        `None`, or a dict with `step` (batches trained), `epoch`, `batch` (batches done in
        that epoch), `steps_per_epoch`, `weights` (path of the weights file).

    Raises:
        CorruptCheckpointError: the backup named by `LATEST` is missing, truncated or
            altered. The message names the newest older backup that verifies and how to
            resume from it (write its name into `LATEST`).
    """
    if not os.path.isdir(backup_dir):
        return None
    latest_path = os.path.join(backup_dir, _LATEST)
    complete = sorted(
        (int(m.group(1)), name) for name in os.listdir(backup_dir) if (m := _STEP_DIR.match(name))
    )
    if os.path.exists(latest_path):
        with open(latest_path) as handle:
            name = handle.read().strip()
    elif complete:
        # Killed after the first backup's rename, before `LATEST` was written.
        name = complete[-1][1]
    else:
        return None  # nothing complete yet (at most a half-written temporary directory)
    directory = os.path.join(backup_dir, name)
    state = _verified_state(directory) if _STEP_DIR.match(name) else f"{latest_path} names {name!r}"
    if isinstance(state, dict):
        return state
    others = [os.path.join(backup_dir, n) for _, n in complete if n != name]
    listed = f" All other backups: {others}." if others else ""
    raise CorruptCheckpointError(
        f"the backup {directory} is corrupt: {state}. It was not loaded, and training was not "
        f"restarted from scratch. {_how_to_recover(backup_dir, latest_path, name, complete)}{listed}"
    )


def _how_to_recover(backup_dir, latest_path, corrupt_name, complete):
    """The recovery advice of a corrupt backup: resume from the newest older one that verifies."""
    for _, older in reversed(complete):
        good = os.path.join(backup_dir, older)
        if older != corrupt_name and isinstance(state := _verified_state(good), dict):
            return (
                f"The older backup {good} (step {state['step']}) is complete and verified: to resume "
                f"from it, write its name into {latest_path} (`echo {older} > {latest_path}`) and run "
                "the same command again. Keep the corrupt backup for inspection, or delete only it."
            )
    return (
        f"There is no older complete backup in {backup_dir}: replace the corrupt one by a good copy, "
        f"or move {backup_dir} away to start over from step 0."
    )


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore`, made atomic, verified and exact mid-epoch.

    Same arguments and place in `fit` as the Keras callback. On `fit` start it restores
    the newest backup (weights and optimizer state, `step`), and sets the starting epoch;
    it backs up every `save_freq` batches or at each epoch end; when `fit` completes it
    deletes the backups, or with `delete_checkpoint=False` backs up the final step (if not
    yet done) and keeps them.

    For an exact resume mid-epoch, the dataset given to `fit` must start at
    `resume_step()`, and `fit` needs `steps_per_epoch` (or a dataset of known length);
    `resumable_dataset` does both. Under several workers every worker saves (saving may
    run collectives), the chief into `backup_dir` and the others into scratch directories
    they delete; every worker restores from the chief's backups, so `backup_dir` must be
    on a file system all workers share.

    Args:
        backup_dir: local directory for this run's backups only.
        save_freq: `"epoch"` or a number of batches.
        delete_checkpoint: delete the backups when `fit` completes; `False` keeps them, the
            newest holding the final step (delete them once what follows `fit` is done).
        keep: complete backups kept (≥ 1); older ones are deleted after a newer one is
            complete.

    Example:

    ```python
    backup = keras_barlow.BackupAndRestore("run/backup", save_freq=500)
    data = keras_barlow.resumable_dataset(epoch_data, epochs=100, steps_per_epoch=S,
                                          start_step=backup.resume_step())
    model.fit(data, epochs=100, steps_per_epoch=S, callbacks=[backup])
    ```
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True, keep=2):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        check_local_path(backup_dir, "backup_dir")
        if isinstance(save_freq, bool) or (isinstance(save_freq, int) and save_freq < 1):
            raise ValueError(f"save_freq must be 'epoch' or a positive number of batches, got {save_freq!r}")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be a positive integer, got {keep!r}")
        self.keep = keep
        self._step = 0
        self._epoch_start_step = 0
        self._last_saved_step = None
        self._steps_per_epoch = None
        self._total_steps = None
        self._mid_epoch_resume = False
        self._epoch = 0
        self._last_backup_bytes = None  # (whole backup, largest file) of the last one written

    def get_config(self):
        return {
            "backup_dir": self.backup_dir,
            "save_freq": self.save_freq,
            "delete_checkpoint": self.delete_checkpoint,
            "keep": self.keep,
        }

    def resume_step(self):
        """Batches already trained according to the newest backup (0 when there is none)."""
        state = read_backup_state(self.backup_dir)
        return int(state["step"]) if state else 0

    # Callback hooks ------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        if not model.built:
            raise ValueError(
                "BackupAndRestore needs a built model before fit: build it (BarlowTwins builds "
                "itself when the encoder declares its input shape, or pass image_shape=...)"
            )
        params = self.params or {}
        self._steps_per_epoch = params.get("steps")
        epochs = params.get("epochs")
        self._total_steps = self._steps_per_epoch * epochs if self._steps_per_epoch and epochs else None
        if self.save_freq != "epoch" and not self._steps_per_epoch:
            raise ValueError(
                "BackupAndRestore(save_freq=<batches>) needs the number of steps per epoch: pass "
                "steps_per_epoch to fit (datasets from resumable_dataset have no known length)"
            )
        state = read_backup_state(self.backup_dir)
        self._step = 0
        if state is not None:
            saved_spe = state.get("steps_per_epoch")
            if saved_spe and self._steps_per_epoch and saved_spe != self._steps_per_epoch:
                raise ValueError(
                    f"the backup in {self.backup_dir} was taken with {saved_spe} steps per epoch, "
                    f"but this fit has {self._steps_per_epoch}: resume with the same data and "
                    "batch size, or delete the backup to start over"
                )
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            try:
                model.load_weights(state["weights"])
            except ValueError as error:
                raise ValueError(
                    f"the backup {state['directory']} does not fit this model ({error}); resume "
                    "with the same model and optimizer, or delete the backup to start over"
                ) from error
            self._step = int(state["step"])
            epoch = self._step // self._steps_per_epoch if self._steps_per_epoch else int(state["epoch"])
            _compat.set_initial_epoch(model, epoch)
            _log.info(
                "resumed from %s: step %d (epoch %d, batch %d)",
                state["directory"],
                self._step,
                epoch,
                self._step - epoch * (self._steps_per_epoch or 0),
            )
        self._last_saved_step = self._step
        self._mid_epoch_resume = bool(self._steps_per_epoch) and self._step % self._steps_per_epoch != 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start_step = self._step

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last batch of the step block (steps_per_execution ≥ 1).
        self._step = self._epoch_start_step + batch + 1
        if self.save_freq != "epoch" and self._step - self._last_saved_step >= self.save_freq:
            self._save()
        if self._mid_epoch_resume and self._total_steps is not None and self._step >= self._total_steps:
            # After a mid-epoch resume the last epoch ends early: the run has done
            # exactly epochs × steps_per_epoch steps.
            (getattr(self, "_model", None) or self.model).stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save()

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint:
            # The kept backup is the final state, also when `save_freq` batches do not divide
            # the run: a run stopped after `fit` (e.g. during its export) resumes at its end.
            self._save()
        elif os.path.isdir(self.backup_dir) and worker_of(self.model)[0] == 0:
            shutil.rmtree(self.backup_dir, ignore_errors=True)

    # Writing -------------------------------------------------------------------------

    def _save(self):
        if self._step == self._last_saved_step:  # e.g. an epoch end right after a batch save
            return
        model = self.model  # on JAX this attaches the training state to the variables
        index, _ = worker_of(model)
        name = f"step-{self._step:012d}"
        os.makedirs(self.backup_dir, exist_ok=True)
        if index != 0:
            # Non-chief workers take part in the save (it may run collectives) and discard it.
            scratch = os.path.join(self.backup_dir, f".worker-{index}-scratch")
            shutil.rmtree(scratch, ignore_errors=True)
            os.makedirs(scratch)
            model.save_weights(os.path.join(scratch, _WEIGHTS))
            shutil.rmtree(scratch, ignore_errors=True)
            self._last_saved_step = self._step
            return
        final = os.path.join(self.backup_dir, name)
        tmp = os.path.join(self.backup_dir, f".tmp-{name}-{os.getpid()}")
        needed = self._space_needed(model)
        self._check_space(needed)
        try:
            self._write(model, tmp, final, name)
        except BaseException as error:
            self._remove_unfinished(tmp, final, name)
            code = _disk_full_errno(error)  # h5py reports some failed writes as RuntimeError
            if code is None:
                raise
            raise self._disk_full_error(code, needed, limit=_file_size_limit()) from None
        self._last_saved_step = self._step
        self._last_backup_bytes = _backup_bytes(final)
        self._prune(keep_name=name)

    def _write(self, model, tmp, final, name):
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        weights = os.path.join(tmp, _WEIGHTS)
        model.save_weights(weights)
        fsync_file(weights)
        spe = self._steps_per_epoch
        state = {
            "format": _FORMAT,
            "step": self._step,
            "epoch": self._step // spe if spe else self._epoch + 1,
            "batch": self._step % spe if spe else 0,
            "steps_per_epoch": spe,
            "sha256": sha256_file(weights),
            "keras_version": keras.version(),
            "backend": keras.backend.backend(),
        }
        with open(os.path.join(tmp, _STATE), "w") as handle:
            json.dump(state, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_directory(tmp)
        if os.path.exists(final):  # the same step saved before a crash: replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_directory(self.backup_dir)
        atomic_write_text(os.path.join(self.backup_dir, _LATEST), name + "\n")

    def _remove_unfinished(self, tmp, final, name):
        """Removes what a failed `_write` left: its temporary directory and pointer file, and
        its backup directory when `LATEST` does not name it yet."""
        shutil.rmtree(tmp, ignore_errors=True)
        latest = os.path.join(self.backup_dir, _LATEST)
        with contextlib.suppress(OSError):
            os.remove(f"{latest}.tmp-{os.getpid()}")  # `atomic_write_text`'s temporary file
        try:
            with open(latest) as handle:
                named = handle.read().strip() == name
        except OSError:
            named = False
        if not named:
            shutil.rmtree(final, ignore_errors=True)

    # Space -----------------------------------------------------------------------------

    def _space_needed(self, model):
        """`(bytes, source)`: the size of the last backup (this run's, or the newest on disk),
        else the weights and optimizer variables' size (`bytes` is `(whole, largest file)`)."""
        if self._last_backup_bytes is not None:
            return self._last_backup_bytes, "the size of the last backup"
        complete = sorted(n for n in os.listdir(self.backup_dir) if _STEP_DIR.match(n))
        if complete:
            return _backup_bytes(os.path.join(self.backup_dir, complete[-1])), "the size of the last backup"
        optimizer = getattr(model, "optimizer", None)
        variables = list(model.weights) + list(getattr(optimizer, "variables", None) or [])
        total = sum(_variable_bytes(v) for v in variables)
        return (total, total), "the size of the weights and optimizer state"

    def _check_space(self, needed):
        """Raises the disk-full error before writing when the space or the file-size limit
        (`ulimit -f`) is known to be too small: nothing is written."""
        (total, largest), _ = needed
        if shutil.disk_usage(self.backup_dir).free < total:
            raise self._disk_full_error(errno.ENOSPC, needed)
        limit = _file_size_limit()
        if limit is not None and limit < largest:
            raise self._disk_full_error(errno.EFBIG, needed, limit=limit)

    def _disk_full_error(self, code, needed, limit=None):
        (total, _), source = needed
        if code == errno.EFBIG:
            cause = f" (the file-size limit, ulimit -f, is {_bytes_text(limit)})" if limit is not None else ""
            fix = (
                "raise the file-size limit (ulimit -f unlimited) or pass a backup_dir on another file system"
            )
        else:
            cause = f" ({_bytes_text(shutil.disk_usage(self.backup_dir).free)} free)"
            fix = "free space there or pass a backup_dir with room"
        try:
            previous = read_backup_state(self.backup_dir)
        except CorruptCheckpointError:
            previous = None
        kept = (
            f"the previous backup {previous['directory']} is intact" if previous else "there is no backup yet"
        )
        return OSError(
            code,
            f"disk full: the backup of step {self._step} could not be written to {self.backup_dir}: "
            f"{os.strerror(code)}{cause}; a backup needs about {_bytes_text(total)} ({source}). Nothing was "
            f"left behind, and {kept}: {fix}, then run the same command again to resume.",
        )

    def _prune(self, keep_name):
        names = sorted(n for n in os.listdir(self.backup_dir) if _STEP_DIR.match(n))
        for old in [n for n in names if n != keep_name][: max(0, len(names) - self.keep)]:
            shutil.rmtree(os.path.join(self.backup_dir, old), ignore_errors=True)
        for stale in os.listdir(self.backup_dir):
            if stale.startswith(".tmp-") and not stale.endswith(f"-{os.getpid()}"):
                shutil.rmtree(os.path.join(self.backup_dir, stale), ignore_errors=True)


def _disk_full_errno(error):
    """ENOSPC, EFBIG or EDQUOT when `error` reports a full disk, a file-size limit or a full
    quota (h5py puts the errno into its message), else None."""
    code = getattr(error, "errno", None)
    if code in _DISK_FULL:
        return code
    found = re.search(r"errno = (\d+)", str(error))
    if found and int(found.group(1)) in _DISK_FULL:
        return int(found.group(1))
    return None


def _file_size_limit():
    """The largest file this process may write (`ulimit -f`, in bytes), None when unlimited."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if limit == resource.RLIM_INFINITY else limit


def _backup_bytes(directory):
    """`(total, largest file)` bytes of a backup directory."""
    sizes = [os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory)] or [0]
    return sum(sizes), max(sizes)


def _variable_bytes(variable):
    dtype = keras.backend.standardize_dtype(variable.dtype)
    size = 1
    for dim in variable.shape:
        size *= int(dim)
    bits = next((b for b in (64, 32, 16, 8) if str(b) in dtype), 8 if dtype == "bool" else 32)
    return size * bits // 8


def _bytes_text(count):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
