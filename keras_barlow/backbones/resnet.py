"""ResNet encoders that are KerasHub backbones and that KerasCV accepts too.

`resnet(depth, ...)` builds ResNet-18/34/50/101/152 from arguments (never a preset
download) as a `BarlowResNetBackbone`, a registered subclass of
`keras_hub.models.ResNetBackbone`:

- it has KerasHub's `pyramid_outputs` (`P2`–`P5`), so KerasHub's `RetinaNetBackbone`,
  `DeepLabV3Backbone` and image classifiers take it;
- it also has KerasCV's `pyramid_level_inputs` (`{"P2": layer name, ...}`), derived from
  `pyramid_outputs`, so KerasCV's `RetinaNet`, `YOLOV8Detector` and `DeepLabV3Plus` take
  it, also after a `.keras` save/load;
- its layer names and graph are those of `keras_hub.models.ResNetBackbone` for the
  ImageNet stem and width 64 (same weights, same outputs), with what KerasHub's class
  cannot express: the CIFAR-scale stem (`small_images=True`: 3×3 stride-1 convolution and
  no max-pool), narrower or wider networks (`width`), zero-initialised residual
  branches (`zero_init_residual`) and a one-channel stem behind an RGB input
  (`grayscale=True`, for grey data such as MNIST).

Initialisation and normalisation follow torchvision's ResNet, which the official Barlow
Twins code pretrains: convolutions He-normal with fan-out, batch norm `epsilon=1e-5` and
momentum 0.1 in PyTorch terms (Keras `momentum=0.9`); with `zero_init_residual` the last
batch-norm γ of every residual block starts at 0, so every block starts as the identity.
"""

import keras
import keras_hub
from keras import layers, ops

from keras_barlow import _compat

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # PyTorch's BatchNorm momentum 0.1

# depth -> (block type, blocks per stack)
RESNET_DEPTHS = {
    18: ("basic_block", (2, 2, 2, 2)),
    34: ("basic_block", (3, 4, 6, 3)),
    50: ("bottleneck_block", (3, 4, 6, 3)),
    101: ("bottleneck_block", (3, 4, 23, 3)),
    152: ("bottleneck_block", (3, 8, 36, 3)),
}
STACK_STRIDES = (1, 2, 2, 2)


# torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma), scaled to sum to 1 so that a
# grey image repeated to three channels (normalised or not) maps to itself.
LUMA_WEIGHTS = tuple(w / (0.2989 + 0.587 + 0.114) for w in (0.2989, 0.587, 0.114))


