"""Synthetic data sets for tests and smoke runs (nothing is downloaded).

`shapes_dataset` generates coloured squares, circles and triangles with boxes and masks,
a small detection / segmentation data set on which the transfer recipes and tests train.
"""

import numpy as np

SHAPE_CLASSES = ("square", "circle", "triangle")


def shapes_dataset(num_images, *, image_size=64, max_objects=2, size_range=(0.35, 0.6), seed=0):
    """Coloured squares, circles and triangles on noisy backgrounds, with boxes and masks.

    Each image holds 1 to `max_objects` non-overlapping shapes of random colour; the class
    is the shape (0 square, 1 circle, 2 triangle — `SHAPE_CLASSES`), never the colour.

    Args:
        num_images: number of images.
        image_size: height and width in pixels.
        max_objects: most shapes per image (boxes and classes are padded to it).
        size_range: shape side as a fraction of `image_size`, `(low, high)`.
        seed: NumPy seed; the same seed gives the same data.

    Returns:
        dict of NumPy arrays: `images` float32 `(n, s, s, 3)` in [0, 255]; `boxes` float32
        `(n, max_objects, 4)` tight `xywh` pixel boxes, padded with -1; `classes` float32
        `(n, max_objects)`, padded with -1; `masks` int32 `(n, s, s, 1)` with 0 for background
        and `class + 1` for the shapes.

    Example:
    >>> data = shapes_dataset(8, image_size=64)
    >>> data["images"].shape, data["boxes"].shape, int(data["masks"].max()) <= 3
    ((8, 64, 64, 3), (8, 2, 4), True)
    """
    if int(num_images) < 1 or int(max_objects) < 1:
        raise ValueError(f"num_images and max_objects must be positive, got {num_images} and {max_objects}")
    low, high = size_range
    if not 0 < low <= high < 1:
        raise ValueError(f"size_range must satisfy 0 < low <= high < 1, got {size_range}")
    rng = np.random.default_rng(seed)
    s = int(image_size)
    n = int(num_images)
    images = np.empty((n, s, s, 3), np.float32)
    boxes = np.full((n, max_objects, 4), -1.0, np.float32)
    classes = np.full((n, max_objects), -1.0, np.float32)
    masks = np.zeros((n, s, s, 1), np.int32)
    rows, cols = np.mgrid[0:s, 0:s] + 0.5  # pixel centres
    for i in range(n):
        background = rng.uniform(0, 80, size=3)
        images[i] = np.clip(background + rng.normal(0, 12, size=(s, s, 3)), 0, 255)
        placed = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            for _attempt in range(50):
                side = int(rng.integers(int(low * s), int(high * s) + 1))
                top, left = (int(v) for v in rng.integers(0, s - side + 1, size=2))
                box = (top, left, top + side, left + side)
                if all(box[0] >= b[2] or box[2] <= b[0] or box[1] >= b[3] or box[3] <= b[1] for b in placed):
                    break
            else:
                continue
            cls = int(rng.integers(len(SHAPE_CLASSES)))
            shape = _shape_mask(cls, rows, cols, top, left, side)
            if not shape.any():
                continue
            placed.append(box)
            colour = rng.uniform(120, 255, size=3)
            images[i][shape] = colour
            masks[i, ..., 0][shape] = cls + 1
            ys, xs = np.nonzero(shape)
            k = len(placed) - 1
            boxes[i, k] = (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())
            classes[i, k] = cls
    return {"images": images, "boxes": boxes, "classes": classes, "masks": masks}


def _shape_mask(cls, rows, cols, top, left, side):
    inside_box = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    if cls == 0:  # square
        return inside_box
    if cls == 1:  # circle inscribed in the box
        radius = side / 2
        return (rows - top - radius) ** 2 + (cols - left - radius) ** 2 <= radius**2
    # triangle: apex at the top centre, base on the bottom edge
    fraction = (rows - top) / side  # 0 at the apex, 1 at the base
    half_width = fraction * side / 2
    return inside_box & (np.abs(cols - left - side / 2) <= half_width)


def export_tiny_encoder(directory, *, seed=0):
    """Exports a tiny random ResNet-18 (ImageNet stem, width 4) with ImageNet normalisation.

    Transfer tests and smoke runs use it as a stand-in for a pretrained encoder.

    Args:
        directory: the export directory to write.
        seed: `keras.utils.set_random_seed` seed of the weights.

    Returns:
        `directory`, as a string.
    """
    import keras

    from keras_barlow.backbones import resnet
    from keras_barlow.export import export_encoder

    keras.utils.set_random_seed(seed)
    directory = str(directory)
    export_encoder(
        resnet(18, (None, None, 3), width=4),
        directory,
        metadata={"image_size": 64, "augmentation": "imagenet"},
    )
    return directory
