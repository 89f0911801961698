"""The scripts in recipes/: thin files over `keras_barlow.cli` (no `sys.path`, no imports of one
another), the same flags as the `keras-barlow` subcommands, and quiet by default."""

import ast
import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from keras_barlow.cli import main as command
from keras_barlow.cli import startup

RECIPES = Path(REPO, "recipes")
# Each thin recipe and the subcommand with the same arguments (and what it adds).
SUBCOMMANDS = {
    "quickstart": (("quickstart",), set()),
    "pretrain": (("pretrain",), set()),
    "cifar10_resnet18": (("pretrain",), {"--linear-epochs"}),
    "imagenet_resnet50_tpu": (("pretrain",), set()),
    "linear_eval": (("evaluate", "linear"), set()),
    "semi_supervised": (("evaluate", "semi-supervised"), set()),
    "transfer_detection": (("transfer", "detection"), set()),
    "transfer_segmentation": (("transfer", "segmentation"), set()),
}


def _scripts():
    return sorted(path.stem for path in RECIPES.glob("*.py"))


def test_no_file_in_recipes_touches_sys_path():
    offenders = [
        str(path.relative_to(RECIPES))
        for path in RECIPES.rglob("*")
        if path.is_file() and path.suffix in (".py", ".ipynb") and "sys.path" in path.read_text()
    ]
    assert offenders == []


@pytest.mark.parametrize("name", _scripts())
def test_recipes_do_not_import_one_another(name):
    tree = ast.parse((RECIPES / f"{name}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & {*_scripts(), "recipes"}, imported


def _load(name):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _help_options(call):
    """The options a `--help` lists (`call` prints the help and exits)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as caught:
        call()
    assert caught.value.code == 0
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out.getvalue().split("options:")[1]))


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_recipe_has_the_flags_of_its_subcommand(name):
    path, extra = SUBCOMMANDS[name]
    recipe = _help_options(lambda: _load(name).main(["--help"]))
    subcommand = _help_options(lambda: command.main([*path, "--help"]))
    assert recipe - {"--help"} == (subcommand - {"--help"}) | extra


def _cpp_log_lines(text):
    """TensorFlow's C++ log lines in `text`: (severity, source tag) pairs, e.g. ("W", "x.cc:12")."""
    return re.findall(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([\w.]+:\d+)\]", text, flags=re.MULTILINE)


def _environment(**variables):
    environ = {**os.environ, **variables}
    for name in (startup.LOG_LEVEL_VARIABLE, startup.RESTARTED_VARIABLE):
        if name not in variables:
            environ.pop(name, None)
    return environ


def _import_time_lines(**variables):
    """The C++ lines `import tensorflow` alone prints (TensorFlow 2.21 prints some while loading
    its libraries, before it reads TF_CPP_MIN_LOG_LEVEL)."""
    result = subprocess.run(
        [sys.executable, "-c", "import tensorflow"],
        env=_environment(**variables),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {tag for severity, tag in _cpp_log_lines(result.stderr) if severity == "I"}


@pytest.mark.slow
@pytest.mark.tensorflow_only  # subprocesses with their own backend: once is enough
@pytest.mark.parametrize(
    "launch",
    [["recipes/quickstart.py"], ["-m", "keras_barlow.cli", "quickstart"]],
    ids=["recipe", "command"],
)
def test_the_quick_start_prints_no_tensorflow_warnings(tmp_path, launch):
    """`python recipes/quickstart.py --smoke` (and `keras-barlow quickstart --smoke`) with
    TF_CPP_MIN_LOG_LEVEL unset: no W0000 / op_level_cost_estimator lines, and no info lines
    but those TensorFlow prints while loading, whatever the level."""
    result = subprocess.run(
        [sys.executable, *launch, "--smoke", "--output-dir", str(tmp_path / "qs")],
        cwd=REPO,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "op_level_cost_estimator" not in output and not re.search(r"^W\d{4} ", output, re.MULTILINE)
    info = {tag for severity, tag in _cpp_log_lines(output) if severity == "I"}
    # The command loads TensorFlow once before it restarts with the level set.
    expected = _import_time_lines(TF_CPP_MIN_LOG_LEVEL=startup.QUIET_LOG_LEVEL)
    if launch[0] == "-m":
        expected |= _import_time_lines()
    assert info <= expected, (info, expected)
    assert "barlow_twins" in result.stdout and (tmp_path / "qs" / "metrics.json").is_file()