@keras.saving.register_keras_serializable(package="keras_barlow")
class Grayscale(keras.layers.Layer):
    """RGB → one grey channel (luma, weights summing to 1); no weights to train.

    Linear, so it commutes with a per-channel normalisation that is the same on every
    channel: `Grayscale()((x - m) / s) == (luma(x) - m) / s`.

    Args:
        data_format: `"channels_last"` (default) or `"channels_first"`.

    Example:
    >>> import numpy as np
    >>> grey = np.full((1, 2, 2, 3), 0.25, "float32")
    >>> keras.ops.convert_to_numpy(Grayscale()(grey)).shape
    (1, 2, 2, 1)
    """

    def __init__(self, data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format
        self._axis = -1 if data_format == "channels_last" else 1

    def call(self, images):
        channels = ops.unstack(images, 3, axis=self._axis)
        grey = sum(w * c for w, c in zip(LUMA_WEIGHTS, channels))
        return ops.expand_dims(grey, self._axis)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape[self._axis] = 1
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


def _conv_initializer():
    # torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu").
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


@keras.saving.register_keras_serializable(package="keras_barlow")
class BarlowResNetBackbone(keras_hub.models.ResNetBackbone):
    """A ResNet (v1.5) KerasHub backbone with a CIFAR-scale stem, a width and zero-init.

    Prefer the `resnet()` factory. Outputs the last feature map `(batch, h, w, 8·width)`
    for ResNet-18/34 and `(batch, h, w, 32·width)` for ResNet-50/101/152; `pyramid_outputs`
    holds `P2`–`P5` and `pyramid_level_inputs` their layer names (KerasCV's convention).
    Images go in as given (no rescaling layer): normalise them in the data pipeline.

    Args:
        depth: 18, 34, 50, 101 or 152.
        image_shape: input shape without the batch size, e.g. `(None, None, 3)`.
        small_images: CIFAR-scale stem (3×3 stride-1 convolution, no max-pool) instead of
            the ImageNet stem (7×7 stride-2 convolution and a stride-2 max-pool).
        zero_init_residual: start the last batch-norm γ of every residual block at 0.
        width: filters of the first stack (64 in the standard ResNets); the stacks have
            `width, 2·width, 4·width, 8·width` filters (×4 at the output of bottleneck
            blocks).
        grayscale: turn the RGB input into one grey channel (`Grayscale`) before the stem,
            whose convolution then has one input channel; the input stays RGB.
        data_format: `"channels_last"` or `"channels_first"` (default: Keras' setting).
        dtype: dtype policy of the layers.
        **kwargs: `keras_hub.models.Backbone` arguments such as `name`.
    """

    def __init__(
        self,
        depth=50,
        image_shape=(None, None, 3),
        small_images=False,
        zero_init_residual=True,
        width=64,
        data_format=None,
        dtype=None,
        grayscale=False,
        **kwargs,
    ):
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_DEPTHS)}, got {depth!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer (64 for the standard ResNets), got {width!r}")
        image_shape = tuple(image_shape)
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}")
        data_format = data_format or keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}")
        block_type, blocks = RESNET_DEPTHS[depth]
        filters = [width * 2**i for i in range(len(blocks))]
        bn_axis = -1 if data_format == "channels_last" else 1
        common = dict(data_format=data_format, dtype=dtype, bn_axis=bn_axis)

        channels = image_shape[-1] if data_format == "channels_last" else image_shape[0]
        if grayscale and channels != 3:
            raise ValueError(
                "grayscale=True turns RGB input into grey, so image_shape needs 3 channels, got "
                f"{image_shape}; repeat grey images to 3 channels, or pass grayscale=False"
            )

        inputs = layers.Input(shape=image_shape)
        x = inputs
        if grayscale:
            x = Grayscale(data_format, dtype=dtype, name="grayscale")(x)
        x = _stem(x, width, small_images, **common)
        first_level = 0 if small_images else 2  # the stride of the first stack is 1 or 4
        pyramid_outputs = {}
        for stack, (num_filters, num_blocks, stride) in enumerate(zip(filters, blocks, STACK_STRIDES)):
            for block in range(num_blocks):
                x = _residual_block(
                    x,
                    num_filters,
                    block_type=block_type,
                    stride=stride if block == 0 else 1,
                    conv_shortcut=block == 0 and (block_type != "basic_block" or stack > 0),
                    zero_init_residual=zero_init_residual,
                    name=f"stack{stack}_block{block}",
                    **common,
                )
            # `Pn` is a feature map 2^n times smaller than the image (KerasHub's
            # convention, which the detection/segmentation heads rely on).
            pyramid_outputs[f"P{stack + first_level}"] = x

        # KerasHub's ResNetBackbone cannot express this stem or width: its constructor is
        # skipped, and `Backbone.__init__` makes the functional model as it would.
        _compat.init_functional_backbone(self, inputs=inputs, outputs=x, dtype=dtype, **kwargs)

        # === Config ===
        self.depth = depth
        self.width = width
        self.small_images = bool(small_images)
        self.zero_init_residual = bool(zero_init_residual)
        self.grayscale = bool(grayscale)
        self.image_shape = image_shape
        self.data_format = data_format
        self.pyramid_outputs = pyramid_outputs
        # The attributes of keras_hub.models.ResNetBackbone, for code that reads them.
        self.input_conv_filters = [width]
        self.input_conv_kernel_sizes = [3 if small_images else 7]
        self.stackwise_num_filters = filters
        self.stackwise_num_blocks = list(blocks)
        self.stackwise_num_strides = list(STACK_STRIDES)
        self.block_type = block_type
        self.use_pre_activation = False

    @property
    def pyramid_level_inputs(self):
        """KerasCV's view of `pyramid_outputs`: `{"P2": layer name, ..., "P5": ...}`."""
        return _compat.pyramid_level_names(self)

    def get_config(self):
        config = _compat.backbone_base_config(self)
        config.update(
            {
                "depth": self.depth,
                "image_shape": list(self.image_shape),
                "small_images": self.small_images,
                "zero_init_residual": self.zero_init_residual,
                "width": self.width,
                "data_format": self.data_format,
                "grayscale": self.grayscale,
            }
        )
        return config


