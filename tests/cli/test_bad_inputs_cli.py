"""Bad input to the pretraining command, as a new user gives it (moved from the package-wide
bad-input file; the locked output directory and the steps-per-epoch cases run the pretraining
recipe, which calls `keras_barlow.cli.pretrain`)."""

import os
import re
import subprocess
import sys

import pytest
from helpers import REPO


def pretrain_recipe():
    sys.path.insert(0, os.path.join(REPO, "recipes"))
    import pretrain

    return pretrain


def files_under(directory):
    return sorted(
        os.path.relpath(os.path.join(root, name), directory)
        for root, _, names in os.walk(directory)
        for name in names
    )


@pytest.mark.slow
def test_a_second_pretrain_run_on_a_locked_output_directory_is_refused(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from keras_barlow.cli.run_lock import OutputDirectoryLock as L; "
            f"L({str(out)!r}).acquire(); print('locked', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises((SystemExit, RuntimeError)) as caught:
            pretrain_recipe().main(["--smoke", "--no-export", "--verbose", "0", "--output-dir", str(out)])
        assert f"pid {holder.pid}" in str(caught.value) and "another output directory" in str(caught.value)
        assert files_under(out) == [".keras_barlow.lock"]  # nothing written by the refused run
    finally:
        holder.communicate("\n", timeout=60)


@pytest.mark.slow
def test_steps_per_epoch_beyond_the_data_repeats_it_or_refuses(tmp_path):
    # digits: 1,347 training images = 5 batches of 256; 3 epochs × 4 steps ask for 12.
    argv = [
        "--smoke",
        "--batch-size",
        "256",
        "--steps-per-epoch",
        "4",
        "--epochs",
        "3",
        "--no-export",
        "--verbose",
        "0",
    ]
    try:
        summary = pretrain_recipe().main([*argv, "--output-dir", str(tmp_path / "run")])
    except (SystemExit, ValueError) as error:
        assert "--steps-per-epoch" in str(error) and "5 batches" in str(error)
    else:
        assert summary["optimizer_steps"] == 12


def test_a_bad_projector_flag_is_refused_when_parsed(capsys):
    from keras_barlow.cli import pretrain

    with pytest.raises(SystemExit) as caught:
        pretrain.parse(["--smoke", "--projector", "abc"])
    assert caught.value.code == 2
    assert re.search(r"--projector.*abc.*comma-separated", capsys.readouterr().err)
