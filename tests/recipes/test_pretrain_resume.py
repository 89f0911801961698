"""The pretraining recipes as a user runs them: kill -9 at a random step, then the same
command again, ends with the weights of an uninterrupted run; one run per output directory;
flags checked before any data or model is built; --steps-per-epoch beyond the data."""

import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import zipfile

import h5py
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 900

# Runs a recipe with TensorFlow's op determinism on; with KILL_AFTER_STEP=k it SIGKILLs
# itself right after the backup of step k is complete (as a pre-emption would).
WRAPPER = textwrap.dedent(
    """
    import os, runpy, signal, sys
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    kill_after = int(os.environ.get("KILL_AFTER_STEP", "0"))
    if kill_after:
        from keras_barlow.fault_tolerance import backup
        save = backup.BackupAndRestore._save
        def save_then_die(self):
            save(self)
            if self._step >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        backup.BackupAndRestore._save = save_then_die
    recipe = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(recipe, run_name="__main__")
    """
)


def _weights(keras_file):
    """Every array of a `.keras` file's weights (model and optimizer), by HDF5 path."""
    with zipfile.ZipFile(keras_file) as archive:
        data = io.BytesIO(archive.read("model.weights.h5"))
    arrays = {}
    with h5py.File(data, "r") as handle:
        handle.visititems(lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return arrays


def _start(tmp_path, recipe, backend, out, argv, kill_after=0):
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    env = {
        **os.environ,
        "PYTHONPATH": REPO,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KILL_AFTER_STEP": str(kill_after),
    }
    command = [sys.executable, str(wrapper), os.path.join(REPO, "recipes", recipe), *argv]
    command += ["--backend", backend, "--output-dir", str(out)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process):
    output, _ = process.communicate(timeout=TIMEOUT)
    return process.returncode, output


@pytest.mark.slow
@pytest.mark.tensorflow_only  # subprocesses with their own backend: once is enough
@pytest.mark.parametrize(
    "recipe, backend",
    [("pretrain.py", "tensorflow"), ("pretrain.py", "jax"), ("imagenet_resnet50_tpu.py", "jax")],
)
def test_sigkill_at_a_random_step_then_the_same_command_gives_the_uninterrupted_weights(
    tmp_path, recipe, backend
):
    epochs, steps = 2, 3
    kill_after = random.choice([k for k in range(1, epochs * steps) if k % steps])  # mid-epoch
    argv = ["--smoke", "--no-export", "--verbose", "0", "--epochs", str(epochs), "--steps-per-epoch", str(steps)]
    argv += ["--backup-every", "1"]
    reference = _start(tmp_path, recipe, backend, tmp_path / "reference", argv)
    victim = _start(tmp_path, recipe, backend, tmp_path / "run", argv, kill_after=kill_after)
    try:
        code, output = _finish(victim)
        assert code == -signal.SIGKILL, f"kill after step {kill_after}: exit {code}\n{output[-4000:]}"
        assert (tmp_path / "run" / "backup").is_dir()
        resumed = _start(tmp_path, recipe, backend, tmp_path / "run", argv)
        code, output = _finish(resumed)
        assert code == 0, f"resume after a kill at step {kill_after}:\n{output[-4000:]}"
        assert f"resuming at step {kill_after}" in output
        code, reference_output = _finish(reference)
        assert code == 0, reference_output[-4000:]
    finally:
        for process in (reference, victim):
            if process.poll() is None:
                process.kill()
                process.wait()
    final = f"checkpoints/epoch-{epochs:04d}.keras"
    expected, actual = _weights(tmp_path / "reference" / final), _weights(tmp_path / "run" / final)
    assert sorted(expected) == sorted(actual) and expected
    worst = max(float(np.max(np.abs(actual[name] - expected[name]), initial=0.0)) for name in expected)
    print(f"{recipe} on {backend}, killed after step {kill_after}: max |dw| = {worst}")
    assert worst == 0.0, f"killed after step {kill_after}: max |dw| = {worst}"
    assert not (tmp_path / "run" / "backup").exists() and not (tmp_path / "run" / ".keras_barlow.lock").exists()