def resnet(
    depth,
    image_shape=(None, None, 3),
    *,
    small_images=False,
    zero_init_residual=True,
    width=64,
    grayscale=False,
    **kwargs,
):
    """A randomly initialised ResNet-`depth` encoder (KerasHub backbone, KerasCV-compatible).

    Args:
        depth: 18, 34, 50, 101 or 152.
        image_shape: `(height, width, channels)`; `None` sizes accept any image size.
        small_images: CIFAR-scale stem (3×3 stride-1 convolution, no max-pool), for
            images of about 32–96 pixels.
        zero_init_residual: the last batch-norm γ of every residual block starts at 0
            (the official pretraining default).
        width: filters of the first stack (standard: 64). Narrow ResNets (e.g. 16) train
            much faster on CPUs; the feature size is `8·width` (ResNet-18/34) or
            `32·width` (ResNet-50/101/152).
        grayscale: a one-channel stem behind the RGB input (see `BarlowResNetBackbone`):
            for grey data, the network then has the weights and initialisation of a
            one-channel ResNet (on MNIST-5k, 3-channel stems trained measurably worse).
        **kwargs: `BarlowResNetBackbone` arguments (`name`, `dtype`, `data_format`).

    Returns:
        A `BarlowResNetBackbone` (a `keras_hub.models.ResNetBackbone`) with
        `pyramid_outputs` and `pyramid_level_inputs`.

    Example:
    ```python
    encoder = resnet(18, (32, 32, 3), small_images=True)
    encoder.pyramid_level_inputs["P5"]  # 'stack3_block1_out'
    model = keras_barlow.BarlowTwins(encoder, projector_dims=(512, 512, 512))
    ```
    """
    return BarlowResNetBackbone(
        depth=depth,
        image_shape=image_shape,
        small_images=small_images,
        zero_init_residual=zero_init_residual,
        width=width,
        grayscale=grayscale,
        **kwargs,
    )


def _batch_norm(name, *, bn_axis, dtype, zero_gamma=False):
    return layers.BatchNormalization(
        axis=bn_axis,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        gamma_initializer="zeros" if zero_gamma else "ones",
        dtype=dtype,
        name=name,
    )


def _conv(filters, kernel_size, strides, padding, name, *, data_format, dtype):
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=_conv_initializer(),
        data_format=data_format,
        dtype=dtype,
        name=name,
    )


def _stem(x, width, small_images, *, data_format, dtype, bn_axis):
    conv = dict(data_format=data_format, dtype=dtype)
    if small_images:
        x = _conv(width, 3, 1, "same", "conv1_conv", **conv)(x)
    else:
        # Explicit padding + "valid" matches PyTorch's padding for stride 2 (as KerasHub).
        x = layers.ZeroPadding2D(3, data_format=data_format, dtype=dtype, name="conv1_pad")(x)
        x = _conv(width, 7, 2, "valid", "conv1_conv", **conv)(x)
    x = _batch_norm("conv1_bn", bn_axis=bn_axis, dtype=dtype)(x)
    x = layers.Activation("relu", dtype=dtype, name="conv1_relu")(x)
    if not small_images:
        x = layers.ZeroPadding2D(1, data_format=data_format, dtype=dtype, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, data_format=data_format, dtype=dtype, name="pool1_pool")(x)
    return x


def _strided_conv(x, filters, stride, name, *, data_format, dtype):
    """3×3 convolution; with stride > 1, explicit padding as PyTorch (and KerasHub)."""
    if stride > 1:
        x = layers.ZeroPadding2D(1, data_format=data_format, dtype=dtype, name=name.replace("_conv", "_pad"))(
            x
        )
        return _conv(filters, 3, stride, "valid", name, data_format=data_format, dtype=dtype)(x)
    return _conv(filters, 3, 1, "same", name, data_format=data_format, dtype=dtype)(x)


def _residual_block(
    x, filters, *, block_type, stride, conv_shortcut, zero_init_residual, name, data_format, dtype, bn_axis
):
    conv = dict(data_format=data_format, dtype=dtype)
    bn = dict(bn_axis=bn_axis, dtype=dtype)
    out_filters = filters if block_type == "basic_block" else 4 * filters
    shortcut = x
    if conv_shortcut:
        shortcut = _conv(out_filters, 1, stride, "valid", f"{name}_0_conv", **conv)(x)
        shortcut = _batch_norm(f"{name}_0_bn", **bn)(shortcut)

    if block_type == "basic_block":
        x = _strided_conv(x, filters, stride, f"{name}_1_conv", **conv)
        x = _batch_norm(f"{name}_1_bn", **bn)(x)
        x = layers.Activation("relu", dtype=dtype, name=f"{name}_1_relu")(x)
        x = _conv(filters, 3, 1, "same", f"{name}_2_conv", **conv)(x)
        x = _batch_norm(f"{name}_2_bn", zero_gamma=zero_init_residual, **bn)(x)
    else:
        x = _conv(filters, 1, 1, "valid", f"{name}_1_conv", **conv)(x)
        x = _batch_norm(f"{name}_1_bn", **bn)(x)
        x = layers.Activation("relu", dtype=dtype, name=f"{name}_1_relu")(x)
        x = _strided_conv(x, filters, stride, f"{name}_2_conv", **conv)
        x = _batch_norm(f"{name}_2_bn", **bn)(x)
        x = layers.Activation("relu", dtype=dtype, name=f"{name}_2_relu")(x)
        x = _conv(out_filters, 1, 1, "valid", f"{name}_3_conv", **conv)(x)
        x = _batch_norm(f"{name}_3_bn", zero_gamma=zero_init_residual, **bn)(x)
    x = layers.Add(dtype=dtype, name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", dtype=dtype, name=f"{name}_out")(x)
