"""OutputDirectoryLock: one run per output directory, with real processes, stale and foreign locks."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from keras_barlow.cli import run_lock
from keras_barlow.cli.run_lock import (
    LOCK_FILENAME,
    OutputDirectoryLock,
    OutputDirectoryLockedError,
    process_start_ticks,
)

RUN_LOCK_FILE = run_lock.__file__

# Loads run_lock.py by path so that the helper processes start in well under a second
# (importing the package would import Keras).
_LOAD_MODULE = textwrap.dedent(
    f"""
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("run_lock", {RUN_LOCK_FILE!r})
    run_lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_lock)
    """
)


def _python(code, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", _LOAD_MODULE + textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _write_lock(directory, **record):
    os.makedirs(directory, exist_ok=True)
    record = {
        "host": socket.gethostname(),
        "started": "2026-01-01T00:00:00",
        "command": "python x.py",
        **record,
    }
    with open(os.path.join(directory, LOCK_FILENAME), "w") as handle:
        json.dump(record, handle)
    return record


def _read_lock_file(directory):
    with open(os.path.join(directory, LOCK_FILENAME)) as handle:
        return json.load(handle)


def test_a_second_process_is_refused_while_the_first_holds_the_directory(tmp_path):
    out = str(tmp_path / "run")
    holder = _python(
        f"""
        with run_lock.OutputDirectoryLock({out!r}, command="python recipes/pretrain.py --output-dir run"):
            print("locked", flush=True)
            sys.stdin.readline()
        print("released", flush=True)
        """
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        contender = _python(
            f"""
            try:
                run_lock.OutputDirectoryLock({out!r}).acquire()
            except run_lock.OutputDirectoryLockedError as error:
                print("refused:", error)
            else:
                print("acquired")
            """
        )
        output, errors = contender.communicate(timeout=60)
        assert output.startswith("refused:"), output + errors
        assert f"pid {holder.pid}" in output
        assert "recipes/pretrain.py --output-dir run" in output
        assert "another output directory" in output and f"kill {holder.pid}" in output
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
    finally:
        holder.communicate(timeout=60)
    assert not os.path.exists(os.path.join(out, LOCK_FILENAME))
    with OutputDirectoryLock(out) as lock:  # free again once the holder has finished
        assert lock.owner()["pid"] == os.getpid()


def test_a_lock_of_a_killed_process_is_taken_over_with_a_warning(tmp_path, caplog):
    out = str(tmp_path / "run")
    holder = _python(
        f"""
        run_lock.OutputDirectoryLock({out!r}).acquire()
        print("locked", flush=True)
        sys.stdin.readline()
        """
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()  # kill -9: no release, the lock file stays
    holder.communicate(timeout=60)
    assert _read_lock_file(out)["pid"] == holder.pid
    with caplog.at_level("WARNING"), OutputDirectoryLock(out) as lock:
        assert lock.owner()["pid"] == os.getpid()
    assert f"pid {holder.pid} is not running" in caplog.text
    assert not os.path.exists(os.path.join(out, LOCK_FILENAME))


def test_a_reused_pid_does_not_keep_a_stale_lock(tmp_path, caplog):
    # The recorded pid is alive (it is ours) but belongs to a process started at another time.
    out = str(tmp_path / "run")
    start = process_start_ticks(os.getpid())
    if start is None:
        pytest.skip("no /proc on this system: pid reuse cannot be detected")
    _write_lock(out, pid=os.getpid(), process_start=start - 1)
    with caplog.at_level("WARNING"), OutputDirectoryLock(out):
        pass
    assert "pid reused" in caplog.text


def test_a_live_lock_on_this_host_is_never_taken_over(tmp_path):
    out = str(tmp_path / "run")
    record = _write_lock(out, pid=os.getpid(), process_start=process_start_ticks(os.getpid()))
    with pytest.raises(OutputDirectoryLockedError, match=f"in use by another run: pid {os.getpid()}"):
        OutputDirectoryLock(out).acquire()
    assert _read_lock_file(out) == record


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    out = str(tmp_path / "run")
    record = _write_lock(out, pid=4_000_000, host="tpu-vm-elsewhere")  # that pid cannot exist here
    with pytest.raises(OutputDirectoryLockedError) as caught:
        OutputDirectoryLock(out).acquire()
    message = str(caught.value)
    assert "another host" in message and "'tpu-vm-elsewhere'" in message and "pid 4000000" in message
    assert f"delete {os.path.join(out, LOCK_FILENAME)}" in message
    assert _read_lock_file(out) == record


def test_the_lock_is_released_when_the_run_raises(tmp_path):
    out = str(tmp_path / "run")
    with pytest.raises(ZeroDivisionError), OutputDirectoryLock(out):
        assert os.path.exists(os.path.join(out, LOCK_FILENAME))
        1 / 0  # noqa: B018
    assert not os.path.exists(os.path.join(out, LOCK_FILENAME))
    OutputDirectoryLock(out).acquire().release()


def test_the_lock_is_released_at_interpreter_exit_without_a_with_block(tmp_path):
    out = str(tmp_path / "run")
    process = _python(f"run_lock.OutputDirectoryLock({out!r}).acquire(); sys.exit(3)")
    process.communicate(timeout=60)
    assert process.returncode == 3
    assert not os.path.exists(os.path.join(out, LOCK_FILENAME))


def test_release_leaves_a_lock_that_another_run_took_over(tmp_path):
    out = str(tmp_path / "run")
    lock = OutputDirectoryLock(out).acquire()
    record = _write_lock(out, pid=os.getpid(), token="someone-else")
    lock.release()
    assert _read_lock_file(out) == record


def test_an_unreadable_lock_file_is_reported_not_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILENAME).write_text("")
    with pytest.raises(OutputDirectoryLockedError, match=r"no readable owner record.*delete the file"):
        OutputDirectoryLock(out).acquire()
    assert (out / LOCK_FILENAME).exists()


def test_a_bucket_path_is_refused():
    with pytest.raises(ValueError, match=r"local or mounted path.*drive"):
        OutputDirectoryLock("gs://bucket/run")
