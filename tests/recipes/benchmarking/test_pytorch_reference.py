"""benchmarking.pytorch_reference: the same model and loss as ours (run when
PyTorch is installed: `pip install -e ".[compare]"`)."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from benchmarking import flops, pytorch_reference
from helpers import REPO

from keras_barlow import losses
from keras_barlow.backbones import resnet
from keras_barlow.layers import build_projector

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
    pytest.skip("PyTorch is optional: pip install -e '.[compare]'", allow_module_level=True)
# Not `pytest.importorskip("torchvision")`: after TensorFlow (imported by conftest), only
# `import_torch` keeps torchvision from loading triton, which crashes there.
torch, _ = pytorch_reference.import_torch()


def test_official_loss_equals_ours():
    rng = np.random.default_rng(0)
    z_a = rng.normal(size=(16, 8)).astype("float32")
    z_b = (z_a + rng.normal(size=z_a.shape)).astype("float32")
    standardize = torch.nn.BatchNorm1d(8, affine=False).train()
    theirs = pytorch_reference.barlow_twins_loss(
        torch.from_numpy(z_a), torch.from_numpy(z_b), standardize, 0.0051
    )
    ours = losses.barlow_twins_loss(z_a, z_b, lambd=0.0051)
    np.testing.assert_allclose(float(theirs), float(ours), rtol=1e-5)


def test_off_diagonal():
    matrix = torch.arange(9.0).reshape(3, 3)
    assert pytorch_reference.off_diagonal(matrix).tolist() == [1.0, 2.0, 3.0, 5.0, 6.0, 7.0]


@pytest.mark.parametrize("small_images, size", [(False, 64), (True, 32)])
def test_same_architecture_size_as_ours(small_images, size):
    """Both stems: the torchvision encoder and projector count the same multiply-adds as ours."""
    encoder, feature_dim = pytorch_reference.build_encoder(18, small_images=small_images)
    assert feature_dim == 512
    ours = flops.keras_forward_macs(resnet(18, (size, size, 3), small_images=small_images))
    assert pytorch_reference.forward_macs(encoder, torch.zeros(2, 3, size, size)) == ours
    projector = pytorch_reference.build_projector(512, (64, 32))
    assert pytorch_reference.forward_macs(projector, torch.zeros(2, 512)) == flops.keras_forward_macs(
        build_projector((64, 32), input_dim=512)
    )


@pytest.mark.tensorflow_only  # PyTorch alone: once is enough
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_reference_step_trains(precision):
    spec = {"depth": 18, "width": 64, "small_images": False, "projector": [32, 32], "optimizer": "sgd",
            "precision": precision}  # fmt: skip
    modules, step = pytorch_reference.build_reference(spec)
    views = [torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last) for _ in "ab"]
    before = [p.detach().clone() for p in modules["projector"].parameters()]
    losses_seen = [step(*views) for _ in range(2)]
    assert all(loss.dtype == torch.float32 for loss in losses_seen)  # C and the loss in float32
    assert all(np.isfinite([float(loss) for loss in losses_seen]))
    assert any(not torch.equal(b, p) for b, p in zip(before, modules["projector"].parameters()))
    # The weights stay float32 (autocast casts per op) and the encoder is channels_last.
    assert all(p.dtype == torch.float32 for p in modules["encoder"].parameters())
    assert modules["encoder"].conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_bfloat16_runs_the_encoder_under_autocast_and_the_loss_in_float32():
    spec = {"depth": 18, "width": 64, "small_images": True, "projector": [16, 16], "optimizer": "sgd",
            "precision": "bfloat16"}  # fmt: skip
    modules, step = pytorch_reference.build_reference(spec)
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, output.dtype)

        return hook

    modules["projector"].register_forward_hook(record("projector"))
    modules["standardize"].register_forward_hook(record("standardize"))
    views = torch.randn(2, 4, 3, 16, 16)
    step(views[0], views[1])
    assert seen == {"projector": torch.bfloat16, "standardize": torch.float32}


def test_views_and_matmul_follow_the_settings():
    spec = {"batch_size": 2, "image_size": 8}
    a, b = pytorch_reference.to_views(spec)
    assert a.shape == (2, 3, 8, 8) and a.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(a, b)
    plain, _ = pytorch_reference.to_views({**spec, "pytorch_channels_last": False})
    assert plain.is_contiguous() and torch.equal(plain, a)
    assert pytorch_reference.torch_matmul(4, dtype="bfloat16")().dtype == torch.bfloat16
    assert pytorch_reference.torch_matmul(4)().dtype == torch.float32


def test_float16_needs_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    spec = {"depth": 18, "width": 64, "small_images": True, "projector": [8, 8], "optimizer": "sgd",
            "precision": "float16", "batch_size": 2, "image_size": 8}  # fmt: skip
    with pytest.raises(ValueError, match=r"float16 .* no GPU is present"):
        pytorch_reference.PyTorchRunner(spec)


def test_width_other_than_64_is_refused():
    with pytest.raises(ValueError, match="width 64"):
        pytorch_reference.build_encoder(18, small_images=True, width=16)


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_compare_run_end_to_end(tmp_path, precision="bfloat16"):
    """The real reference in its own process (float32 goes the same way: see test_compare.py)."""
    path = tmp_path / "compare.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "recipes", "benchmark.py"), "--compare", "pytorch",
         "--optimizer", "sgd", "--image-size", "32", "--no-small-images", "--batch-size", "4",
         "--projector", "32,32", "--steps", "1", "--repeats", "2", "--warmup", "1", "--matmul-size", "256",
         "--precision", precision, "--json", str(path)],
        env={**os.environ}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    report = json.loads(path.read_text())
    fit, theirs = report["results"]
    assert (fit["measure"], theirs["measure"]) == ("fit", "pytorch")
    assert theirs["torch"] == torch.__version__ and len(theirs["load1"]) == 2
    assert theirs["torch_channels_last"] is True
    assert theirs["torch_autocast"] == (None if precision == "float32" else precision)
    assert report["versions"]["pytorch"]["tensorflow_imported"] is False
    assert report["versions"]["tensorflow"]["dtype_policy"] == {"float32": "float32"}.get(
        precision, "mixed_bfloat16"
    )
    ratio = report["speed_vs_pytorch"]["tensorflow:fit_vs_pytorch"]
    assert ratio == pytest.approx(theirs["s_per_step"] / fit["s_per_step"])
    assert fit["step_flops"] == report["step_flops"] > 0 and fit["matmul_share"] > 0
    assert set(report["matmul_flops_per_s"]) == {"tensorflow", "pytorch (paired with tensorflow)"}
    assert "tensorflow:fit_vs_pytorch" in proc.stdout
