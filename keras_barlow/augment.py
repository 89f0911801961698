"""The paper's two-view augmentation, as batched TensorFlow graph ops.

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

Every random parameter (crop window, flip, jitter factors and order, σ, each coin) is
drawn *per image* with stateless ops from a seed tensor, so one call on a batch is a few
vectorised ops (no Python loop, no `map_fn`), it runs on a TPU host or in a
`tf.distribute` input function, and it is deterministic given the seed. `data.py` feeds a
fresh seed to every batch, so views change every step and every epoch.

Why not the Keras / KerasCV layers: `RandomColorJitter` has no probability, random order or
per-image hue in torchvision's sense, `RandomGaussianBlur` draws one σ per batch, and
`RandomCrop` one window per batch; KerasCV's `RandomCropAndResize` is per image but loops
with `map_fn`. Keras layers also follow the Keras backend (JAX arrays under JAX), while a
`tf.data` pipeline needs TF ops whatever the backend. The ops below are plain `tf`, follow
torchvision's definitions (which the official code uses), and are tested against NumPy.

Interpolation: bilinear, through `tf.image.crop_and_resize` (one vectorised op for all
windows; half-pixel sample centres, clamped to the image; no antialiasing). The official
code uses bicubic; bilinear is the other choice the paper's recipe allows.
"""

import dataclasses
import math

import tensorflow as tf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma).
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
_INT32_MAX = 2**31 - 1


def _pair(value, name, *, low=None, high=None):
    lo, hi = (float(v) for v in value)
    if lo > hi or (low is not None and lo < low) or (high is not None and hi > high):
        bounds = f" within [{low}, {high}]" if low is not None or high is not None else ""
        raise ValueError(f"{name} must be a (min, max) pair with min <= max{bounds}, got {value}")
    return (lo, hi)


def _prob(value, name):
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} is a probability and must be in [0, 1], got {value}")
    return value


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


_VIEW_FIELDS = tuple(f.name for f in dataclasses.fields(ViewConfig))


