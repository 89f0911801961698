"""recipes/benchmark.py: the command line (spec building, validation, the PyTorch hint)."""

import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "recipes", "benchmark.py")


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchmark = _load_benchmark()


def test_cli_validation():
    spec = benchmark.build_spec(
        benchmark.parse_args(["--preset", "resnet18-32", "--batch-size", "64", "--projector", "512,256"])
    )
    assert (spec["batch_size"], spec["projector"], spec["depth"], spec["small_images"]) == (
        64,
        [512, 256],
        18,
        True,
    )
    assert spec["measures"] == list(benchmark.DEFAULT_MEASURES)
    for argv, message in [
        (["--measure", "fit,nonsense"], "unknown --measure"),
        (["--batch-size", "1"], "at least 2"),
        (["--steps", "3", "--steps-per-execution", "2"], "multiple of --steps-per-execution"),
        (["--projector", "512,x"], "comma list of integers"),
        (["--warmup", "0"], "--warmup"),
    ]:
        with pytest.raises(SystemExit, match=message):
            benchmark.build_spec(benchmark.parse_args(argv))


def test_compare_needs_a_torchvision_resnet_and_says_how_to_install_pytorch(monkeypatch):
    with pytest.raises(SystemExit, match="torchvision ResNet"):
        benchmark.build_spec(benchmark.parse_args(["--smoke", "--compare", "pytorch"]))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        benchmark.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else real_find_spec(name, *a),
    )
    with pytest.raises(SystemExit, match=r'pip install -e "\.\[compare\]"'):
        benchmark.build_spec(benchmark.parse_args(["--compare", "pytorch"]))


def test_compare_defaults_to_fit_against_pytorch():
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        pytest.skip("PyTorch is optional: pip install -e '.[compare]'")
    spec = benchmark.build_spec(benchmark.parse_args(["--compare", "pytorch", "--measure", "fit,bare"]))
    assert spec["measures"] == ["fit", "bare", "pytorch"] and spec["matmul_size"] == 2048
    assert benchmark.build_spec(benchmark.parse_args(["--compare", "pytorch"]))["measures"] == [
        "fit",
        "pytorch",
    ]
