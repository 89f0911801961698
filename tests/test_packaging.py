"""The built wheel holds the library only: no benchmark harness, nothing that imports torch."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from helpers import REPO

TORCH_IMPORT = re.compile(r"^\s*(import torch\b|from torch\b)", re.MULTILINE)
HARNESS_IMPORT = re.compile(r"^\s*(import|from)\s+(keras_barlow\.)?benchmarking\b", re.MULTILINE)


def _source_files():
    """The files a fresh clone would have: tracked and untracked-but-not-ignored ones."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [path for path in out.split("\0") if path and os.path.isfile(os.path.join(REPO, path))]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the checkout, so no build folder of the working tree (old
    `build/lib` files included) can leak into it, with the installed setuptools (no network):
    `python -m build --no-isolation` where `build` is installed, else `pip wheel`."""
    source = tmp_path_factory.mktemp("source")
    for path in _source_files():
        if path.startswith(("keras_barlow/", "pyproject.toml", "README", "LICENSE", "setup.", "MANIFEST")):
            os.makedirs(source / os.path.dirname(path), exist_ok=True)
            shutil.copy2(os.path.join(REPO, path), source / path)
    out = tmp_path_factory.mktemp("dist")
    if importlib.util.find_spec("build") is not None:
        command = [
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--skip-dependency-check",
            "--outdir",
            str(out),
        ]
    else:
        command = ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out)]
    proc = subprocess.run(
        [sys.executable, *command, str(source)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = out.glob("*.whl")
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_wheel_holds_the_package(wheel):
    assert "keras_barlow/__init__.py" in wheel
    assert any(name.endswith(".dist-info/METADATA") for name in wheel)


def test_wheel_holds_no_benchmark_code(wheel):
    """No `benchmarking` module and no folder of benchmark code; the one file whose name says
    benchmark may be the `keras-barlow benchmark` launcher, which runs the harness of a
    checkout and imports none of it."""
    folders = {os.path.dirname(name) for name in wheel}
    assert [folder for folder in folders if "benchmark" in folder.lower()] == []
    named = [name for name in wheel if "benchmark" in os.path.basename(name).lower()]
    assert set(named) <= {"keras_barlow/cli/benchmark.py"}, named
    importing = [
        name
        for name, data in wheel.items()
        if name.endswith(".py") and HARNESS_IMPORT.search(data.decode("utf-8"))
    ]
    assert importing == []
    top_level = {name.split("/")[0] for name in wheel if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"keras_barlow"}


def test_nothing_in_the_wheel_imports_torch(wheel):
    offenders = [
        name
        for name, data in wheel.items()
        if name.endswith(".py") and TORCH_IMPORT.search(data.decode("utf-8"))
    ]
    assert offenders == []