@dataclasses.dataclass(frozen=True)
class AugmentationConfig:
    """The two-view augmentation: output size, normalisation and each view's randomness.

    Build one from a preset and override anything:

    >>> config = AugmentationConfig.preset("cifar", crop_scale=(0.2, 1.0))   # both views
    >>> config = config.replace(image_size=64, view_b={"solarize_prob": 0.3})  # one view

    Presets:
    - `"imagenet"`: 224 px, the paper's table above; evaluation centre crop 0.875.
    - `"cifar"`: 32 px, crop scale 0.08–1 (as solo-learn's Barlow Twins CIFAR recipe), no
      blur (σ up to 2 px on 32 px erases the image), solarisation 0 / 0.2.
    - `"digits"`: 32 px for scikit-learn's 8×8 digits upscaled: crop scale 0.4–1 (a 0.08
      crop of an 8×8 digit is 2×2 pixels of stroke), no flip (digits are chiral), no
      hue/saturation/grayscale (grey input), no blur, no solarisation (it turns the bright
      strokes as dark as the background); brightness/contrast jitter 0.4 with p 0.8.

    Args:
        image_size: output size, an int or `(height, width)`.
        view_a, view_b: `ViewConfig`s (dicts are accepted).
        mean, std: per-channel normalisation of the [0, 1] RGB output.
        eval_crop_fraction: `labeled_dataset` centre-crops this fraction of the shorter side
            before resizing (ImageNet's 224/256 = 0.875; 1.0 = the whole image).
    """

    image_size: tuple = (224, 224)
    view_a: ViewConfig = dataclasses.field(default_factory=lambda: ViewConfig(blur_prob=1.0, solarize_prob=0.0))
    view_b: ViewConfig = dataclasses.field(default_factory=lambda: ViewConfig(blur_prob=0.1, solarize_prob=0.2))
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    eval_crop_fraction: float = 0.875

    def __post_init__(self):
        size = self.image_size
        size = (size, size) if isinstance(size, (int,)) or getattr(size, "ndim", 1) == 0 else tuple(size)
        if len(size) != 2 or any(int(s) != s or int(s) < 1 for s in size):
            raise ValueError(f"image_size must be a positive int or (height, width), got {self.image_size}")
        object.__setattr__(self, "image_size", (int(size[0]), int(size[1])))
        for name in ("view_a", "view_b"):
            view = getattr(self, name)
            if isinstance(view, dict):
                object.__setattr__(self, name, ViewConfig(**view))
            elif not isinstance(view, ViewConfig):
                raise ValueError(f"{name} must be a ViewConfig or a dict of its fields, got {type(view).__name__}")
        for name in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 3:
                raise ValueError(f"{name} needs one value per RGB channel (3), got {value}")
            object.__setattr__(self, name, value)
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std}")
        if not 0.0 < float(self.eval_crop_fraction) <= 1.0:
            raise ValueError(f"eval_crop_fraction must be in (0, 1], got {self.eval_crop_fraction}")
        object.__setattr__(self, "eval_crop_fraction", float(self.eval_crop_fraction))

    @classmethod
    def preset(cls, name, **overrides):
        """A preset (`"imagenet"`, `"cifar"`, `"digits"`) with `replace(**overrides)` applied."""
        if isinstance(name, cls):
            return name.replace(**overrides)
        if name not in PRESETS:
            raise ValueError(f"unknown augmentation preset {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name]().replace(**overrides)

    def replace(self, *, view_a=None, view_b=None, **overrides):
        """A copy with fields replaced.

        `image_size`, `mean`, `std`, `eval_crop_fraction` are top-level; any `ViewConfig`
        field (e.g. `blur_prob=0.0`) applies to both views; `view_a={...}` / `view_b={...}`
        to one view.
        """
        top = {k: overrides.pop(k) for k in list(overrides) if k in ("image_size", "mean", "std", "eval_crop_fraction")}
        unknown = [k for k in overrides if k not in _VIEW_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown augmentation option(s) {unknown}; top-level options are image_size, mean, std, "
                f"eval_crop_fraction, view_a, view_b, and per-view options {list(_VIEW_FIELDS)}"
            )
        views = {}
        for name, specific in (("view_a", view_a), ("view_b", view_b)):
            view = dataclasses.replace(getattr(self, name), **overrides)
            if isinstance(specific, ViewConfig):
                view = specific
            elif specific:
                bad = [k for k in specific if k not in _VIEW_FIELDS]
                if bad:
                    raise ValueError(f"unknown {name} option(s) {bad}; choose from {list(_VIEW_FIELDS)}")
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


PRESETS = {"imagenet": _imagenet, "cifar": _cifar, "digits": _digits}


def as_config(config, image_size=None):
    """A preset name, dict of overrides on `"imagenet"`, or config → `AugmentationConfig`."""
    if isinstance(config, str):
        config = AugmentationConfig.preset(config)
    elif isinstance(config, dict):
        config = AugmentationConfig.preset(config.get("preset", "imagenet"), **{k: v for k, v in config.items() if k != "preset"})
    elif not isinstance(config, AugmentationConfig):
        raise ValueError(f"expected an AugmentationConfig, a preset name or a dict, got {type(config).__name__}")
    if image_size is not None:
        config = config.replace(image_size=image_size)
    return config


# ---------------------------------------------------------------------------------------
# Input checks and conversions


def to_float_rgb(images):
    """Checks images and returns float32 RGB in [0, 1], same rank.

    Accepts uint8 in [0, 255] or floats in [0, 1]; rank 3 `(h, w, c)` or 4 `(n, h, w, c)`;
    1 channel (repeated to 3) or 3 channels. Anything else raises a `ValueError`.
    """
    if isinstance(images, (str, bytes)):
        raise ValueError("expected image pixels, got a string; decode files first (e.g. tf.io.decode_image)")
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.string:
        raise ValueError(
            "expected image pixels, got a tf.string tensor (encoded files?); decode them first, "
            "e.g. tf.io.decode_image(data, channels=3, expand_animations=False)"
        )
    rank = images.shape.rank
    if rank not in (3, 4):
        raise ValueError(
            f"expected an image (height, width, channels) or a batch (batch, height, width, channels), "
            f"got shape {images.shape} (rank {rank}); add a channel axis to grey images with [..., None]"
        )
    channels = images.shape[-1]
    if channels not in (1, 3):
        hint = " (RGBA? drop alpha with images[..., :3])" if channels == 4 else ""
        raise ValueError(f"expected 1 (grey) or 3 (RGB) channels, got {channels} in shape {images.shape}{hint}")
    if images.dtype == tf.uint8:
        images = tf.cast(images, tf.float32) / 255.0
    elif images.dtype.is_floating:
        images = tf.cast(images, tf.float32)
    else:
        raise ValueError(
            f"expected uint8 images in [0, 255] or float images in [0, 1], got dtype {images.dtype.name}; "
            "convert them, e.g. tf.cast(images, tf.float32) / max_value"
        )
    if channels == 1:
        images = tf.repeat(images, 3, axis=-1)
    return images


def normalize(images, config):
    """`(x - mean) / std` with the config's per-channel statistics (x: RGB in [0, 1])."""
    config = as_config(config)
    return (images - tf.constant(config.mean, tf.float32)) / tf.constant(config.std, tf.float32)


def _seed_tensor(seed):
    if seed is None:  # stateful: differs on every call, not reproducible.
        return tf.random.uniform([2], maxval=_INT32_MAX, dtype=tf.int32)
    if isinstance(seed, int):
        return tf.constant([seed % _INT32_MAX, 0], tf.int64)
    seed = tf.convert_to_tensor(seed)
    if seed.shape != (2,) or not seed.dtype.is_integer:
        raise ValueError(f"seed must be an int or an integer tensor of shape [2], got {seed.dtype.name} {seed.shape}")
    return seed


def _batch_size(tensor):
    """The static batch size when known (static shapes all the way: TPUs, cost models), else dynamic."""
    return tensor.shape[0] if tensor.shape[0] is not None else tf.shape(tensor)[0]


def _split(seed, n):
    return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def _uniform(seed, shape, low=0.0, high=1.0):
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high, dtype=tf.float32)


