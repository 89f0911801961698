"""`truncate_history`: a `keras.callbacks.CSVLogger` file cut back to the epoch a run resumes at."""

import csv
import os

from keras_barlow._io import atomic_write_text


def truncate_history(path, epoch):
    """Drops the rows of epochs ≥ `epoch` from a `keras.callbacks.CSVLogger` file, atomically.

    Call it before `fit` when resuming at `epoch` with `CSVLogger(path, append=True)`: the
    rows of the epochs about to be trained again (left by a run resumed from an older backup,
    or by one restarted from scratch) are removed, so that the file never holds an epoch
    twice. A last line cut short by a kill (no line end) is dropped as well. The file is
    rewritten (through a temporary file and a rename) only when a row goes; the header and
    the line ends are kept as they are.

    Args:
        path: the CSV file; a missing file is left missing.
        epoch: the first epoch (0-based, as CSVLogger's `epoch` column counts) that the
            resumed run trains: `resume_step // steps_per_epoch`.

    Returns:
        The rows kept, as dicts of strings (`csv.DictReader`'s), oldest first.

    Example:

    ```python
    start = backup.resume_step()
    truncate_history("run/history.csv", start // steps_per_epoch)
    model.fit(..., callbacks=[backup, keras.callbacks.CSVLogger("run/history.csv", append=True)])
    ```
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an integer ≥ 0, got {epoch!r}")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as handle:
        lines = handle.read().splitlines(keepends=True)
    complete = [line for line in lines if line.endswith(("\n", "\r"))]
    if not complete:  # empty, or a header cut short: CSVLogger writes a new one
        if lines:
            atomic_write_text(path, "")
        return []
    header = next(csv.reader(complete[:1]))
    if "epoch" not in header:
        raise ValueError(
            f"{path} is not a CSVLogger history: its header {header} has no 'epoch' column; "
            "pass the file that keras.callbacks.CSVLogger writes"
        )
    column = header.index("epoch")
    kept, rows = complete[:1], []
    for line in complete[1:]:
        values = next(csv.reader([line]), [])
        if len(values) == len(header) and _epoch(values[column]) < epoch:
            kept.append(line)
            rows.append(dict(zip(header, values)))
    if len(kept) < len(lines):
        atomic_write_text(path, "".join(kept))
    return rows


def _epoch(text):
    """The epoch of a row; a field that is not an integer counts as infinite (the row goes)."""
    try:
        return int(text)
    except ValueError:
        return float("inf")
