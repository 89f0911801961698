"""keras_barlow._onednn: every branch with injected CPU flags and environment, and the real
import-order behaviour in fresh interpreters (TensorFlow reads the variable once, at import)."""

import os
import subprocess
import sys
import warnings

import pytest

from keras_barlow import _onednn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPYC_AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})  # the CPU the slow-down was measured on
SAPPHIRE_RAPIDS = EPYC_AVX2 | {"avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"}


@pytest.fixture(autouse=True)
def _fresh_warning_state(monkeypatch):
    monkeypatch.setattr(_onednn, "_warned", False)


def test_reads_flags_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu AVX2 fma avx512_vnni\n\nflags : other\n"
    )
    assert _onednn.read_cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "fma", "avx512_vnni"}
    cpuinfo.write_text("processor\t: 0\n")
    assert _onednn.read_cpu_flags(str(cpuinfo)) is None
    assert _onednn.read_cpu_flags(str(tmp_path / "missing")) is None


def test_tensorflow_default_policy():
    assert not _onednn.tensorflow_enables_onednn_by_default(EPYC_AVX2)
    assert not _onednn.tensorflow_enables_onednn_by_default(EPYC_AVX2 | {"avx512f"})  # AVX-512 alone: off
    for flag in ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"):
        assert _onednn.tensorflow_enables_onednn_by_default(EPYC_AVX2 | {flag})


def _never_called():
    raise AssertionError("TensorFlow must not be asked in this branch")


@pytest.mark.parametrize("value", ["0", "1", "false"])
def test_explicit_setting_is_respected(value):
    environ = {_onednn.ONEDNN_ENV: value}
    for modules in ({}, {"tensorflow": object()}):
        result = _onednn.enable_onednn(environ, modules, EPYC_AVX2, onednn_active=_never_called)
        assert result == "explicit" and environ == {_onednn.ONEDNN_ENV: value}


@pytest.mark.parametrize("flags", [EPYC_AVX2, SAPPHIRE_RAPIDS, None])
def test_enabled_before_tensorflow_starts(flags):
    environ = {}
    assert _onednn.enable_onednn(environ, {}, flags, onednn_active=_never_called) == "enabled"
    assert environ == {_onednn.ONEDNN_ENV: "1"}


def test_warns_once_when_tensorflow_started_without_onednn():
    environ, modules = {}, {"tensorflow": object()}
    with pytest.warns(RuntimeWarning, match="8.7 s instead of 1.09 s") as record:
        assert _onednn.enable_onednn(environ, modules, EPYC_AVX2, onednn_active=lambda: False) == "warned"
    assert "set TF_ENABLE_ONEDNN_OPTS=1" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _onednn.enable_onednn(environ, modules, EPYC_AVX2, onednn_active=lambda: False) == "unchanged"
    assert environ == {}  # too late to set: TensorFlow has read it


@pytest.mark.parametrize(
    "flags, active",
    [(EPYC_AVX2, True), (SAPPHIRE_RAPIDS, False), (None, False), (frozenset({"neon", "asimd"}), False)],
)
def test_no_warning_where_onednn_is_on_or_not_applicable(flags, active):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = _onednn.enable_onednn({}, {"tensorflow": object()}, flags, onednn_active=lambda: active)
    assert result == "unchanged"


def _fresh_python(code, **env):
    """Runs `code` where `keras_barlow` is not imported: `_onednn` is loaded from its file."""
    path = os.path.join(REPO, "keras_barlow", "_onednn.py")
    prelude = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('onednn', {path!r})\n"
        "onednn = importlib.util.module_from_spec(spec); spec.loader.exec_module(onednn)\n"
    )
    full_env = {k: v for k, v in os.environ.items() if k != _onednn.ONEDNN_ENV}
    full_env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **env)
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", prelude + code],
        env=full_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.strip(), proc.stderr


@pytest.mark.slow
@pytest.mark.tensorflow_only  # TensorFlow in fresh processes: once is enough
def test_real_tensorflow_follows_the_switch():
    """Before TensorFlow: on (whatever the CPU); an explicit 0 keeps it off; TensorFlow
    started with it off and this CPU's flags replaced by AVX2-only ones: one warning."""
    check = (
        "import tensorflow\nfrom keras_barlow._compat import tensorflow_onednn_enabled\n"
        "print(result, os.environ.get('TF_ENABLE_ONEDNN_OPTS'), tensorflow_onednn_enabled())"
    )
    out, _ = _fresh_python("import os\nresult = onednn.enable_onednn()\n" + check)
    assert out.splitlines()[-1] == "enabled 1 True"
    out, _ = _fresh_python("import os\nresult = onednn.enable_onednn()\n" + check, TF_ENABLE_ONEDNN_OPTS="0")
    assert out.splitlines()[-1] == "explicit 0 False"
    started_off = (
        "import os\nos.environ['TF_ENABLE_ONEDNN_OPTS'] = '0'\nimport tensorflow\n"
        "del os.environ['TF_ENABLE_ONEDNN_OPTS']\n"
        "flags = frozenset({'avx2', 'fma'})\n"
        "print(onednn.enable_onednn(cpu_flags=flags), onednn.enable_onednn(cpu_flags=flags))"
    )
    out, err = _fresh_python(started_off)
    assert out.splitlines()[-1] == "warned unchanged"
    assert err.count("RuntimeWarning: TensorFlow was imported before keras_barlow") == 1


with open(os.path.join(REPO, "keras_barlow", "__init__.py")) as _init:
    _INIT_CALLS_ENABLE_ONEDNN = "enable_onednn" in _init.read()


@pytest.mark.slow
@pytest.mark.skipif(
    not _INIT_CALLS_ENABLE_ONEDNN,
    reason="keras_barlow/__init__.py does not call enable_onednn yet",
)
def test_import_keras_barlow_turns_onednn_on_before_tensorflow():
    full_env = {k: v for k, v in os.environ.items() if k != _onednn.ONEDNN_ENV}
    code = (
        "import os, keras_barlow\nfrom keras_barlow._compat import tensorflow_onednn_enabled\n"
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), tensorflow_onednn_enabled())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**full_env, "PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.split()[-2:] == ["1", "True"]
