"""The PyTorch sides of the input-pipeline benchmark (`benchmarking.input_pipeline`).

- `official`: the official Barlow Twins input pipeline (facebookresearch/barlowtwins,
  `main.py`), written out as it is there: `torchvision.datasets.ImageFolder` (PIL decode)
  with the two-view `Transform` — `RandomResizedCrop(224, interpolation=BICUBIC)`, flip,
  `RandomApply([ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8)`, `RandomGrayscale(0.2)`, its
  own PIL `GaussianBlur` (p 1.0 / 0.1, σ ~ U(0.1, 2.0)) and `Solarization` (p 0.0 / 0.2),
  `ToTensor`, `Normalize` — in a `DataLoader`.
- `torchvision-v2`: the same recipe with torchvision's transforms v2 on uint8 tensors
  (`torchvision.io.decode_jpeg`; `GaussianBlur(kernel_size=23)`, BYOL's 10 % of 224 px).

Both run in a `DataLoader` with `num_workers` worker processes (the benchmark uses one per
core), one long shuffled epoch and `persistent_workers=True` (the steady state: the official
script starts its workers at every epoch and drains them at its end, which over ImageNet's
1.28 M images costs nothing per image, but every 4 batches of a small folder would), and
`pin_memory=False` (no GPU). Output: float32 NCHW `(batch, 3, 224, 224)` per view.

Run as `python -m benchmarking.official_transform SPEC_JSON` (recipes/ on `PYTHONPATH`),
it serves timed blocks to the driver (`serving.serve`); it never imports TensorFlow.
"""

import argparse
import json
import random
import sys

from benchmarking import serving

SIDES = ("official", "torchvision-v2")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def import_torch():
    """`(torch, torchvision)`, or an `ImportError` that says how to install them."""
    try:
        import torch
        import torchvision
    except ImportError as error:
        raise ImportError(
            f'the PyTorch sides need torch and torchvision: pip install -e ".[compare]" ({error})'
        ) from error
    return torch, torchvision


# --- the official repository's Transform (main.py), as written there -----------------------


class GaussianBlur:
    """main.py's blur: PIL's `ImageFilter.GaussianBlur` with σ ~ U(0.1, 2.0), probability `p`."""

    def __init__(self, p):
        self.p = p

    def __call__(self, img):
        from PIL import ImageFilter

        if random.random() < self.p:
            sigma = random.random() * 1.9 + 0.1
            return img.filter(ImageFilter.GaussianBlur(sigma))
        return img


class Solarization:
    """main.py's solarisation: PIL's `ImageOps.solarize` (threshold 128), probability `p`."""

    def __init__(self, p):
        self.p = p

    def __call__(self, img):
        from PIL import ImageOps

        if random.random() < self.p:
            return ImageOps.solarize(img)
        return img


class Transform:
    """main.py's two-view `Transform` (the image size a parameter, 224 there)."""

    def __init__(self, image_size=224):
        from PIL import Image
        from torchvision import transforms

        def compose(blur_p, solarize_p):
            return transforms.Compose(
                [
                    transforms.RandomResizedCrop(image_size, interpolation=Image.BICUBIC),
                    transforms.RandomHorizontalFlip(p=0.5),
                    transforms.RandomApply(
                        [transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)],
                        p=0.8,
                    ),
                    transforms.RandomGrayscale(p=0.2),
                    GaussianBlur(p=blur_p),
                    Solarization(p=solarize_p),
                    transforms.ToTensor(),
                    transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
                ]
            )

        self.transform = compose(1.0, 0.0)
        self.transform_prime = compose(0.1, 0.2)

    def __call__(self, x):
        y1 = self.transform(x)
        y2 = self.transform_prime(x)
        return y1, y2


# --- torchvision transforms v2 on tensors ----------------------------------------------------


