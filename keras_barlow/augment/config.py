"""What the two-view augmentation does: frozen configs, presets, the normalisation statistics.

Pure Python (no TensorFlow), so it can be imported, validated and serialised anywhere; the
ops that carry a config out live in `keras_barlow.augment.ops`, `.crops` and `.views`.

Barlow Twins (Zbontar et al., 2021) uses BYOL's recipe, asymmetric between the views:

| step | view A | view B |
|---|---|---|
| random resized crop, scale 0.08–1, ratio 3/4–4/3, bilinear | ✓ | ✓ |
| horizontal flip | p 0.5 | p 0.5 |
| colour jitter (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1), random order | p 0.8 | p 0.8 |
| grayscale | p 0.2 | p 0.2 |
| Gaussian blur, σ ∈ [0.1, 2.0] px | p 1.0 | p 0.1 |
| solarisation (x ≥ 0.5 → 1 − x) | p 0.0 | p 0.2 |
| normalisation (ImageNet mean/std) | ✓ | ✓ |
"""

import dataclasses
import numbers

from keras_barlow.backbones.normalization import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_unit_scale_statistics,
)


def _pair(value, name, *, low=None, high=None):
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair of numbers, got {value!r}") from None
    if lo > hi or (low is not None and lo < low) or (high is not None and hi > high):
        bounds = f" within [{low}, {high}]" if low is not None or high is not None else ""
        raise ValueError(f"{name} must be a (min, max) pair with min <= max{bounds}, got {value}")
    return (lo, hi)


def _prob(value, name):
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} is a probability and must be in [0, 1], got {value}")
    return value


def _whole_positive(value):
    return (
        isinstance(value, numbers.Real) and not isinstance(value, bool) and value >= 1 and value == int(value)
    )


def _image_size(size):
    """`(height, width)` from a positive int or a pair of them; anything else (a string, a
    bool, a fraction, three numbers) is a ValueError naming what was received."""
    value = size.item() if getattr(size, "ndim", None) == 0 else size
    pair = (value, value) if isinstance(value, numbers.Number) else value
    try:
        valid = not isinstance(pair, (str, bytes)) and len(pair) == 2 and all(map(_whole_positive, pair))
    except TypeError:  # no len()
        valid = False
    if not valid:
        raise ValueError(
            f"image_size must be a positive int or (height, width), got {size!r} ({type(size).__name__})"
        )
    return (int(pair[0]), int(pair[1]))


@dataclasses.dataclass(frozen=True)
class ViewConfig:
    """The random transformations of one view; every probability and strength.

    Args:
        crop_scale: (min, max) fraction of the image area kept by the random crop.
        crop_ratio: (min, max) aspect ratio (width / height) of the crop window.
        flip_prob: probability of a horizontal flip.
        jitter_prob: probability of applying colour jitter to an image.
        brightness, contrast, saturation: jitter strengths `s`; factors are drawn from
            U[max(0, 1 - s), 1 + s] as in torchvision.
        hue: hue shift drawn from U[-hue, hue], in fractions of the colour circle (≤ 0.5).
        jitter_random_order: apply the four jitter ops in a random order per image
            (torchvision's `ColorJitter`); False: brightness, contrast, saturation, hue.
        grayscale_prob: probability of converting to (3-channel) grayscale.
        blur_prob: probability of a Gaussian blur.
        blur_sigma: (min, max) of the blur σ in output pixels, drawn per image.
        solarize_prob: probability of solarisation.
        solarize_threshold: pixels ≥ this value (in [0, 1]) are inverted to `1 - x`.
        rotation: rotation angle drawn per image from U[-rotation, rotation] degrees.
        shear: horizontal shear factor drawn per image from U[-shear, shear].
            Either > 0 makes the crop, rotation and shear one affine warp
            (`keras_barlow.augment.affine`); both 0 (the default) keep the plain crop.

    Example:
    >>> ViewConfig(blur_prob=0.1).crop_scale
    (0.08, 1.0)
    """

    crop_scale: tuple = (0.08, 1.0)
    crop_ratio: tuple = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    jitter_prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    jitter_random_order: bool = True
    grayscale_prob: float = 0.2
    blur_prob: float = 1.0
    blur_sigma: tuple = (0.1, 2.0)
    solarize_prob: float = 0.0
    solarize_threshold: float = 0.5
    rotation: float = 0.0
    shear: float = 0.0

    def __post_init__(self):
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        fix("crop_scale", _pair(self.crop_scale, "crop_scale", low=1e-6, high=1.0))
        fix("crop_ratio", _pair(self.crop_ratio, "crop_ratio", low=1e-6))
        fix("blur_sigma", _pair(self.blur_sigma, "blur_sigma", low=1e-6))
        for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
            fix(name, _prob(getattr(self, name), name))
        fix("solarize_threshold", _prob(self.solarize_threshold, "solarize_threshold"))
        for name in ("brightness", "contrast", "saturation"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
            fix(name, float(getattr(self, name)))
        if not 0.0 <= float(self.hue) <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5] (a fraction of the colour circle), got {self.hue}")
        fix("hue", float(self.hue))
        fix("jitter_random_order", bool(self.jitter_random_order))
        if not 0.0 <= float(self.rotation) <= 180.0:
            raise ValueError(
                f"rotation is a maximum angle in degrees and must be in [0, 180], got {self.rotation}"
            )
        fix("rotation", float(self.rotation))
        if not 0.0 <= float(self.shear) <= 1.0:
            raise ValueError(f"shear is a maximum shear factor and must be in [0, 1], got {self.shear}")
        fix("shear", float(self.shear))

    @property
    def is_affine(self):
        """Whether this view rotates or shears (then its crop is one affine warp)."""
        return self.rotation > 0 or self.shear > 0