def _coin(seed, n, p):
    return _uniform(seed, [n]) < p


def _per_image(values):
    """(n,) → (n, 1, 1, 1), to broadcast one value per image (a reshape: fewer graph ops than
    `[:, None, None, None]`, which matters for tracing time)."""
    return tf.reshape(values, [-1, 1, 1, 1])


def _gray(images):
    """(…, 3) → (…, 1) luma with torchvision's weights."""
    # Three slices, not reduce_sum over the size-3 channel axis: 4-20x faster on CPU
    # (32x224x224x3: 9-46 ms vs 180-205 ms, same values; recipes/benchmark.py, issue #8).
    r, g, b = GRAY_WEIGHTS
    return images[..., 0:1] * r + images[..., 1:2] * g + images[..., 2:3] * b


# ---------------------------------------------------------------------------------------
# Random resized crop


def sample_crop_boxes(seed, heights, widths, scale, ratio, attempts=10):
    """Per-image crop windows as torchvision's `RandomResizedCrop.get_params`, vectorised.

    Ten candidate (area, log-ratio) draws per image; the first that fits is used, else a
    centre crop with the ratio clamped. Returns float32 `(top, left, height, width)` in pixels.
    """
    heights = tf.cast(heights, tf.float32)
    widths = tf.cast(widths, tf.float32)
    n = _batch_size(heights)
    s_area, s_ratio, s_offset = _split(seed, 3)
    area = (heights * widths)[:, None] * _uniform(s_area, [n, attempts], scale[0], scale[1])
    aspect = tf.exp(_uniform(s_ratio, [n, attempts], math.log(ratio[0]), math.log(ratio[1])))
    w = tf.sqrt(area * aspect)
    h = tf.sqrt(area / aspect)
    fits = (w <= widths[:, None]) & (h <= heights[:, None])
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    found = tf.reduce_any(fits, axis=1)
    w = tf.gather(w, first, batch_dims=1)
    h = tf.gather(h, first, batch_dims=1)
    image_ratio = widths / heights
    fallback_w = tf.where(image_ratio > ratio[1], heights * ratio[1], widths)
    fallback_h = tf.where(image_ratio < ratio[0], widths / ratio[0], heights)
    w = tf.where(found, w, fallback_w)
    h = tf.where(found, h, fallback_h)
    offset = _uniform(s_offset, [n, 2])
    offset = tf.where(found[:, None], offset, 0.5)
    top = offset[:, 0] * (heights - h)
    left = offset[:, 1] * (widths - w)
    return top, left, h, w


