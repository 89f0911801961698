"""benchmarking.input_pipeline (`recipes/benchmark.py --suite input-pipeline`): our two-view
pipeline against the official Barlow Twins one and torchvision v2, each in its own process,
timed in turns; and the PyTorch sides (`benchmarking.official_transform`)."""

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest
from benchmarking import input_pipeline
from helpers import REPO, run_python

RECIPES = os.path.join(REPO, "recipes")
TORCH = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("torchvision") is not None
NEEDS_TORCH = pytest.mark.skipif(
    not TORCH,
    reason='the official and torchvision-v2 sides need torch and torchvision (pip install -e ".[compare]")',
)
NEEDS_PIL = pytest.mark.skipif(
    importlib.util.find_spec("PIL") is None, reason="writing the JPEG files needs Pillow"
)


def test_defaults_are_the_issues_setting_and_smoke_is_tiny():
    args = input_pipeline.parse_args([])
    assert (args.images, args.source_size, args.image_size, args.batch_size) == (256, (500, 375), 224, 64)
    assert args.sides == ["ours", "official", "torchvision-v2"]
    smoke = input_pipeline.parse_args(["--smoke", "--sides", "ours"])
    assert (smoke.images, smoke.source_size, smoke.image_size, smoke.batch_size, smoke.repeats) == (
        8, (64, 48), 32, 4, 1,
    )  # fmt: skip
    assert smoke.sides == ["ours"]
    for bad in (["--source-size", "500"], ["--sides", "ours,tensorflow"], ["--images", "8"]):
        with pytest.raises(SystemExit):
            input_pipeline.parse_args(bad)


@NEEDS_PIL
def test_the_images_are_real_deterministic_jpegs_written_once(tmp_path):
    from PIL import Image

    first = input_pipeline.write_images(str(tmp_path / "a"), 3, (40, 30), seed=1)
    second = input_pipeline.write_images(str(tmp_path / "b"), 3, (40, 30), seed=1)
    names = sorted(os.listdir(os.path.join(first, input_pipeline.CLASS_FOLDER)))
    assert names == ["00000.jpg", "00001.jpg", "00002.jpg"]

    def read(root, name):
        with open(os.path.join(root, input_pipeline.CLASS_FOLDER, name), "rb") as f:
            return f.read()

    assert all(read(first, n) == read(second, n) for n in names)
    assert read(first, names[0]) != read(first, names[1])
    with Image.open(os.path.join(first, input_pipeline.CLASS_FOLDER, names[0])) as image:
        assert (image.format, image.size, image.mode) == ("JPEG", (40, 30), "RGB")
        assert max(image.getextrema(), key=lambda e: e[1] - e[0])[1] - min(image.getextrema())[0] > 40
    stamp = os.path.getmtime(os.path.join(first, input_pipeline.CLASS_FOLDER, names[0]))
    input_pipeline.write_images(first, 3, (40, 30), seed=1)  # the same images: left as they are
    assert os.path.getmtime(os.path.join(first, input_pipeline.CLASS_FOLDER, names[0])) == stamp


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_cpu_time_counts_the_children_and_idle_waits_end():
    before = input_pipeline.tree_cpu_seconds()
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 1: pass"]
    )
    time.sleep(0.8)
    during = input_pipeline.tree_cpu_seconds()
    child.wait()
    assert during - before > 0.3  # the busy child's time (and the interpreter it started)
    assert input_pipeline.wait_idle(timeout_s=5) < 5


def test_table_ratios_and_loads():
    rows = [
        input_pipeline.summarize_side(
            "ours", [[0.5, 0.5], [0.25, 0.25]], {"cpu_s_per_pair": [0.01, 0.02]}, 64
        ),
        input_pipeline.summarize_side("official", [[1.0, 1.0]], {"cpu_s_per_pair": [0.03]}, 64),
    ]
    assert rows[0]["blocks_pairs_per_s"] == [128.0, 256.0] and rows[0]["pairs_per_s"] == 192.0
    assert rows[0]["cpu_s_per_pair"] == pytest.approx(0.015)
    table = input_pipeline.format_table(rows, {"ours": [1.0, 3.0], "official": [2.0]})
    assert "| ours | 192.0 | 128.0–256.0 | 15.0 | 3.00× | 1.0–3.0 |" in table
    assert "| official | 64.0 | 64.0–64.0 | 30.0 | 1.00× | 2.0 |" in table


