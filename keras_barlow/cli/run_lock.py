"""One writer per output directory: a lock file that names its owner and notices stale locks.

Two training runs pointed at the same output directory would delete each other's temporary
backups, resume from each other's live backup, interleave `history.csv` and overwrite
checkpoints. `OutputDirectoryLock` makes the second run refuse instead:

- the lock is a file (`.keras_barlow.lock` in the directory) created atomically with
  `O_CREAT | O_EXCL`, holding the owner's pid, host, start time and command;
- a lock left by a run that died on this host (its pid is gone, or the pid now belongs to a
  process started later, or the machine rebooted since) is stale: it is taken over with a
  warning;
- a lock from another host is never taken over (its pid cannot be checked from here): the
  error says how to remove it once that host's run is over;
- the lock is released when the `with` block ends, also on an exception, and at interpreter
  exit when `acquire()` was called directly.

```python
from keras_barlow.cli.run_lock import OutputDirectoryLock

with OutputDirectoryLock("runs/cifar10"):
    model.fit(...)  # a second run on runs/cifar10 raises OutputDirectoryLockedError
```
"""

import atexit
import contextlib
import json
import logging
import os
import shlex
import socket
import sys
import time
import uuid

_log = logging.getLogger(__name__)

LOCK_FILENAME = ".keras_barlow.lock"
_UNREADABLE_RETRY_SECONDS = 2.0  # a lock being written is empty for an instant


class OutputDirectoryLockedError(RuntimeError):
    """Another run holds the output directory (or its lock file cannot be read)."""


def process_start_ticks(pid):
    """The start time of process `pid` in clock ticks after boot (`/proc/<pid>/stat`, field 22).

    Args:
        pid: a process id.

    Returns:
        An int, or `None` where `/proc` is not available or the process does not exist.
    """
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def boot_id():
    """An id of the current boot (Linux), or `None`: a pid recorded before a reboot means nothing."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return None


def pid_is_alive(pid):
    """True when a process `pid` exists on this host (also one of another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(path):
    """The owner record of the lock file `path`, or `None` when there is no lock file.

    Raises:
        OutputDirectoryLockedError: the file exists but does not hold a readable record
            (after waiting briefly for an owner that is still writing it).
    """
    deadline = time.monotonic() + _UNREADABLE_RETRY_SECONDS
    while True:
        try:
            with open(path) as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        try:
            record = json.loads(text)
            if isinstance(record, dict) and isinstance(record.get("pid"), int) and record.get("host"):
                return record
        except ValueError:
            record = None  # still being written by its creator: read it again below
        if time.monotonic() > deadline:
            raise OutputDirectoryLockedError(
                f"the lock file {path} exists but holds no readable owner record ({text[:80]!r}); it "
                "was not taken over. If no other run uses this directory, delete the file and start again."
            )
        time.sleep(0.05)


def stale_reason(record):
    """Why the lock `record` (taken on this host) is stale, or `None` while its owner runs."""
    pid = record["pid"]
    if record.get("boot_id") and boot_id() and record["boot_id"] != boot_id():
        return f"the machine rebooted since pid {pid} took it"
    if not pid_is_alive(pid):
        return f"pid {pid} is not running"
    recorded, current = record.get("process_start"), process_start_ticks(pid)
    if recorded is not None and current is not None and recorded != current:
        return f"pid {pid} now belongs to a process started later (pid reused)"
    return None


def describe_owner(record):
    """One line naming the lock's owner: pid, host, start time and command."""
    return (
        f"pid {record['pid']} on host {record['host']!r}, started {record.get('started', '?')}, "
        f"command: {record.get('command') or '?'}"
    )


@contextlib.contextmanager
def _takeover_guard(directory):
    """Serialises stale-lock takeovers on this host (`flock`, released if the process dies)."""
    try:
        import fcntl
    except ImportError:  # Windows: no takeover race protection, the O_EXCL create still decides
        yield
        return
    fd = os.open(directory, os.O_RDONLY)  # the directory itself: no extra file left behind
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class OutputDirectoryLock:
    """Exclusive use of an output directory by one run (a context manager).

    Args:
        directory: the run's output directory (created if missing). Must be on a local or
            mounted file system (e.g. a Colab Google Drive folder).
        command: the command recorded in the lock (default: this process' `sys.argv`).

    Raises (from `acquire` / `with`):
        OutputDirectoryLockedError: a live run holds the directory, on this host or on
            another one; the message names the owner and what to do.
    """

    def __init__(self, directory, *, command=None):
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise TypeError(f"directory must be a path, got {directory!r}")
        if "://" in str(directory):
            raise ValueError(
                f"the output directory must be a local or mounted path (got {directory!r}): a lock file "
                "cannot be created atomically on a bucket; on Colab use /content/drive/MyDrive/..."
            )
        self.directory = os.path.abspath(os.fspath(directory))
        self.path = os.path.join(self.directory, LOCK_FILENAME)
        self.command = command if command is not None else shlex.join([sys.executable, *sys.argv])
        self._token = None

    @property
    def held(self):
        """True while this object holds the lock."""
        return self._token is not None

    def owner(self):
        """The current owner record of the directory's lock, or `None` when it is free."""
        return read_lock(self.path)

    def acquire(self):
        """Takes the lock, taking over a stale one with a warning; returns `self`."""
        if self.held:
            raise RuntimeError(f"this lock on {self.directory} is already held; release it first")
        os.makedirs(self.directory, exist_ok=True)
        while not self._try_create():
            record = read_lock(self.path)
            if record is None:  # released between our create and read: try again
                continue
            if record["host"] != socket.gethostname():
                raise OutputDirectoryLockedError(
                    f"the output directory {self.directory} is locked by a run on another host: "
                    f"{describe_owner(record)}. Its process cannot be checked from {socket.gethostname()!r}, "
                    f"so the lock is not taken over. Use another output directory, or, if that run is "
                    f"over or host {record['host']!r} is gone, delete {self.path} and start again."
                )
            reason = stale_reason(record)
            if reason is None:
                raise OutputDirectoryLockedError(
                    f"the output directory {self.directory} is in use by another run: "
                    f"{describe_owner(record)}. "
                    "Two runs on one directory would overwrite each other's backups, checkpoints and "
                    f"history. Wait for it to finish, stop it (kill {record['pid']}), or pass another "
                    "output directory."
                )
            with _takeover_guard(self.directory):
                # Re-read under the guard: another process may have taken it over already.
                if read_lock(self.path) == record:
                    _log.warning(
                        "taking over the stale lock %s (%s): %s", self.path, reason, describe_owner(record)
                    )
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(self.path)
        atexit.register(self.release)
        return self

    def release(self):
        """Removes the lock file if this object holds it (safe to call twice)."""
        if not self.held:
            return
        token, self._token = self._token, None
        atexit.unregister(self.release)
        try:
            record = read_lock(self.path)
        except OutputDirectoryLockedError:
            record = None
        if record is not None and record.get("token") == token:
            os.remove(self.path)
        else:
            _log.warning("the lock %s was no longer ours at release (removed or taken over)", self.path)

    def _try_create(self):
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        token = uuid.uuid4().hex
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": self.command,
            "process_start": process_start_ticks(os.getpid()),
            "boot_id": boot_id(),
            "token": token,
        }
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        self._token = token
        return True

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()
        return False

    def __repr__(self):
        return f"OutputDirectoryLock({self.directory!r}, held={self.held})"
