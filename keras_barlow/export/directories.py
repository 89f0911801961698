"""Atomic directory replacement for exports, and what it must never lose.

An export is written into a staging directory next to its target and renamed into place,
so an export that fails or is killed never leaves a half-written artefact where a good one
was. Staging and backup directories are named after their writer,
`.{name}.partial-{pid}@{host}-{random}` and `.{name}.previous-{pid}@{host}-{random}`, so the
next export can tell leftovers of a dead writer (removed, or for a backup whose target
vanished, put back) from those of a live one (left alone).

Files in an export directory that the package did not write (a `README.md`, a figure, your
notes) are copied into the new export before the swap: an export never deletes them.
"""

import os
import re
import shutil
import socket
import tempfile
import warnings

from keras_barlow.export.layout import CARD_FILE, ENCODER_FILE, EXPORT_ENTRIES

_KINDS = ("partial", "previous")


def check_replaceable(directory):
    """Raises `ValueError` unless `directory` is absent, empty or an earlier export."""
    if os.path.isfile(directory):
        raise ValueError(f"{directory} is a file; export_encoder writes a directory")
    if os.path.isdir(directory):
        entries = set(os.listdir(directory))
        if entries and not entries & {CARD_FILE, ENCODER_FILE}:
            raise ValueError(
                f"{directory} exists and is not an encoder export (it holds {sorted(entries)[:5]}); "
                "refusing to replace it. Choose a new or empty directory."
            )


def staging_directory(directory):
    """Creates and returns an empty staging directory for `directory`, named after this process.

    Its permissions follow the umask (not `mkdtemp`'s private 0700).
    """
    parent, base = os.path.split(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=_prefix(base, "partial"), dir=parent)
    os.chmod(staging, 0o777 & ~_umask())
    return staging


def carry_over_foreign_files(directory, staging):
    """Copies every entry of `directory` that is not part of an export into `staging`.

    Entries `staging` already has (e.g. a README the caller just wrote) are left as they are.

    Returns:
        The sorted names copied (e.g. `["README.md", "cross_correlation.png"]`).
    """
    if not os.path.isdir(directory):
        return []
    foreign = sorted(set(os.listdir(directory)) - EXPORT_ENTRIES - set(os.listdir(staging)))
    for name in foreign:
        source, target = os.path.join(directory, name), os.path.join(staging, name)
        if os.path.isdir(source) and not os.path.islink(source):
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
    return foreign


def replace_directory(staging, directory):
    """Moves the complete directory `staging` to `directory`, replacing what is there.

    Each step is an atomic `rename` within one parent directory: the old `directory` is
    renamed to a backup, `staging` takes its place, then the backup is deleted. If the second
    rename fails, the old directory is put back; if the process dies in between, the next
    `clean_stale_directories` puts it back.

    Args:
        staging: a complete directory on the same file system as `directory` (e.g. from
            `staging_directory(directory)`).
        directory: the target path.
    """
    if not os.path.exists(directory):
        os.rename(staging, directory)
        return
    parent, base = os.path.split(os.path.abspath(directory))
    backup = tempfile.mkdtemp(prefix=_prefix(base, "previous"), dir=parent)
    os.rmdir(backup)  # only the unique name is needed
    os.rename(directory, backup)
    try:
        os.rename(staging, directory)
    except BaseException:
        os.rename(backup, directory)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def clean_stale_directories(directory):
    """Removes the staging/backup leftovers of dead writers of `directory`.

    Only directories named by this module for `directory`, written on this host by a
    process that no longer exists, are touched: a stale staging directory is deleted; a
    stale backup is renamed back to `directory` if that is missing (the writer died
    between its two renames), else deleted. Leftovers of live writers, of other hosts, and
    of older versions (no pid in the name) are left alone; the latter are named in a warning.

    Returns:
        The paths removed or restored.
    """
    parent, base = os.path.split(os.path.abspath(directory))
    if not os.path.isdir(parent):
        return []
    ours = re.compile(rf"^\.{re.escape(base)}\.({'|'.join(_KINDS)})-(\d+)@(.+)-[^-]+$")
    legacy = re.compile(rf"^\.{re.escape(base)}\.({'|'.join(_KINDS)})-[0-9a-z_]{{8}}$")
    host, handled, unknown = socket.gethostname(), [], []
    for name in sorted(os.listdir(parent)):
        path = os.path.join(parent, name)
        match = ours.match(name)
        if match is None:
            if legacy.match(name):
                unknown.append(path)
            continue
        kind, pid, writer_host = match.group(1), int(match.group(2)), match.group(3)
        if writer_host != host or _is_alive(pid):
            continue
        if kind == "previous" and not os.path.exists(directory):
            os.rename(path, directory)
        else:
            shutil.rmtree(path, ignore_errors=True)
        handled.append(path)
    if unknown:
        warnings.warn(
            f"found staging directories of an older keras_barlow with no recorded writer: {unknown}. "
            "Delete them by hand once no export of this directory is running.",
            stacklevel=2,
        )
    return handled


def _prefix(base, kind):
    return f".{base}.{kind}-{os.getpid()}@{socket.gethostname()}-"


def _is_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
