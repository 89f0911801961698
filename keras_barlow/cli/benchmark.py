"""`keras-barlow benchmark`: runs `recipes/benchmark.py` of a source checkout.

The benchmark harness (timing, profiling, the PyTorch reference) is not part of the installed
package: it lives in the repository's `recipes/`. The command looks for it in the current
directory (`recipes/benchmark.py`), then next to the package's source (an editable install
of a checkout), and runs it with this interpreter and the arguments given; without a
checkout it exits with a message saying where the harness is.
"""

import subprocess
import sys
from pathlib import Path

from keras_barlow.cli import startup

COMMAND = "keras-barlow benchmark"
SUMMARY = "training throughput and overheads: runs recipes/benchmark.py of a source checkout"
SCRIPT = Path("recipes", "benchmark.py")
NOT_FOUND = (
    "keras-barlow benchmark runs the benchmark harness of a source checkout, which is not installed "
    "with the package: no {script} in the current directory ({cwd}) or next to the package ({package}). "
    "Clone the repository and run, from its root, `keras-barlow benchmark --help` or "
    "`python recipes/benchmark.py --help`."
)


def find_script(cwd=None, package_file=None):
    """The `recipes/benchmark.py` to run, or `None`.

    Args:
        cwd: the directory looked in first (default: the current directory).
        package_file: `keras_barlow/__init__.py` of the running package (default: its
            `__file__`); the checkout it sits in is looked in next.

    Returns:
        The script's absolute `Path`, or `None` where neither place has one.
    """
    package_file = package_file or _package_file()
    candidates = [Path.cwd() if cwd is None else Path(cwd), Path(package_file).resolve().parents[1]]
    for root in candidates:
        script = (root / SCRIPT).resolve()
        if script.is_file():
            return script
    return None


def main(argv=None, *, cwd=None, package_file=None):
    """Runs `recipes/benchmark.py ARGV` of a checkout in a child process with this interpreter.

    Args:
        argv: the arguments passed through (`None`: `sys.argv[1:]`); `--help` is the harness'.
        cwd, package_file: where to look (see `find_script`).

    Returns:
        The harness' exit code.

    Raises:
        SystemExit: no checkout with `recipes/benchmark.py` was found (the message says where
            the harness lives and how to run it).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    package_file = package_file or _package_file()
    script = find_script(cwd, package_file)
    if script is None:
        where = {"cwd": Path.cwd() if cwd is None else cwd, "package": Path(package_file).resolve().parent}
        raise SystemExit("error: " + NOT_FOUND.format(script=SCRIPT, **where))
    return subprocess.call([sys.executable, str(script), *argv], env=startup.quiet_environment())


def _package_file():
    """`keras_barlow/__init__.py` of the running package."""
    import keras_barlow

    return keras_barlow.__file__