def test_the_drivers_modules_import_no_framework():
    out = run_python(
        "import sys\n"
        "import benchmarking.input_pipeline, benchmarking.official_transform\n"
        "print('LOADED', sorted(m for m in ('tensorflow', 'keras', 'keras_barlow', 'torch', 'PIL') "
        "if m in sys.modules))\n",
        env={"PYTHONPATH": RECIPES},
    )
    assert "LOADED []" in out


def test_benchmark_py_reaches_the_suite():
    result = subprocess.run(
        [sys.executable, os.path.join(RECIPES, "benchmark.py"), "--suite", "input-pipeline", "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--source-size" in result.stdout and "--ours-baseline" in result.stdout


def _smoke(tmp_path, sides):
    out = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarking.input_pipeline", "--smoke", "--sides", sides,
         "--images-dir", str(tmp_path / "images"), "--json", str(out)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([RECIPES, REPO])}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return json.loads(out.read_text()), result.stdout


@NEEDS_PIL
@pytest.mark.tensorflow_only
def test_smoke_ours(tmp_path):
    results, stdout = _smoke(tmp_path, "ours")
    (row,) = results["results"]
    assert row["side"] == "ours" and row["pairs_per_s"] > 0 and row["cpu_s_per_pair"] > 0
    assert row["output_views"] == [[[4, 32, 32, 3], "float32"]] * 2  # float32 NHWC
    assert row["keras_barlow_path"] == REPO
    assert "| ours |" in stdout and results["cpu"]["simd_flags"] is not None
    assert results["spec"]["images"] == 8 and results["loads"]["ours"]


@NEEDS_PIL
@NEEDS_TORCH
def test_smoke_official_and_torchvision_v2(tmp_path):
    results, stdout = _smoke(tmp_path, "official,torchvision-v2")
    rows = {row["side"]: row for row in results["results"]}
    assert set(rows) == {"official", "torchvision-v2"}, results["skipped"]
    for row in rows.values():
        assert row["pairs_per_s"] > 0 and row["framework"] == "pytorch" and row["workers"] >= 1
        assert row["output_views"] == [[[4, 3, 32, 32], "float32"]] * 2  # float32 NCHW
    assert "| official |" in stdout and "1.00×" in stdout


@NEEDS_TORCH
def test_the_official_transform_is_main_pys():
    """The official side's views: main.py's two compositions, view A blurred always and
    never solarised, view B blurred with p 0.1 and solarised with p 0.2; uint8 in, float32
    normalised out."""
    out = run_python(
        "import sys, random\n"
        "from PIL import Image\n"
        "from torchvision import transforms\n"
        "from benchmarking import official_transform as ot\n"
        "t = ot.Transform(224)\n"
        "for compose, blur, solar in ((t.transform, 1.0, 0.0), (t.transform_prime, 0.1, 0.2)):\n"
        "    crop, flip, jitter, grey, b, s, to_tensor, norm = compose.transforms\n"
        "    assert crop.size == (224, 224) and crop.scale == (0.08, 1.0)\n"
        "    assert crop.interpolation.value == 'bicubic'\n"
        "    assert flip.p == 0.5 and jitter.p == 0.8 and grey.p == 0.2 and (b.p, s.p) == (blur, solar)\n"
        "    cj = jitter.transforms[0]\n"
        "    assert (cj.brightness, cj.contrast) == ((0.6, 1.4), (0.6, 1.4))\n"
        "    assert (cj.saturation, cj.hue) == ((0.8, 1.2), (-0.1, 0.1))\n"
        "    assert list(norm.mean) == ot.IMAGENET_MEAN and list(norm.std) == ot.IMAGENET_STD\n"
        "random.seed(0)\n"
        "a, b = t(Image.new('RGB', (50, 40), (200, 30, 90)))\n"
        "print('VIEWS', tuple(a.shape), str(a.dtype), 'tensorflow' in sys.modules)\n",
        env={"PYTHONPATH": RECIPES},
    )
    assert "VIEWS (3, 224, 224) torch.float32 False" in out


def test_only_the_pytorch_sides_keep_freed_memory(monkeypatch):
    from benchmarking import pytorch_worker

    for name in pytorch_worker.KEEP_FREED_MEMORY:
        monkeypatch.delenv(name, raising=False)
    for side in ("official", "torchvision-v2"):
        env = input_pipeline.side_command({}, side)[2]
        assert all(env[k] == v for k, v in pytorch_worker.KEEP_FREED_MEMORY.items()), side
    ours = input_pipeline.side_command({}, "ours")[2]
    assert not set(pytorch_worker.KEEP_FREED_MEMORY) & set(ours)
