"""The same Barlow Twins training step in PyTorch + torchvision, for a side-by-side timing.

Written as the official code (facebookresearch/barlowtwins `main.py`) writes it: a
torchvision ResNet without its classifier, the projector `Linear(bias=False) → BatchNorm1d →
ReLU` blocks and a last `Linear(bias=False)`, each view's embedding standardised by
`BatchNorm1d(affine=False)`, `C = bn(z_a)ᵀ bn(z_b) / N`, the loss
`Σ(1 − Cᵢᵢ)² + λ Σ_{i≠j} Cᵢⱼ²`. The stem follows the Keras model's: the ImageNet stem
(7×7/2 convolution, 3×3/2 max-pool) or, with `small_images`, a 3×3/1 convolution and no
max-pool. PyTorch is an optional dependency (`pip install -e ".[compare]"`).
"""

import sys
import time

INSTALL_HINT = (
    "--compare pytorch needs PyTorch and torchvision, which are not installed: "
    'pip install -e ".[compare]" (or: pip install torch torchvision)'
)


def import_torch():
    """Imports `torch` and `torchvision`, or raises an `ImportError` that says how to install them.

    Triton (the GPU kernel compiler bundled with CUDA builds of PyTorch, imported by
    torchvision) crashed the process with a segmentation fault when loaded after
    TensorFlow 2.21 (triton 3.8, torch 2.14.1). The CPU comparison does not use it, so
    where TensorFlow is already loaded, triton is marked absent (`sys.modules["triton"] =
    None`; PyTorch then runs without it).
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


def build_reference(spec, lambd=0.0051):
    """The PyTorch model and a `step(view_a, view_b) -> loss` function for a benchmark spec.

    Returns:
        `(modules, step)`: `modules` is a dict of `encoder`, `projector` and `standardize`.
    """
    torch, _ = import_torch()
    torch.manual_seed(0)
    encoder, feature_dim = build_encoder(
        spec["depth"], small_images=spec["small_images"], width=spec["width"]
    )
    projector = build_projector(feature_dim, spec["projector"])
    standardize = torch.nn.BatchNorm1d(spec["projector"][-1], affine=False)
    parameters = list(encoder.parameters()) + list(projector.parameters())
    optimizer = {
        "sgd": lambda: torch.optim.SGD(parameters, lr=0.05, momentum=0.9),
        "adam": lambda: torch.optim.Adam(parameters, lr=1e-3),
        "lars": lambda: lars(parameters, lr=0.2),
    }[spec["optimizer"]]()
    for module in (encoder, projector, standardize):
        module.train()

    def step(view_a, view_b):
        optimizer.zero_grad(set_to_none=True)
        z_a = projector(encoder(view_a))
        z_b = projector(encoder(view_b))
        loss = barlow_twins_loss(z_a, z_b, standardize, lambd)
        loss.backward()
        optimizer.step()
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


def torch_matmul(n=2048):
    """A callable computing one `n × n` float32 product in PyTorch."""
    torch, _ = import_torch()
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator)
    b = torch.randn(n, n, generator=generator)
    return lambda: torch.mm(a, b)


class PyTorchRunner:
    """The reference step on the benchmark's own synthetic views (NCHW copies), timed per step."""

    spe = 1

    def __init__(self, spec):
        torch, torchvision = import_torch()
        from benchmarking.inputs import synthetic_views

        self.modules, self.step = build_reference(spec)
        view_a, view_b = synthetic_views(spec)
        self.views = [torch.from_numpy(v.transpose(0, 3, 1, 2).copy()) for v in (view_a, view_b)]
        self.extra = {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "torch_threads": torch.get_num_threads(),
        }

    def block(self, steps):
        durations = []
        for _ in range(steps):
            start = time.perf_counter()
            float(self.step(*self.views))
            durations.append(time.perf_counter() - start)
        return durations

    warm_up = block