def _boxes(top, left, h, w, heights, widths, size):
    """Pixel windows → `crop_and_resize` boxes on the image padded by one edge pixel.

    Output pixel `o` samples input position `top - 0.5 + (o + 0.5) * h / out` (half-pixel
    centres, as `tf.image.resize` and PIL); the one-pixel edge padding makes positions in
    [-0.5, 0) read the edge value, as `tf.image.resize` clamps.
    """
    heights = tf.cast(heights, tf.float32)
    widths = tf.cast(widths, tf.float32)
    out_h, out_w = float(size[0]), float(size[1])
    y1 = (top + 0.5 * h / out_h + 0.5) / (heights + 1.0)
    y2 = (top + h - 0.5 * h / out_h + 0.5) / (heights + 1.0)
    x1 = (left + 0.5 * w / out_w + 0.5) / (widths + 1.0)
    x2 = (left + w - 0.5 * w / out_w + 0.5) / (widths + 1.0)
    return tf.clip_by_value(tf.stack([y1, x1, y2, x2], axis=1), 0.0, 1.0)


def crop_resize(images, top, left, h, w, size, box_indices=None):
    """Bilinear resize of pixel windows `(top, left, h, w)` (float, one per box) to `size`.

    Args:
        images: `(n, H, W, c)` images (any dtype `crop_and_resize` takes).
        top, left, h, w: float32 `(boxes,)` windows in pixels of `images`.
        size: `(height, width)` of the output.
        box_indices: image of each box; default `range(boxes)`.

    Returns:
        float32 `(boxes, *size, c)`, in the input's value range.
    """
    shape = tf.shape(images)
    if box_indices is None:
        box_indices = tf.range(tf.shape(top)[0])
    boxes = _boxes(top, left, h, w, tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32), size)
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    return tf.image.crop_and_resize(padded, boxes, box_indices, size, method="bilinear")


def center_crop_resize(images, size, fraction=1.0):
    """Deterministic evaluation transform: centre crop (`fraction` of the shorter side, at the
    output's aspect ratio) then bilinear resize to `size`, with the same sampler as training."""
    shape = tf.shape(images)
    n = shape[0]
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)
    target_ratio = size[1] / size[0]
    h = tf.minimum(height, width / target_ratio) * fraction
    w = h * target_ratio
    ones = tf.ones([n], tf.float32)
    return crop_resize(images, ones * (height - h) / 2, ones * (width - w) / 2, ones * h, ones * w, size)


def crop_pair(image, config, *, seed=None):
    """Two random resized crops (views A and B) of one image of any size.

    For sources whose images differ in size (folders, ImageNet); batched sources use
    `two_views`, which crops the whole batch at once.

    Args:
        image: `(height, width, channels)` uint8 or float image (1 or 3 channels).
        config: an `AugmentationConfig` or preset name.
        seed: int or `[2]` integer tensor.

    Returns:
        `(crop_a, crop_b)`, float32 RGB in [0, 1] of `config.image_size`.
    """
    config = as_config(config)
    image = to_float_rgb(image)
    if image.shape.rank != 3:
        raise ValueError(f"crop_pair takes one image (height, width, channels), got shape {image.shape}")
    seed_a, seed_b = _split(_seed_tensor(seed), 2)
    shape = tf.shape(image)
    heights = tf.fill([1], shape[0])
    widths = tf.fill([1], shape[1])
    windows = [sample_crop_boxes(s, heights, widths, v.crop_scale, v.crop_ratio) for s, v in ((seed_a, config.view_a), (seed_b, config.view_b))]
    top, left, h, w = (tf.concat([wa, wb], 0) for wa, wb in zip(*windows))
    crops = crop_resize(image[None], top, left, h, w, config.image_size, box_indices=tf.zeros([2], tf.int32))
    return crops[0], crops[1]


