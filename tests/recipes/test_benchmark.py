"""recipes/benchmark.py: the command line (spec building, validation, precision, the PyTorch hint)."""

import importlib.util
import os
import sys
import types

import pytest
from benchmarking import precision
from helpers import REPO

SCRIPT = os.path.join(REPO, "recipes", "benchmark.py")


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchmark = _load_benchmark()


def _spec(*argv):
    return benchmark.build_spec(benchmark.parse_args(list(argv)))


@pytest.fixture
def torch_installed(monkeypatch):
    """`--compare pytorch` as where PyTorch and torchvision are installed (nothing imports them)."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        benchmark.importlib.util,
        "find_spec",
        lambda name, *a: object() if name in ("torch", "torchvision") else real_find_spec(name, *a),
    )


def test_cli_validation():
    spec = _spec("--preset", "resnet18-32", "--batch-size", "64", "--projector", "512,256")
    assert (spec["batch_size"], spec["projector"], spec["depth"], spec["small_images"]) == (
        64,
        [512, 256],
        18,
        True,
    )
    assert spec["measures"] == list(benchmark.DEFAULT_MEASURES)
    assert (spec["precision"], spec["dtype_policy"]) == ("float32", "float32")
    for argv, message in [
        (["--measure", "fit,nonsense"], "unknown --measure"),
        (["--batch-size", "1"], "at least 2"),
        (["--steps", "3", "--steps-per-execution", "2"], "multiple of --steps-per-execution"),
        (["--projector", "512,x"], "comma list of integers"),
        (["--warmup", "0"], "--warmup"),
        (["--pytorch-threads", "0"], "--pytorch-threads"),
    ]:
        with pytest.raises(SystemExit, match=message):
            _spec(*argv)


def test_every_flag_is_accepted():
    args = benchmark.parse_args(
        ["--preset", "resnet50-224", "--backend", "both", "--measure", "fit,step", "--depth", "18",
         "--width", "64", "--image-size", "64", "--no-small-images", "--source-size", "72",
         "--augment", "imagenet", "--batch-size", "4", "--projector", "16,16", "--optimizer", "sgd",
         "--jit-compile", "false", "--steps-per-execution", "2", "--tf-threads", "1,2",
         "--precision", "bfloat16", "--dtype-policy", "mixed_bfloat16", "--steps", "4", "--repeats", "3",
         "--warmup", "2", "--matmul-size", "512", "--pytorch-threads", "2", "--no-pytorch-channels-last",
         "--breakdown", "--profile", "--conv-rates", "--versus-env", "A=1", "--isolate", "--json", "x.json",
         "--block-tensorflow"]
    )  # fmt: skip
    assert (args.small_images, args.jit_compile, args.tf_threads, args.isolate) == (
        False,
        "false",
        [1, 2],
        True,
    )
    spec = benchmark.build_spec(args)
    assert (spec["precision"], spec["dtype_policy"], spec["matmul_size"]) == (
        "bfloat16",
        "mixed_bfloat16",
        512,
    )
    assert (spec["pytorch_threads"], spec["pytorch_channels_last"]) == (2, False)
    assert benchmark.parse_args(["--smoke"]).preset == "smoke"


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], ("float32", "float32")),
        (["--precision", "bfloat16"], ("bfloat16", "mixed_bfloat16")),
        (["--dtype-policy", "mixed_bfloat16"], ("bfloat16", "mixed_bfloat16")),
        (["--precision", "bfloat16", "--dtype-policy", "bfloat16"], ("bfloat16", "bfloat16")),
    ],
)
def test_precision_sets_our_dtype_policy(argv, expected):
    spec = _spec("--smoke", *argv)
    assert (spec["precision"], spec["dtype_policy"]) == expected


def test_precision_and_dtype_policy_must_agree():
    with pytest.raises(SystemExit, match="disagree"):
        _spec("--precision", "float32", "--dtype-policy", "mixed_bfloat16")
    with pytest.raises(SystemExit, match="unknown dtype policy"):
        _spec("--dtype-policy", "mixed_int8")


def test_float16_only_where_a_gpu_is_present(monkeypatch):
    monkeypatch.setattr(precision, "gpu_visible", lambda: False)
    with pytest.raises(
        SystemExit, match=r"float16 .* is for GPUs, and no GPU is present; on a CPU use --precision bfloat16"
    ):
        _spec("--smoke", "--precision", "float16")
    with pytest.raises(SystemExit, match="no GPU is present"):
        _spec("--smoke", "--dtype-policy", "mixed_float16")
    monkeypatch.setattr(precision, "gpu_visible", lambda: True)
    spec = _spec("--smoke", "--precision", "float16")
    assert (spec["precision"], spec["dtype_policy"]) == ("float16", "mixed_float16")


def test_compare_needs_a_torchvision_resnet_and_says_how_to_install_pytorch(monkeypatch):
    with pytest.raises(SystemExit, match="torchvision ResNet"):
        _spec("--smoke", "--compare", "pytorch")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        benchmark.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else real_find_spec(name, *a),
    )
    with pytest.raises(SystemExit, match=r'pip install -e "\.\[compare\]"'):
        _spec("--compare", "pytorch")


@pytest.mark.usefixtures("torch_installed")
def test_compare_defaults_to_fit_against_pytorch():
    spec = _spec("--compare", "pytorch", "--measure", "fit,bare")
    assert spec["measures"] == ["fit", "bare", "pytorch"] and spec["matmul_size"] == 2048
    assert _spec("--compare", "pytorch")["measures"] == ["fit", "pytorch"]
    spec = _spec("--compare", "pytorch", "--precision", "bfloat16")
    assert (spec["precision"], spec["pytorch_channels_last"], spec["pytorch_threads"]) == (
        "bfloat16",
        True,
        None,
    )


@pytest.mark.usefixtures("torch_installed")
def test_compare_refuses_what_it_cannot_compare():
    with pytest.raises(SystemExit, match="compares a training measure"):
        _spec("--compare", "pytorch", "--measure", "pipeline")
    with pytest.raises(SystemExit, match="run --compare pytorch on its own"):
        _spec("--compare", "pytorch", "--versus-env", "A=1")


def test_a_stand_in_pytorch_runner_needs_no_pytorch(monkeypatch):
    monkeypatch.setattr(benchmark.importlib.util, "find_spec", lambda name, *a: None)
    spec = _spec("--smoke", "--compare", "pytorch", "--pytorch-runner", "stub_runners:StubRunner")
    assert spec["measures"] == ["fit", "pytorch"]


def test_recipes_do_not_touch_sys_path():
    recipes = os.path.join(REPO, "recipes")
    offenders = []
    for folder, _, files in os.walk(recipes):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    if "sys.path" in f.read():
                        offenders.append(os.path.relpath(path, REPO))
    harness = [path for path in offenders if "benchmark" in path]
    assert harness == []


def test_suite_is_taken_out_of_the_arguments():
    assert benchmark.split_suite(["--smoke", "--suite", "accelerator", "--json", "x.json"]) == (
        "accelerator",
        ["--smoke", "--json", "x.json"],
    )
    assert benchmark.split_suite(["--suite=input-pipeline", "--help"]) == ("input-pipeline", ["--help"])
    assert benchmark.split_suite(["--smoke", "--steps", "2"]) == (None, ["--smoke", "--steps", "2"])
    with pytest.raises(SystemExit):
        benchmark.split_suite(["--suite", "nonsense"])
    with pytest.raises(SystemExit):  # an abbreviation would reach the measurement's parser
        benchmark.parse_args(["--sui", "accelerator"])


@pytest.mark.parametrize("suite, module", sorted(benchmark.SUITES.items()))
def test_main_hands_a_suite_the_other_arguments(suite, module, monkeypatch):
    """`--suite NAME` calls `benchmarking.<module>.main(the other arguments)`, imported only then
    (`benchmarking.input_pipeline` may not exist yet: a stand-in module here)."""
    import benchmarking

    calls = []
    stand_in = types.ModuleType(module)
    stand_in.main = lambda argv: calls.append(argv) or "report"
    monkeypatch.setitem(sys.modules, module, stand_in)
    monkeypatch.setattr(benchmarking, module.rsplit(".", 1)[1], stand_in, raising=False)
    assert benchmark.main(["--smoke", "--suite", suite, "--json", "x.json"]) == "report"
    assert calls == [["--smoke", "--json", "x.json"]]
