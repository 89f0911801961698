"""`keras-barlow benchmark`: finds a checkout's recipes/benchmark.py, runs it, or says where it is."""

import json
import os
from pathlib import Path

import pytest
from helpers import REPO

import keras_barlow
from keras_barlow.cli import benchmark, startup

# A stand-in harness: records its arguments and TensorFlow's log level, exits with 3.
HARNESS = """import json, os, sys
with open(os.environ["RECORD"], "w") as f:
    json.dump({"argv": sys.argv[1:], "level": os.environ.get("TF_CPP_MIN_LOG_LEVEL")}, f)
sys.exit(3)
"""


def _checkout(root):
    script = Path(root) / "recipes" / "benchmark.py"
    script.parent.mkdir(parents=True)
    script.write_text(HARNESS)
    return script


def _package_file(root):
    """`keras_barlow/__init__.py` of a (fake) install under `root`."""
    init = Path(root) / "keras_barlow" / "__init__.py"
    init.parent.mkdir(parents=True)
    init.touch()
    return str(init)


def test_the_current_directory_comes_first_then_the_packages_checkout(tmp_path):
    here, installed = _checkout(tmp_path / "here"), _package_file(tmp_path / "site-packages")
    assert benchmark.find_script(tmp_path / "here", installed) == here.resolve()
    editable = _package_file(tmp_path / "checkout")
    beside = _checkout(tmp_path / "checkout")
    assert benchmark.find_script(tmp_path / "elsewhere", editable) == beside.resolve()
    assert benchmark.find_script(tmp_path / "elsewhere", installed) is None


def test_this_editable_install_finds_its_checkout(tmp_path):
    found = benchmark.find_script(tmp_path, keras_barlow.__file__)
    assert found == Path(REPO, "recipes", "benchmark.py").resolve()


def test_the_harness_runs_with_the_arguments_and_quiet_tensorflow(tmp_path, monkeypatch):
    _checkout(tmp_path)
    record = tmp_path / "record.json"
    monkeypatch.setenv("RECORD", str(record))
    monkeypatch.setattr(startup, "log_level_chosen_by_user", lambda: False)
    code = benchmark.main(
        ["--smoke", "--json", "x.json"], cwd=tmp_path, package_file=_package_file(tmp_path / "pkg")
    )
    assert code == 3
    assert json.loads(record.read_text()) == {"argv": ["--smoke", "--json", "x.json"], "level": "2"}


def test_without_a_checkout_the_message_says_where_the_harness_is(tmp_path):
    with pytest.raises(SystemExit) as caught:
        benchmark.main(["--help"], cwd=tmp_path, package_file=_package_file(tmp_path / "site-packages"))
    message = str(caught.value)
    assert message.startswith("error: keras-barlow benchmark runs the benchmark harness of a source checkout")
    assert os.path.join("recipes", "benchmark.py") in message and "not installed" in message
    assert "python recipes/benchmark.py --help" in message and str(tmp_path) in message


def test_the_package_does_not_import_the_harness():
    source = Path(benchmark.__file__).read_text()
    assert "import benchmarking" not in source and "from benchmarking" not in source


def test_the_console_command_reaches_the_checkouts_suites(capfd):
    """`keras-barlow benchmark --suite accelerator --help`: this checkout's harness, its suite's
    own options (the driver imports no framework: this takes a fraction of a second)."""
    assert benchmark.main(["--suite", "accelerator", "--help"], cwd=REPO) == 0
    out = capfd.readouterr().out
    assert out.startswith("usage: benchmark.py --suite accelerator")
    assert "--batch-sizes" in out and "--precisions" in out and "--smoke" in out