class V2Transform:
    """The recipe with `torchvision.transforms.v2` on uint8 CHW tensors (float at the end)."""

    def __init__(self, image_size=224, blur_kernel=23):
        import torch
        from torchvision.transforms import InterpolationMode, v2

        def compose(blur_p, solarize_p):
            return v2.Compose(
                [
                    v2.RandomResizedCrop(image_size, interpolation=InterpolationMode.BICUBIC, antialias=True),
                    v2.RandomHorizontalFlip(p=0.5),
                    v2.RandomApply(
                        [v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8
                    ),
                    v2.RandomGrayscale(p=0.2),
                    v2.RandomApply([v2.GaussianBlur(blur_kernel, sigma=(0.1, 2.0))], p=blur_p),
                    v2.RandomSolarize(threshold=128, p=solarize_p),
                    v2.ToDtype(torch.float32, scale=True),
                    v2.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
                ]
            )

        self.transform = compose(1.0, 0.0)
        self.transform_prime = compose(0.1, 0.2)

    def __call__(self, x):
        return self.transform(x), self.transform_prime(x)


def _tensor_dataset(files, transform):
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    class TensorImages(torch.utils.data.Dataset):
        """The folder's files decoded by `torchvision.io` into uint8 CHW tensors."""

        def __len__(self):
            return len(files)

        def __getitem__(self, index):
            image = decode_jpeg(read_file(files[index]), mode=ImageReadMode.RGB)
            return transform(image), 0

    return TensorImages()


def make_loader(side, root, *, batch_size, workers, image_size=224, seed=0):
    """The `DataLoader` of one side over the image folder `root` (class sub-folders).

    Args:
        side: `"official"` or `"torchvision-v2"`.
        root: a folder of class sub-folders of JPEG files (`torchvision.datasets.ImageFolder`).
        batch_size, workers: the `DataLoader`'s.
        image_size: output size.
        seed: the shuffle and the workers' base seed.

    Returns:
        A `DataLoader` of `((view_a, view_b), labels)`, views float32 `(batch, 3, size, size)`.
    """
    torch, torchvision = import_torch()
    if side == "official":
        dataset = torchvision.datasets.ImageFolder(root, Transform(image_size))
    elif side == "torchvision-v2":
        files = [path for path, _ in torchvision.datasets.ImageFolder(root).samples]
        dataset = _tensor_dataset(files, V2Transform(image_size))
    else:
        raise ValueError(f"unknown side {side!r}; choose one of {SIDES}")
    # One long epoch (1,000 shuffled passes): the steady state of an ImageNet epoch (1.28 M
    # images), whose workers never drain at an epoch's end as they would every few batches here.
    sampler = torch.utils.data.RandomSampler(
        dataset, num_samples=1000 * len(dataset), generator=torch.Generator().manual_seed(seed)
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=False,
        drop_last=True,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


def endless_batches(loader):
    """The loader's `(view_a, view_b)` batches, epoch after epoch."""
    while True:
        for views, _ in loader:
            yield views


def main(argv=None):
    parser = argparse.ArgumentParser(description="A PyTorch side of the input-pipeline benchmark.")
    parser.add_argument("spec", help="the benchmark spec, as JSON (with 'side')")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    from benchmarking.input_pipeline import BatchRunner

    def make_runner(spec, measure):
        try:
            torch, torchvision = import_torch()
            loader = make_loader(
                measure, spec["images_root"], batch_size=spec["batch_size"], workers=spec["workers"],
                image_size=spec["image_size"], seed=spec["seed"],
            )  # fmt: skip
        except (ImportError, OSError, RuntimeError) as error:  # torchvision's ops may fail to load
            return serving.refuse(f"{measure}: {type(error).__name__}: {error}")
        extra = {
            "framework": "pytorch",
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "workers": spec["workers"],
            "output": "float32 NCHW",
        }
        return BatchRunner(spec, endless_batches(loader), extra)

    side = spec["side"]
    runners, records = serving.set_up(spec, [side], make_runner)
    if "tensorflow" in sys.modules:  # never: the comparison measures PyTorch alone
        serving.refuse("the PyTorch side imported TensorFlow")
    serving.serve(spec, runners, records, lambda: {"results": [runners[side].result()]})
    runners[side].close()


if __name__ == "__main__":
    main()
