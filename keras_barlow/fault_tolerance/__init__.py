"""Fault tolerance: resume exactly after a crash, from backups that are never half-written.

- `backup`: `BackupAndRestore`, a drop-in subclass of `keras.callbacks.BackupAndRestore`
  whose backups are atomic, verified by checksum and exact mid-epoch
  (`read_backup_state`, `CorruptCheckpointError`).
- `checkpoint`: `PeriodicCheckpoint`, whole-model `.keras` files every few epochs.
- `resumable`: `resumable_dataset`, the input stream that starts at the backup's step.
- `history`: `truncate_history`, a `CSVLogger` file cut back to the epoch a run resumes at.

Example:

```python
backup = keras_barlow.BackupAndRestore("run/backup", save_freq=500)
start = backup.resume_step()
data = keras_barlow.resumable_dataset(epoch_data, epochs=100, steps_per_epoch=S, start_step=start)
checkpoint = keras_barlow.PeriodicCheckpoint("run/ckpt", every_epochs=10)
model.fit(data, epochs=100, steps_per_epoch=S, callbacks=[backup, checkpoint])
```
"""

from keras_barlow.fault_tolerance.backup import BackupAndRestore, CorruptCheckpointError, read_backup_state
from keras_barlow.fault_tolerance.checkpoint import PeriodicCheckpoint
from keras_barlow.fault_tolerance.history import truncate_history
from keras_barlow.fault_tolerance.resumable import resumable_dataset

__all__ = [
    "BackupAndRestore",
    "CorruptCheckpointError",
    "PeriodicCheckpoint",
    "read_backup_state",
    "resumable_dataset",
    "truncate_history",
]
