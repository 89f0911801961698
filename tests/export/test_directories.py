"""Exports never delete what they did not write, and clean only their own dead leftovers."""

import os
import socket
import subprocess
import sys

import pytest

from keras_barlow import export
from keras_barlow.export import directories
from tests.export.export_helpers import hidden_entries, tree_digest


def dead_pid():
    """The pid of a process that has exited."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(child.stdout)


def test_foreign_files_are_carried_over(exported, tmp_path):
    """A user's notes, the shipped README.md and figures survive a re-export unchanged."""
    target = tmp_path / "encoder"
    export.export_encoder(exported["model"], target, metadata={"augmentation": "digits"})
    (target / "my_notes.txt").write_text("keep me")
    (target / "README.md").write_text("# my encoder\n")
    (target / "cross_correlation.png").write_bytes(bytes(range(256)))
    (target / "figures").mkdir()
    (target / "figures" / "loss.csv").write_text("1,2\n")
    foreign = {k: v for k, v in tree_digest(target).items() if not k.startswith(tuple(export.EXPORT_ENTRIES))}
    old_card = export.read_model_card(target)

    export.export_encoder(exported["model"], target, metadata={"augmentation": "digits", "name": "second"})
    after = tree_digest(target)
    assert {k: after.get(k) for k in foreign} == foreign
    assert export.read_model_card(target)["name"] == "second" != old_card["name"]
    assert not hidden_entries(tmp_path)


def test_stale_staging_of_dead_writers_is_cleaned(exported, tmp_path):
    host, base = socket.gethostname(), "encoder"
    dead, live = dead_pid(), os.getpid()
    leftovers = {
        "dead": f".{base}.partial-{dead}@{host}-abcd1234",
        "dead_backup": f".{base}.previous-{dead}@{host}-efgh5678",
        "live": f".{base}.partial-{live}@{host}-ijkl9012",
        "other_host": f".{base}.partial-{dead}@not-{host}-mnop3456",
        "other_export": f".other.partial-{dead}@{host}-qrst7890",
        "legacy": f".{base}.partial-uvwx1234",
    }
    for name in leftovers.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "encoder.keras").write_bytes(b"half")
    with pytest.warns(UserWarning, match="older keras_barlow"):
        export.export_encoder(exported["model"], tmp_path / base, metadata={"augmentation": "digits"})
    remaining = set(hidden_entries(tmp_path))
    assert remaining == {leftovers[k] for k in ("live", "other_host", "other_export", "legacy")}
    assert export.load_encoder(tmp_path / base) is not None


def test_a_killed_exports_partial_folder_is_cleaned_by_the_next_export(exported, tmp_path):
    # The staging name records its writer (`.NAME.partial-PID@HOST-RANDOM`); this writer is dead.
    leftover = tmp_path / f".encoder.partial-{dead_pid()}@{socket.gethostname()}-killed"
    (leftover / "saved_model").mkdir(parents=True)
    (leftover / "encoder.keras").write_bytes(b"half")
    os.utime(leftover, (0, 0))  # written long ago: its export is not running any more
    export.export_encoder(exported["model"], tmp_path / "encoder", metadata={"augmentation": "digits"})
    assert sorted(os.listdir(tmp_path)) == ["encoder"]


def test_backup_of_a_writer_killed_between_renames_is_put_back(exported, tmp_path):
    """Killed after moving the old export aside: the next export (or clean-up) restores it."""
    backup = tmp_path / f".encoder.previous-{dead_pid()}@{socket.gethostname()}-abcd1234"
    import shutil

    shutil.copytree(exported["dir"], backup)
    before = tree_digest(backup)
    assert directories.clean_stale_directories(tmp_path / "encoder") == [str(backup)]
    assert tree_digest(tmp_path / "encoder") == before
    assert not hidden_entries(tmp_path)


def test_replace_directory_is_public_and_atomic(tmp_path):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "old.txt").write_text("old")
    staging = directories.staging_directory(tmp_path / "target")
    with open(os.path.join(staging, "new.txt"), "w") as f:
        f.write("new")
    export.replace_directory(staging, tmp_path / "target")
    assert sorted(os.listdir(tmp_path / "target")) == ["new.txt"]
    assert not hidden_entries(tmp_path)
