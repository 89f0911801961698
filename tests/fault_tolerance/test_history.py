"""truncate_history: a CSVLogger file cut back to the epoch a run resumes at, atomically."""

import os

import pytest

from keras_barlow.fault_tolerance import truncate_history

HEADER = "epoch,loss,on_diag\r\n"


def _rows(*epochs):
    return "".join(f"{epoch},{10 - epoch}.5,{epoch}.25\r\n" for epoch in epochs)


def test_rows_of_the_epochs_trained_again_are_dropped(tmp_path):
    path = tmp_path / "history.csv"
    # Epoch 1 twice, as a run restarted from an older backup used to leave it.
    path.write_bytes((HEADER + _rows(0, 1, 2, 1, 2, 3)).encode())
    kept = truncate_history(str(path), 1)
    assert path.read_bytes() == (HEADER + _rows(0)).encode()  # header and CRLF line ends kept
    assert kept == [{"epoch": "0", "loss": "10.5", "on_diag": "0.25"}]
    assert os.listdir(tmp_path) == ["history.csv"]  # no temporary file left


def test_a_history_with_nothing_to_drop_is_not_rewritten(tmp_path):
    path = tmp_path / "history.csv"
    path.write_bytes((HEADER + _rows(0, 1)).encode())
    os.utime(path, (1, 1))
    assert [row["epoch"] for row in truncate_history(str(path), 2)] == ["0", "1"]
    assert os.stat(path).st_mtime == 1
    assert truncate_history(str(tmp_path / "missing.csv"), 0) == []
    assert not (tmp_path / "missing.csv").exists()


def test_from_step_zero_only_the_header_stays(tmp_path):
    path = tmp_path / "history.csv"
    path.write_bytes((HEADER + _rows(0, 1)).encode())
    assert truncate_history(str(path), 0) == []
    assert path.read_bytes() == HEADER.encode()


def test_a_last_line_cut_short_by_a_kill_is_dropped(tmp_path):
    path = tmp_path / "history.csv"
    path.write_bytes((HEADER + _rows(0) + "1,9.5,1.2").encode())  # no line end: torn
    assert [row["epoch"] for row in truncate_history(str(path), 5)] == ["0"]
    assert path.read_bytes() == (HEADER + _rows(0)).encode()
    path.write_bytes(b"epoch,lo")  # a header cut short: CSVLogger writes a new one
    assert truncate_history(str(path), 5) == []
    assert path.read_bytes() == b""


def test_bad_arguments_are_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("step,loss\n0,1.0\n")
    with pytest.raises(ValueError, match=r"other.csv is not a CSVLogger history.*no 'epoch' column"):
        truncate_history(str(path), 0)
    with pytest.raises(ValueError, match="epoch must be an integer ≥ 0, got -1"):
        truncate_history(str(path), -1)
