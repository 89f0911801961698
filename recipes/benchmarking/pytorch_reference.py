"""The same Barlow Twins training step in PyTorch + torchvision, for a side-by-side timing.

Written as the official code (facebookresearch/barlowtwins `main.py`) writes it: a
torchvision ResNet without its classifier, the projector `Linear(bias=False) → BatchNorm1d →
ReLU` blocks and a last `Linear(bias=False)`, each view's embedding standardised by
`BatchNorm1d(affine=False)`, `C = bn(z_a)ᵀ bn(z_b) / N`, the loss
`Σ(1 − Cᵢᵢ)² + λ Σ_{i≠j} Cᵢⱼ²`. The stem follows the Keras model's: the ImageNet stem
(7×7/2 convolution, 3×3/2 max-pool) or, with `small_images`, a 3×3/1 convolution and no
max-pool. PyTorch is an optional dependency (`pip install -e ".[compare]"`); the benchmark
runs this module in a process of its own (`pytorch_worker`), never beside TensorFlow.
"""

import sys
import time

from benchmarking.precision import check_device, torch_settings

INSTALL_HINT = (
    "--compare pytorch needs PyTorch and torchvision, which are not installed: "
    'pip install -e ".[compare]" (or: pip install torch torchvision)'
)


def import_torch():
    """Imports `torch` and `torchvision`, or raises an `ImportError` that says how to install them.

    Triton (the GPU kernel compiler bundled with CUDA builds of PyTorch, imported by
    torchvision) crashed the process with a segmentation fault when loaded after
    TensorFlow 2.21 (triton 3.8, torch 2.14.1). Where TensorFlow is already loaded (the
    tests, which check the reference against our model in one process; the benchmark's
    PyTorch worker never loads TensorFlow), triton is marked absent
    (`sys.modules["triton"] = None`; PyTorch then runs without it).
    """
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        sys.modules["triton"] = None
    try:
        import torch
        import torchvision
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from error
    return torch, torchvision


def build_encoder(depth, *, small_images, width=64, zero_init_residual=True):
    """A torchvision ResNet-`depth` mapping images to pooled features (no classifier).

    Args:
        depth: 18, 34, 50, 101 or 152.
        small_images: the CIFAR stem (3×3 stride-1 convolution, no max-pool).
        width: must be 64 (torchvision ResNets have the standard width only).
        zero_init_residual: the last batch-norm γ of every residual block starts at 0.

    Returns:
        `(module, feature_dim)`.
    """
    torch, torchvision = import_torch()
    if width != 64:
        raise ValueError(
            f"the PyTorch reference has torchvision's standard width 64 only, got --width {width}"
        )
    constructors = {18: "resnet18", 34: "resnet34", 50: "resnet50", 101: "resnet101", 152: "resnet152"}
    if depth not in constructors:
        raise ValueError(f"the PyTorch reference builds ResNet-{sorted(constructors)}, got depth {depth}")
    encoder = getattr(torchvision.models, constructors[depth])(zero_init_residual=zero_init_residual)
    if small_images:
        encoder.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        encoder.maxpool = torch.nn.Identity()
    feature_dim = encoder.fc.in_features
    encoder.fc = torch.nn.Identity()
    return encoder, feature_dim


def build_projector(feature_dim, dims):
    """The official projector: `Linear(bias=False) → BatchNorm1d → ReLU` blocks, then a `Linear`."""
    torch, _ = import_torch()
    sizes = [feature_dim, *dims]
    layers = []
    for i in range(len(sizes) - 2):
        layers += [
            torch.nn.Linear(sizes[i], sizes[i + 1], bias=False),
            torch.nn.BatchNorm1d(sizes[i + 1]),
            torch.nn.ReLU(inplace=True),
        ]
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1], bias=False))
    return torch.nn.Sequential(*layers)


def off_diagonal(matrix):
    """The off-diagonal elements of a square matrix, flattened (as in the official code)."""
    n = matrix.shape[0]
    return matrix.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def barlow_twins_loss(z_a, z_b, standardize, lambd):
    """The official loss: `standardize` is `BatchNorm1d(dim, affine=False)` (train mode)."""
    c = standardize(z_a).T @ standardize(z_b)
    c.div_(z_a.shape[0])
    on_diag = (c.diagonal() - 1).pow_(2).sum()
    off_diag = off_diagonal(c).pow_(2).sum()
    return on_diag + lambd * off_diag


