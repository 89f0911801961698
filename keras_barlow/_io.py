"""File helpers shared by the export, checkpoint and recipe code: checksums, atomic writes."""

import hashlib
import json
import os


def sha256_file(path):
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_directory(path):
    """Flushes a directory's entries (a rename inside it) to disk; a no-op off POSIX."""
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path):
    """Flushes a file's contents to disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def atomic_write_bytes(path, data):
    """Writes `data` to `path` through a temporary file and a rename.

    A reader (or a process killed while writing) sees the old file or the new one, never
    a half-written one.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_directory(os.path.dirname(os.path.abspath(path)))


def atomic_write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically (see `atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path, data):
    """Writes `data` as indented JSON with sorted keys, atomically (`atomic_write_text`)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))


def check_local_path(path, what):
    """Refuses a remote URL (`gs://...`) where atomic renames are needed.

    Args:
        path: the path given.
        what: its argument name, for the error message.
    """
    if "://" in str(path):
        raise ValueError(
            f"{what} must be a local path (atomic renames are not available on "
            f"{str(path).split('://')[0]}://); "
            "on Colab use the VM disk or a mounted Google Drive folder, e.g. /content/drive/MyDrive/run"
        )
