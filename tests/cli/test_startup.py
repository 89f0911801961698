"""keras_barlow.cli.startup: what is settled before TensorFlow and Keras load, and the restart."""

import os
import subprocess
import sys
import types

import pytest

from keras_barlow.cli import startup

VARIABLE = startup.LOG_LEVEL_VARIABLE


def _keras_on(backend):
    return types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda: backend))


def _clean_environment():
    """This process' environment without the variables the tests are about."""
    environ = dict(os.environ)
    for name in (VARIABLE, startup.RESTARTED_VARIABLE):
        environ.pop(name, None)
    return environ


def test_missing_environment():
    tensorflow_loaded = {"tensorflow": object(), "keras": _keras_on("tensorflow")}
    assert startup.missing_environment(quiet=True, user_log_level=False, modules=tensorflow_loaded) == {
        VARIABLE: "2"
    }
    assert startup.missing_environment(quiet=True, user_log_level=True, modules=tensorflow_loaded) == {}
    assert startup.missing_environment(quiet=False, user_log_level=False, modules=tensorflow_loaded) == {}
    assert startup.missing_environment(quiet=True, user_log_level=False, modules={}) == {}  # no TensorFlow
    assert startup.missing_environment("jax", user_log_level=True, modules=tensorflow_loaded) == {
        "KERAS_BACKEND": "jax"
    }
    assert startup.missing_environment("tensorflow", user_log_level=True, modules=tensorflow_loaded) == {}
    assert startup.missing_environment("jax", user_log_level=True, modules={}) == {}  # Keras not loaded yet


def test_the_users_log_level_is_read_from_the_launch_environment():
    assert startup.log_level_chosen_by_user(launched={VARIABLE: "0"}, environ={})
    # JAX's import sets the variable to 1 after the start: not the user's choice.
    assert not startup.log_level_chosen_by_user(launched={}, environ={VARIABLE: "1"})
    # Without /proc: the current environment, where 1 with JAX imported is JAX's.
    jax = {"jax": object()}
    assert not startup.log_level_chosen_by_user(launched=None, environ={VARIABLE: "1"}, modules=jax)
    assert startup.log_level_chosen_by_user(launched=None, environ={VARIABLE: "1"}, modules={})
    assert startup.log_level_chosen_by_user(launched=None, environ={VARIABLE: "3"}, modules=jax)
    assert not startup.log_level_chosen_by_user(launched=None, environ={}, modules={})


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="Linux only")
def test_launch_environment_ignores_what_the_process_set_since(monkeypatch):
    monkeypatch.setenv("KERAS_BARLOW_TEST_SET_LATER", "1")
    launched = startup.launch_environment()
    assert "PATH" in launched and "KERAS_BARLOW_TEST_SET_LATER" not in launched


def test_quiet_environment_keeps_the_users_level():
    assert startup.quiet_environment({"A": "b"}, user_log_level=False) == {"A": "b", VARIABLE: "2"}
    assert startup.quiet_environment({VARIABLE: "1"}, user_log_level=False)[VARIABLE] == "2"
    assert startup.quiet_environment({VARIABLE: "0"}, user_log_level=True)[VARIABLE] == "0"


def test_command_line_quotes_the_arguments():
    line = startup.command_line("keras-barlow quickstart", ["--data", "mnist5k", "--output-dir", "runs/a b"])
    assert line == "keras-barlow quickstart --data mnist5k --output-dir 'runs/a b'"


class _Replaced(Exception):
    pass


def test_restart_replaces_the_process_with_the_missing_variables(monkeypatch):
    calls = []

    def execve(path, argv, environ):
        calls.append((path, argv, environ))
        raise _Replaced

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr(os, "name", "posix")
    monkeypatch.delenv(startup.RESTARTED_VARIABLE, raising=False)
    monkeypatch.setattr(startup, "missing_environment", lambda backend, quiet: {VARIABLE: "2"})
    with pytest.raises(_Replaced):
        startup.restart_if_needed(quiet=True)
    ((path, argv, environ),) = calls
    assert path == sys.executable and argv == [sys.executable, *sys.orig_argv[1:]]
    assert environ[VARIABLE] == "2" and environ[startup.RESTARTED_VARIABLE] == "1"

    monkeypatch.setenv(startup.RESTARTED_VARIABLE, "1")  # a restarted process never restarts
    assert startup.restart_if_needed(quiet=True) is None
    assert startup.RESTARTED_VARIABLE not in os.environ  # and its own children start afresh
    monkeypatch.setattr(startup, "missing_environment", lambda backend, quiet: {})
    assert startup.restart_if_needed(quiet=True) is None and len(calls) == 1


def test_importing_the_package_changes_no_logging_setting():
    """`import keras_barlow` (and the command's modules) leaves TF_CPP_MIN_LOG_LEVEL unset, or at
    the 1 that JAX's own import sets."""
    code = (
        "import os, sys\n"
        "import keras_barlow, keras_barlow.cli.main\n"
        "print('LEVEL', os.environ.get('TF_CPP_MIN_LOG_LEVEL'), 'jax' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=_clean_environment(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("LEVEL")]
    assert line in ("LEVEL None True", "LEVEL None False", "LEVEL 1 True"), line


@pytest.mark.slow
def test_a_restart_starts_the_same_command_with_the_level_set():
    code = (
        "import os\n"
        "from keras_barlow.cli import startup\n"
        "print('RUN', os.environ.get('KERAS_BARLOW_RESTARTED'), os.environ.get('TF_CPP_MIN_LOG_LEVEL'))\n"
        "startup.restart_if_needed(quiet=True)\n"
        "print('DONE', os.environ.get('KERAS_BARLOW_RESTARTED'), os.environ.get('TF_CPP_MIN_LOG_LEVEL'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=_clean_environment(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [line for line in result.stdout.splitlines() if line.startswith(("RUN", "DONE"))]
    assert runs[0] in ("RUN None None", "RUN None 1") and runs[1:] == ["RUN 1 2", "DONE None 2"]
    assert len(runs) == 3
