"""Settings a command needs before TensorFlow and Keras load: the Keras backend and
TensorFlow's C++ log level.

Both are read once, at import: Keras fixes its backend from `KERAS_BACKEND`, TensorFlow its
C++ log level from `TF_CPP_MIN_LOG_LEVEL` (set later, it changes nothing). A script in
`recipes/` sets the log level at its top, before its first import. The `keras-barlow` command
cannot: its entry point is in this package, and importing the package loads TensorFlow. So,
once the command line is parsed (`--help` and argument errors exit before),
`restart_if_needed` starts the same command line again, once, with what is missing:

- `TF_CPP_MIN_LOG_LEVEL=2` (`quiet=True`, the command) where the user has not set it:
  TensorFlow's C++ info and warning lines are hidden, errors are shown. Whether the user set
  it is read from the environment the process started with (`launch_environment`): JAX's
  `__init__` sets the variable to 1 when TensorFlow imports it.
- `KERAS_BACKEND=<--backend>` where Keras runs on another backend (the command and the
  pretraining recipes).

Importing `keras_barlow` (or this module) changes neither variable.
"""

import os
import shlex
import subprocess
import sys

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LOG_LEVEL = "2"  # errors only: no info (I...) and warning (W...) lines from TensorFlow's C++ code
BACKEND_VARIABLE = "KERAS_BACKEND"
RESTARTED_VARIABLE = "KERAS_BARLOW_RESTARTED"  # set in the restarted process: never restart twice
_READ = object()  # read the value where it is needed


def launch_environment():
    """The environment this process started with, or `None` where it cannot be read.

    `/proc/self/environ` (Linux) keeps the environment of the program's start, whatever the
    process (or an imported library) has set since.

    Returns:
        A dict of strings, or `None` (no `/proc`).
    """
    try:
        with open("/proc/self/environ", "rb") as handle:
            entries = handle.read().split(b"\0")
    except OSError:
        return None
    pairs = (os.fsdecode(entry).partition("=") for entry in entries if b"=" in entry)
    return {name: value for name, _, value in pairs}


def log_level_chosen_by_user(*, launched=_READ, environ=None, modules=None):
    """Whether the user set `TF_CPP_MIN_LOG_LEVEL` (rather than nobody, or JAX's import).

    Args:
        launched: the environment at the process' start (default: `launch_environment()`;
            `None`, unknown: then the current one is read, where a value of 1 with JAX
            imported counts as JAX's).
        environ: the current environment (default `os.environ`).
        modules: the imported modules (default `sys.modules`).

    Returns:
        bool.
    """
    launched = launch_environment() if launched is _READ else launched
    if launched is not None:
        return LOG_LEVEL_VARIABLE in launched
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    value = environ.get(LOG_LEVEL_VARIABLE)
    return value is not None and not (value == "1" and "jax" in modules)


def quiet_environment(environ=None, *, user_log_level=None):
    """A copy of `environ` (default `os.environ`) for a child process: `TF_CPP_MIN_LOG_LEVEL=2`
    unless the user set the level (default: `log_level_chosen_by_user()`)."""
    environ = dict(os.environ if environ is None else environ)
    if not (log_level_chosen_by_user() if user_log_level is None else user_log_level):
        environ[LOG_LEVEL_VARIABLE] = QUIET_LOG_LEVEL
    return environ


def missing_environment(backend=None, *, quiet=False, user_log_level=None, modules=None):
    """The variables this process lacks, given what it has already imported.

    Args:
        backend: the Keras backend the command needs (`None`: any).
        quiet: whether TensorFlow's C++ log level should be lowered where the user left it unset.
        user_log_level: whether the user set the level (default: `log_level_chosen_by_user()`).
        modules: the imported modules (default `sys.modules`).

    Returns:
        A dict of variables to set (empty: the process can go on as it is):
        `TF_CPP_MIN_LOG_LEVEL` with `quiet` when TensorFlow is loaded and the user did not set
        it; `KERAS_BACKEND` when Keras is loaded on a backend other than `backend`.
    """
    modules = sys.modules if modules is None else modules
    missing = {}
    user_log_level = log_level_chosen_by_user() if user_log_level is None else user_log_level
    if quiet and "tensorflow" in modules and not user_log_level:
        missing[LOG_LEVEL_VARIABLE] = QUIET_LOG_LEVEL
    if backend is not None and "keras" in modules and modules["keras"].backend.backend() != backend:
        missing[BACKEND_VARIABLE] = backend
    return missing


def command_line(command, argv):
    """`command` followed by `argv` (`None`: this process' arguments), as one shell line.

    Example:
    >>> command_line("keras-barlow quickstart", ["--data", "mnist5k", "--output-dir", "runs/a b"])
    "keras-barlow quickstart --data mnist5k --output-dir 'runs/a b'"
    """
    return " ".join([command, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])


def restart_command():
    """This process' command line, to start again: the interpreter, its options and arguments."""
    return [sys.executable, *sys.orig_argv[1:]]


def restart_if_needed(backend=None, *, quiet=False):
    """Starts this command line again with the variables it lacks, if any (once).

    Call it only where the arguments are this process' own command line. On POSIX the
    process is replaced (same process id, signals and exit code go to the new program);
    elsewhere the command runs as a child and its exit code ends this process.

    Args:
        backend: the Keras backend the command needs (`None`: any).
        quiet: lower TensorFlow's C++ log level where the user has not set it (see
            `missing_environment`).

    Returns:
        `None`, when nothing is missing or this process is already a restart (then the
        command runs here, and `keras_barlow.cli.pretrain` refuses a wrong backend with a message).
    """
    if os.environ.pop(RESTARTED_VARIABLE, None):  # this is the restart: its children start afresh
        return None
    missing = missing_environment(backend, quiet=quiet)
    if not missing:
        return None
    environ = {**os.environ, **missing, RESTARTED_VARIABLE: "1"}
    command = restart_command()
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execve(sys.executable, command, environ)
    raise SystemExit(subprocess.call(command, env=environ))