def build_reference(spec, lambd=0.0051, *, device="cpu"):
    """The PyTorch model and a `step(view_a, view_b) -> loss` function for a benchmark spec.

    The step runs in the spec's `precision` as PyTorch users train: float32; or the encoder
    and projector under `torch.autocast(device, dtype=torch.bfloat16 / float16)` (float16
    with a `GradScaler`); the standardisation, `C` and the loss always in float32, as ours.
    With `spec["pytorch_channels_last"]` (default on) the encoder's weights are in the
    `channels_last` memory format, which oneDNN's CPU convolutions and tensor cores prefer;
    the views must then be `channels_last` too (`to_views`).

    Args:
        spec: the benchmark spec (`depth`, `width`, `small_images`, `projector`, `optimizer`,
            optional `precision` and `pytorch_channels_last`).
        lambd: the off-diagonal weight.
        device: `"cpu"` or `"cuda"`.

    Returns:
        `(modules, step)`: `modules` is a dict of `encoder`, `projector` and `standardize`.
    """
    torch, _ = import_torch()
    settings = torch_settings(spec.get("precision", "float32"))
    torch.manual_seed(0)
    encoder, feature_dim = build_encoder(
        spec["depth"], small_images=spec["small_images"], width=spec["width"]
    )
    projector = build_projector(feature_dim, spec["projector"])
    standardize = torch.nn.BatchNorm1d(spec["projector"][-1], affine=False)
    for module in (encoder, projector, standardize):
        module.to(device)
        module.train()
    if spec.get("pytorch_channels_last", True):
        encoder.to(memory_format=torch.channels_last)
    parameters = list(encoder.parameters()) + list(projector.parameters())
    optimizer = {
        "sgd": lambda: torch.optim.SGD(parameters, lr=0.05, momentum=0.9),
        "adam": lambda: torch.optim.Adam(parameters, lr=1e-3),
        "lars": lambda: lars(parameters, lr=0.2),
    }[spec["optimizer"]]()
    autocast_dtype = getattr(torch, settings["autocast"]) if settings["autocast"] else None
    scaler = torch.amp.GradScaler(device) if settings["grad_scaler"] else None

    def step(view_a, view_b):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            z_a = projector(encoder(view_a))
            z_b = projector(encoder(view_b))
        loss = barlow_twins_loss(z_a.float(), z_b.float(), standardize, lambd)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss.detach()

    return {"encoder": encoder, "projector": projector, "standardize": standardize}, step


def lars(parameters, lr, weight_decay=1e-6, momentum=0.9, eta=0.001):
    """The official LARS (biases and batch-norm parameters, i.e. 1-D, excluded from its scaling)."""
    torch, _ = import_torch()

    class LARS(torch.optim.Optimizer):
        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    dp = p.grad
                    if p.ndim != 1:
                        dp = dp.add(p, alpha=group["weight_decay"])
                        param_norm, update_norm = torch.norm(p), torch.norm(dp)
                        one = torch.ones_like(param_norm)
                        q = torch.where(
                            param_norm > 0.0,
                            torch.where(update_norm > 0, (group["eta"] * param_norm / update_norm), one),
                            one,
                        )
                        dp = dp.mul(q)
                    state = self.state[p]
                    if "mu" not in state:
                        state["mu"] = torch.zeros_like(p)
                    mu = state["mu"]
                    mu.mul_(group["momentum"]).add_(dp)
                    p.add_(mu, alpha=-group["lr"])

    return LARS(parameters, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta))


def forward_macs(module, example):
    """Multiply-adds per sample of `module`'s `Conv2d` and `Linear` layers on `example`.

    Counted with forward hooks from the layers' weights and output sizes, by the same
    rule as `flops.keras_forward_macs`, so the two frameworks' counts can be compared.
    """
    torch, _ = import_torch()
    total = []

    def count(layer, inputs, output):
        if isinstance(layer, torch.nn.Conv2d):
            total.append(layer.weight.numel() * output.shape[2] * output.shape[3])
        else:
            total.append(layer.weight.numel())

    handles = [
        layer.register_forward_hook(count)
        for layer in module.modules()
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(example)
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    return sum(total)


def torch_matmul(n=2048, dtype="float32", device="cpu"):
    """A callable computing one `n × n` product of `dtype` in PyTorch (finished when it returns)."""
    torch, _ = import_torch()
    generator = torch.Generator().manual_seed(0)
    a, b = (
        torch.randn(n, n, generator=generator).to(device=device, dtype=getattr(torch, dtype)) for _ in "ab"
    )

    def product():
        out = torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return product


def to_views(spec, device="cpu"):
    """The benchmark's synthetic views as NCHW tensors on `device`, in the encoder's memory format."""
    torch, _ = import_torch()
    from benchmarking.inputs import synthetic_views

    memory_format = (
        torch.channels_last if spec.get("pytorch_channels_last", True) else torch.contiguous_format
    )
    return [
        torch.from_numpy(view).permute(0, 3, 1, 2).to(device).contiguous(memory_format=memory_format)
        for view in synthetic_views(spec)
    ]


class PyTorchRunner:
    """The reference step on the benchmark's own synthetic views, timed per step.

    Runs on the GPU where PyTorch sees one (as TensorFlow and JAX then do), else on the CPU
    with PyTorch's own thread count unless `spec["pytorch_threads"]` sets one.
    """

    spe = 1

    def __init__(self, spec):
        torch, torchvision = import_torch()
        precision = spec.get("precision", "float32")
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        check_device(precision, gpu=self.device == "cuda")
        if spec.get("pytorch_threads"):
            torch.set_num_threads(spec["pytorch_threads"])
        self.precision = precision
        self.modules, self.step = build_reference(spec, device=self.device)
        self.views = to_views(spec, self.device)
        self.extra = {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "torch_threads": torch.get_num_threads(),
            "torch_device": self.device,
            "torch_autocast": torch_settings(precision)["autocast"],
            "torch_channels_last": bool(spec.get("pytorch_channels_last", True)),
            "torch_mkldnn": bool(torch.backends.mkldnn.is_available()),
        }

    def _steps(self, steps):
        durations = []
        for _ in range(steps):
            start = time.perf_counter()
            float(self.step(*self.views))
            durations.append(time.perf_counter() - start)
        return durations

    warm_up = _steps

    def block(self, steps):
        """`steps` timed steps after one untimed one, as our `fit` block drops its first step
        (`fit`'s once-per-call set-up), so that both sides' blocks are timed alike."""
        self._steps(1)
        return self._steps(steps)

    def matmul(self, n):
        """An `n × n` product in this run's precision, on this runner's device."""
        return torch_matmul(n, dtype=self.precision, device=self.device)