VIEW_FIELDS = tuple(f.name for f in dataclasses.fields(ViewConfig))
TOP_LEVEL_FIELDS = ("image_size", "mean", "std", "eval_crop_fraction")


@dataclasses.dataclass(frozen=True)
class AugmentationConfig:
    """The two-view augmentation: output size, normalisation and each view's randomness.

    Build one from a preset and override anything:

    >>> config = AugmentationConfig.preset("cifar", crop_scale=(0.2, 1.0))  # both views
    >>> config = config.replace(image_size=64, view_b={"solarize_prob": 0.3})  # one view
    >>> config.image_size, config.view_a.crop_scale, config.view_b.solarize_prob
    ((64, 64), (0.2, 1.0), 0.3)

    Presets:
    - `"imagenet"`: 224 px, the paper's table in the module docstring; evaluation centre
      crop 0.875.
    - `"cifar"`: 32 px, crop scale 0.08–1 (as solo-learn's Barlow Twins CIFAR recipe), no
      blur (σ up to 2 px on 32 px erases the image), solarisation 0 / 0.2.
    - `"digits"`: 32 px for scikit-learn's 8×8 digits upscaled: crop scale 0.4–1 (a 0.08
      crop of an 8×8 digit is 2×2 pixels of stroke), no flip (digits are chiral), no
      hue/saturation/grayscale (grey input), no blur, no solarisation (it turns the bright
      strokes as dark as the background); brightness/contrast jitter 0.4 with p 0.8.
    - `"mnist5k"`: 16 px for 28 px grey MNIST digits: the `"digits"` crop (scale 0.4–1,
      no flip, no colour but brightness/contrast 0.4 with p 0.8) warped together with a
      rotation of ±15° and a shear of ±0.15 (one affine warp), Gaussian blur p 0.5 with
      σ 0.1–1.0 px, MNIST's mean 0.1307 / std 0.3081 on every channel. On MNIST-5k it beat
      the crop-only geometry by 0.03 linear / 0.16 5-shot / 0.08 kNN-20 (30 epochs).

    Args:
        image_size: output size, an int or `(height, width)`.
        view_a, view_b: `ViewConfig`s (dicts are accepted).
        mean, std: per-channel normalisation of the [0, 1] RGB output (see
            `check_unit_scale_statistics`).
        eval_crop_fraction: `labeled_dataset` centre-crops this fraction of the shorter side
            before resizing (ImageNet's 224/256 = 0.875; 1.0 = the whole image).
    """

    image_size: tuple = (224, 224)
    view_a: ViewConfig = dataclasses.field(
        default_factory=lambda: ViewConfig(blur_prob=1.0, solarize_prob=0.0)
    )
    view_b: ViewConfig = dataclasses.field(
        default_factory=lambda: ViewConfig(blur_prob=0.1, solarize_prob=0.2)
    )
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    eval_crop_fraction: float = 0.875

    def __post_init__(self):
        object.__setattr__(self, "image_size", _image_size(self.image_size))
        for name in ("view_a", "view_b"):
            view = getattr(self, name)
            if isinstance(view, dict):
                object.__setattr__(self, name, ViewConfig(**view))
            elif not isinstance(view, ViewConfig):
                raise ValueError(
                    f"{name} must be a ViewConfig or a dict of its fields, got {type(view).__name__}"
                )
        mean, std = check_unit_scale_statistics(self.mean, self.std)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if not 0.0 < float(self.eval_crop_fraction) <= 1.0:
            raise ValueError(f"eval_crop_fraction must be in (0, 1], got {self.eval_crop_fraction}")
        object.__setattr__(self, "eval_crop_fraction", float(self.eval_crop_fraction))

    @classmethod
    def preset(cls, name, **overrides):
        """A preset (`"imagenet"`, `"cifar"`, `"digits"`, `"mnist5k"`) with `replace(**overrides)` applied."""
        if isinstance(name, cls):
            return name.replace(**overrides)
        if name not in PRESETS:
            raise ValueError(f"unknown augmentation preset {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name]().replace(**overrides)

    def replace(self, *, view_a=None, view_b=None, **overrides):
        """A copy with fields replaced.

        Args:
            view_a, view_b: a `ViewConfig` replacing that view, or a dict of its fields.
            **overrides: `image_size`, `mean`, `std`, `eval_crop_fraction` (top-level), or
                any `ViewConfig` field (e.g. `blur_prob=0.0`), applied to both views.

        Returns:
            A new `AugmentationConfig`.
        """
        top = {k: overrides.pop(k) for k in list(overrides) if k in TOP_LEVEL_FIELDS}
        unknown = [k for k in overrides if k not in VIEW_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown augmentation option(s) {unknown}; top-level options are image_size, mean, std, "
                f"eval_crop_fraction, view_a, view_b, and per-view options {list(VIEW_FIELDS)}"
            )
        views = {}
        for name, specific in (("view_a", view_a), ("view_b", view_b)):
            view = dataclasses.replace(getattr(self, name), **overrides)
            if isinstance(specific, ViewConfig):
                view = specific
            elif specific:
                bad = [k for k in specific if k not in VIEW_FIELDS]
                if bad:
                    raise ValueError(f"unknown {name} option(s) {bad}; choose from {list(VIEW_FIELDS)}")
                view = dataclasses.replace(view, **specific)
            views[name] = view
        return dataclasses.replace(self, **top, **views)

    def get_config(self):
        """A JSON-serialisable dict; `AugmentationConfig.from_config` inverts it."""
        listify = lambda d: {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}  # noqa: E731
        return {
            "image_size": list(self.image_size),
            "view_a": listify(dataclasses.asdict(self.view_a)),
            "view_b": listify(dataclasses.asdict(self.view_b)),
            "mean": list(self.mean),
            "std": list(self.std),
            "eval_crop_fraction": self.eval_crop_fraction,
        }

    @classmethod
    def from_config(cls, config):
        """The inverse of `get_config`."""
        config = dict(config)
        config["view_a"] = ViewConfig(**config["view_a"])
        config["view_b"] = ViewConfig(**config["view_b"])
        return cls(**config)


def _imagenet():
    return AugmentationConfig()


def _cifar():
    return AugmentationConfig(
        image_size=32,
        view_a=ViewConfig(blur_prob=0.0, solarize_prob=0.0),
        view_b=ViewConfig(blur_prob=0.0, solarize_prob=0.2),
        eval_crop_fraction=1.0,
    )


def _digits():
    view = ViewConfig(
        crop_scale=(0.4, 1.0),
        flip_prob=0.0,
        saturation=0.0,
        hue=0.0,
        grayscale_prob=0.0,
        blur_prob=0.0,
        solarize_prob=0.0,
    )
    return AugmentationConfig(image_size=32, view_a=view, view_b=view, eval_crop_fraction=1.0)


MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def _mnist5k():
    view = dataclasses.replace(
        _digits().view_a, blur_prob=0.5, blur_sigma=(0.1, 1.0), rotation=15.0, shear=0.15
    )
    return AugmentationConfig(
        image_size=16,
        view_a=view,
        view_b=view,
        mean=(MNIST_MEAN,) * 3,
        std=(MNIST_STD,) * 3,
        eval_crop_fraction=1.0,
    )


PRESETS = {"imagenet": _imagenet, "cifar": _cifar, "digits": _digits, "mnist5k": _mnist5k}


def as_config(config):
    """The one way in for augmentation: a preset name or an `AugmentationConfig` → `AugmentationConfig`.

    Args:
        config: a preset name (a key of `PRESETS`) or an `AugmentationConfig` (change any
            setting, the output size included, with `AugmentationConfig.preset(name, **overrides)`
            or `config.replace(...)`).

    Returns:
        An `AugmentationConfig`.

    Example:
    >>> as_config("digits").image_size
    (32, 32)
    >>> as_config(AugmentationConfig.preset("digits", image_size=16)).image_size
    (16, 16)
    """
    if isinstance(config, str):
        return AugmentationConfig.preset(config)
    if isinstance(config, AugmentationConfig):
        return config
    raise ValueError(
        f"expected a preset name ({', '.join(map(repr, sorted(PRESETS)))}) or an AugmentationConfig, "
        f'got {type(config).__name__}; e.g. AugmentationConfig.preset("imagenet", image_size=96)'
    )


def default_preset(source):
    """The augmentation preset for a data source when none is chosen.

    Args:
        source: a source as `keras_barlow.data` accepts it (only names are looked at).

    Returns:
        `"digits"` for the digits source, `"mnist5k"` for MNIST-5k, `"cifar"` for names
        starting with "cifar" (TFDS `cifar10`, `cifar100`), else `"imagenet"`.

    Example:
    >>> default_preset("cifar100"), default_preset("digits"), default_preset("imagenet2012")
    ('cifar', 'digits', 'imagenet')
    >>> default_preset("mnist5k")
    'mnist5k'

    """
    if isinstance(source, str):
        if source in ("digits", "mnist5k"):
            return source
        if source.lower().startswith("cifar"):
            return "cifar"
    return "imagenet"