# ---------------------------------------------------------------------------------------
# Colour and the rest


def _blend(images, other, factor):
    factor = _per_image(factor)
    return tf.clip_by_value(factor * images + (1.0 - factor) * other, 0.0, 1.0)


def adjust_brightness(images, factor):
    return tf.clip_by_value(images * _per_image(factor), 0.0, 1.0)


def adjust_contrast(images, factor):
    mean = tf.reduce_mean(_gray(images), axis=[1, 2, 3], keepdims=True)
    return _blend(images, mean, factor)


def adjust_saturation(images, factor):
    return _blend(images, _gray(images), factor)


def adjust_hue(images, delta):
    """Shifts the HSV hue by `delta` (fraction of the circle) per image, as torchvision.

    Computed without a full RGB→HSV→RGB round trip: a hue shift keeps each pixel's max and
    min, so RGB is rebuilt from (max, chroma, shifted hue) directly. Equal to
    `hsv_to_rgb(rgb_to_hsv(x) + delta)` to 1e-6 and faster on CPU.
    """
    r, g, b = tf.unstack(images, axis=-1)
    high = tf.maximum(tf.maximum(r, g), b)
    chroma = high - tf.minimum(tf.minimum(r, g), b)
    safe = tf.where(chroma > 0, chroma, 1.0)
    hue = tf.where(
        high == r, (g - b) / safe, tf.where(high == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    ) + 6.0 * tf.reshape(delta, [-1, 1, 1])
    channels = []
    for offset in (5.0, 3.0, 1.0):  # R, G, B in the standard HSV → RGB formula
        k = tf.math.floormod(offset + hue, 6.0)
        channels.append(high - chroma * tf.clip_by_value(tf.minimum(k, 4.0 - k), 0.0, 1.0))
    return tf.clip_by_value(tf.stack(channels, axis=-1), 0.0, 1.0)


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def _apply_where(images, mask, fn, *params):
    """`fn` on the images where `mask` holds, others unchanged; only those are computed."""
    mask = tf.cast(mask, tf.int32)
    index = tf.range(tf.shape(images)[0])
    keep, change = tf.dynamic_partition(images, mask, 2)
    keep_i, change_i = tf.dynamic_partition(index, mask, 2)
    params = [tf.dynamic_partition(p, mask, 2)[1] for p in params]
    return tf.dynamic_stitch([keep_i, change_i], [keep, fn(change, *params)])


def jitter_params(seed, n, view):
    """Per-image colour-jitter draws: `(apply, factors, order)`.

    `apply`: bool `(n,)` with probability `view.jitter_prob`; `factors`: float32 `(n, 4)`
    brightness, contrast, saturation factors from U[max(0, 1 - s), 1 + s] and the hue shift
    from U[-hue, hue]; `order`: int32 `(n, 4)`, a permutation of (0 brightness, 1 contrast,
    2 saturation, 3 hue) per image (identity when `jitter_random_order` is False).
    """
    s_apply, s_factors, s_order = _split(seed, 3)
    apply = _coin(s_apply, n, view.jitter_prob)
    low = tf.constant([max(0.0, 1 - view.brightness), max(0.0, 1 - view.contrast), max(0.0, 1 - view.saturation), -view.hue])
    high = tf.constant([1 + view.brightness, 1 + view.contrast, 1 + view.saturation, view.hue])
    factors = low + (high - low) * _uniform(s_factors, [n, 4])
    if view.jitter_random_order:
        order = tf.cast(tf.argsort(_uniform(s_order, [n, 4]), axis=1), tf.int32)
    else:
        order = tf.tile(tf.range(4)[None], [n, 1])
    return apply, factors, order


def apply_jitter(images, apply, factors, order, active=(True, True, True, True)):
    """Applies drawn jitter: image `i`, if `apply[i]`, gets ops `order[i]` with `factors[i]`.

    At each of the four slots the batch is partitioned by which op each image applies there
    (partition 4: none), so every op runs once per slot on its own images: random order per
    image at the cost of a fixed order. `active[k]` False skips op k (strength 0).
    """
    index = tf.range(tf.shape(images)[0])
    columns = tf.unstack(factors, num=4, axis=1)
    for slot in range(4):
        op = tf.where(apply, order[:, slot], 4)
        op = tf.where(tf.gather(tf.constant(active + (False,)), op), op, 4)
        parts = tf.dynamic_partition(images, op, 5)
        indices = tf.dynamic_partition(index, op, 5)
        outputs = [
            _JITTER_OPS[k](parts[k], tf.dynamic_partition(columns[k], op, 5)[k]) if active[k] else parts[k]
            for k in range(4)
        ]
        images = tf.dynamic_stitch(indices, outputs + [parts[4]])
    return images


def color_jitter(images, view, seed):
    """torchvision's `RandomApply([ColorJitter(b, c, s, h)], p)` per image, vectorised.

    Images not selected pass unchanged; see `jitter_params` and `apply_jitter`.
    """
    active = (view.brightness > 0, view.contrast > 0, view.saturation > 0, view.hue > 0)
    if view.jitter_prob == 0 or not any(active):
        return images
    apply, factors, order = jitter_params(seed, tf.shape(images)[0], view)
    return apply_jitter(images, apply, factors, order, active)


def _reflect_indices(size, radius):
    index = list(range(radius, 0, -1)) + list(range(size)) + list(range(size - 2, size - 2 - radius, -1))
    return tf.constant(index, tf.int32)


def gaussian_blur(images, sigma, max_sigma):
    """Blurs each image with its own σ: a separable Gaussian, reflect padding.

    The batch is folded into the channels of one depthwise convolution (kernel radius
    ceil(3·max σ)), so every image has its own kernel in a single op.

    Args:
        images: float32 `(n, h, w, 3)` with static `h`, `w`.
        sigma: float32 `(n,)`, one σ per image (pixels).
        max_sigma: the largest σ that will be drawn (sets the kernel size).
    """
    height, width = images.shape[1], images.shape[2]
    radius = int(math.ceil(3.0 * max_sigma))
    radius = max(1, min(radius, height - 1, width - 1))
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps[None, :] / sigma[:, None]))
    kernel = kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)  # (n, taps)
    kernel = tf.transpose(tf.repeat(kernel, 3, axis=0))  # (taps, n * 3): one per image channel
    # -1, not n: shapes taken from dynamic_partition outputs can be mis-folded by grappler's
    # constant folding when the partition is constant (seen with TF 2.21).
    folded = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, height, width, -1])
    # Reflect padding by gathering (tf.pad's MirrorPad rejects an empty batch).
    padded = tf.gather(folded, _reflect_indices(height, radius), axis=1)
    padded = tf.gather(padded, _reflect_indices(width, radius), axis=2)
    out = tf.nn.depthwise_conv2d(padded, kernel[:, None, :, None], [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, kernel[None, :, :, None], [1, 1, 1, 1], "VALID")
    return tf.transpose(tf.reshape(out, [height, width, -1, 3]), [2, 0, 1, 3])


def solarize(images, threshold=0.5):
    """PIL's `ImageOps.solarize`: pixels ≥ threshold become `1 - x`."""
    return tf.where(images >= threshold, 1.0 - images, images)


def finish_view(crops, view, seed):
    """Flip, colour jitter, grayscale, blur and solarisation of one view's crops.

    Args:
        crops: float32 RGB in [0, 1], `(batch, height, width, 3)`.
        view: a `ViewConfig`.
        seed: `[2]` integer tensor.

    Returns:
        float32 RGB in [0, 1] (not normalised).
    """
    n = _batch_size(crops)
    s_flip, s_jitter, s_gray, s_blur, s_sigma, s_solar = _split(seed, 6)
    x = crops
    if view.flip_prob > 0:
        x = tf.where(_per_image(_coin(s_flip, n, view.flip_prob)), tf.reverse(x, axis=[2]), x)
    x = color_jitter(x, view, s_jitter)
    if view.grayscale_prob > 0:
        gray = tf.repeat(_gray(x), 3, axis=-1)
        x = tf.where(_per_image(_coin(s_gray, n, view.grayscale_prob)), gray, x)
    if view.blur_prob > 0:
        sigma = _uniform(s_sigma, [n], view.blur_sigma[0], view.blur_sigma[1])
        blur = lambda images, s: gaussian_blur(images, s, view.blur_sigma[1])  # noqa: E731
        x = _apply_where(x, _coin(s_blur, n, view.blur_prob), blur, sigma)
    if view.solarize_prob > 0:
        mask = _per_image(_coin(s_solar, n, view.solarize_prob))
        x = tf.where(mask, solarize(x, view.solarize_threshold), x)
    x.set_shape(crops.shape)  # dynamic_stitch forgets the static batch size (TPUs need it)
    return x


def finish_views(crops_a, crops_b, config, *, seed=None):
    """The per-view colour transforms and normalisation of two batches of crops
    (`crop_pair`'s outputs, batched). Returns normalised float32 `(view_a, view_b)`."""
    config = as_config(config)
    seed_a, seed_b = _split(_seed_tensor(seed), 2)
    view_a = finish_view(crops_a, config.view_a, seed_a)
    view_b = finish_view(crops_b, config.view_b, seed_b)
    return normalize(view_a, config), normalize(view_b, config)


def two_views(images, config="imagenet", *, seed=None):
    """The paper's two augmented views of a batch of images.

    Args:
        images: uint8 [0, 255] or float [0, 1] images, `(batch, h, w, c)` or one
            `(h, w, c)` image, c = 1 or 3.
        config: an `AugmentationConfig`, a preset name, or a dict of overrides.
        seed: int or `[2]` integer tensor (e.g. one per batch from
            `tf.data.Dataset.random`); same seed → same views. None: a fresh random seed
            on every call (not reproducible).

    Returns:
        `(view_a, view_b)`: float32, normalised, `(batch, *config.image_size, 3)` (no batch
        axis for a single image).

    Example:
    >>> images = tf.zeros([8, 32, 32, 3], tf.uint8)
    >>> a, b = two_views(images, "cifar", seed=0)
    >>> a.shape
    TensorShape([8, 32, 32, 3])
    """
    config = as_config(config)
    images = to_float_rgb(images)
    single = images.shape.rank == 3
    if single:
        images = images[None]
    seed = _seed_tensor(seed)
    s_crop_a, s_crop_b, s_finish = _split(seed, 3)
    shape = tf.shape(images)
    n = _batch_size(images)
    heights, widths = tf.fill([n], shape[1]), tf.fill([n], shape[2])
    win_a = sample_crop_boxes(s_crop_a, heights, widths, config.view_a.crop_scale, config.view_a.crop_ratio)
    win_b = sample_crop_boxes(s_crop_b, heights, widths, config.view_b.crop_scale, config.view_b.crop_ratio)
    top, left, h, w = (tf.concat([a, b], 0) for a, b in zip(win_a, win_b))
    index = tf.range(n)
    crops = crop_resize(images, top, left, h, w, config.image_size, box_indices=tf.concat([index, index], 0))
    crops = tf.ensure_shape(crops, [None, *config.image_size, 3])
    view_a, view_b = finish_views(crops[:n], crops[n:], config, seed=s_finish)
    if single:
        return view_a[0], view_b[0]
    return view_a, view_b
