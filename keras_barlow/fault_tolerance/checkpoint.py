"""`PeriodicCheckpoint`: whole-model `.keras` files every few epochs, each written atomically."""

import logging
import os
import re

import keras

from keras_barlow._io import check_local_path, fsync_directory, fsync_file
from keras_barlow.distribute import worker_of

_log = logging.getLogger(__name__)


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (with optimizer state) as `.keras` every `every_epochs` epochs.

    Each file is written under a temporary name in the same directory and renamed, so a
    crash never leaves a half-written `epoch-NNNN.keras`; older files are deleted only
    after a newer one is complete. Under several workers only the chief keeps its file.

    Args:
        directory: local directory for the checkpoints.
        every_epochs: save after every this many epochs (and never mid-epoch).
        keep: newest checkpoints kept; `None` keeps all.

    Example:

    ```python
    model.fit(data, epochs=100, callbacks=[keras_barlow.PeriodicCheckpoint("run/ckpt", 10)])
    model = keras.models.load_model("run/ckpt/epoch-0100.keras")
    ```
    """

    def __init__(self, directory, every_epochs=1, keep=None):
        super().__init__()
        check_local_path(directory, "directory")
        if isinstance(every_epochs, bool) or not isinstance(every_epochs, int) or every_epochs < 1:
            raise ValueError(f"every_epochs must be a positive integer, got {every_epochs!r}")
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise ValueError(f"keep must be a positive integer or None, got {keep!r}")
        self.directory = str(directory)
        self.every_epochs = every_epochs
        self.keep = keep

    def get_config(self):
        return {"directory": self.directory, "every_epochs": self.every_epochs, "keep": self.keep}

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs == 0:
            self.save(epoch + 1)

    def save(self, epoch):
        """Writes `epoch-{epoch:04d}.keras` atomically; returns its path (chief) or None."""
        model = self.model
        index, _ = worker_of(model)
        os.makedirs(self.directory, exist_ok=True)
        final = os.path.join(self.directory, f"epoch-{epoch:04d}.keras")
        tmp = os.path.join(self.directory, f".tmp-{os.getpid()}-worker{index}.keras")
        model.save(tmp)
        if index != 0:
            os.remove(tmp)
            return None
        fsync_file(tmp)
        os.replace(tmp, final)
        fsync_directory(self.directory)
        if self.keep is not None:
            names = sorted(n for n in os.listdir(self.directory) if re.match(r"^epoch-\d+\.keras$", n))
            for old in names[: max(0, len(names) - self.keep)]:
                os.remove(os.path.join(self.directory, old))
        _log.info("saved %s", final)
        return final
