"""The paper's two-view augmentation, as batched TensorFlow graph ops.

Modules (each below imports only those above it):

| module | owns |
|---|---|
| `config` | `AugmentationConfig`, `ViewConfig`, presets, `default_preset` (pure Python: no TensorFlow) |
| `seeds` | seed derivation and stateless per-image draws |
| `ops` | input checks, normalisation, flip, colour jitter, grayscale, blur, solarisation |
| `crops` | random resized crops, the evaluation centre crop, `random_crop_flip` |
| `affine` | crop + rotation + shear as one warp per image (`random_affine_crops`) |
| `views` | `two_views`, `crop_pair`, `finish_view(s)`, `image_views`: the pretraining views |
"""

from keras_barlow.augment.affine import affine_transforms, random_affine_crops, warp
from keras_barlow.augment.config import (
    PRESETS,
    AugmentationConfig,
    ViewConfig,
    as_config,
    default_preset,
)
from keras_barlow.augment.crops import (
    center_crop_resize,
    crop_resize,
    random_crop_flip,
    resize_window,
    sample_crop_boxes,
    sample_crop_pixels,
)
from keras_barlow.augment.ops import (
    GRAY_WEIGHTS,
    JITTER_OPS,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    apply_jitter,
    blur_image,
    color_jitter,
    gaussian_blur,
    jitter_params,
    normalize,
    normalize_image,
    random_flip,
    solarize,
    to_float_rgb,
)
from keras_barlow.augment.seeds import derive_seed, seed_stream, seed_tensor
from keras_barlow.augment.views import crop_pair, finish_view, finish_views, image_views, two_views

__all__ = [
    "GRAY_WEIGHTS",
    "JITTER_OPS",
    "PRESETS",
    "AugmentationConfig",
    "ViewConfig",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "affine_transforms",
    "apply_jitter",
    "as_config",
    "blur_image",
    "center_crop_resize",
    "color_jitter",
    "crop_pair",
    "crop_resize",
    "default_preset",
    "derive_seed",
    "finish_view",
    "finish_views",
    "gaussian_blur",
    "image_views",
    "jitter_params",
    "normalize",
    "normalize_image",
    "random_affine_crops",
    "random_crop_flip",
    "random_flip",
    "resize_window",
    "sample_crop_boxes",
    "sample_crop_pixels",
    "seed_stream",
    "seed_tensor",
    "solarize",
    "to_float_rgb",
    "two_views",
    "warp",
]
