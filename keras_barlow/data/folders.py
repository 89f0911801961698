"""Directories of image files: scanning, class labels from sub-folders, skipping non-images.

Example:
```python
folder = scan_image_folder("/data/pets")  # pets/cat/*.jpg, pets/dog/*.png
folder.class_names, len(folder.files), len(folder.skipped)
dataset = pretraining_dataset(folder, batch_size=256)
```
"""

import dataclasses
import logging
import os

import tensorflow as tf

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
VALIDATION_MODES = ("header", "decode", "none")


@dataclasses.dataclass
class ImageFolder:
    """A scanned directory of images (see `scan_image_folder`); also accepted as a source.

    Attributes:
        directory: the scanned directory.
        files, labels: usable image files and their class indices (-1 for a flat folder).
        class_names: sorted sub-folder names (empty for a flat folder).
        skipped: `(path, reason)` for every file left out.
    """

    directory: str
    files: list
    labels: list
    class_names: list
    skipped: list


def _check_file(path, validate):
    """Why the file at `path` is unusable, or None when it is usable."""
    if validate == "none":
        return None
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            head = f.read(8) if validate == "header" else f.read()
    except (OSError, tf.errors.OpError) as error:
        return f"unreadable: {error}"
    if not head:
        return "empty file"
    if not head.startswith(_MAGIC):
        return "not a JPEG, PNG, GIF or BMP file"
    if validate == "decode":
        try:
            tf.io.decode_image(head, channels=3, expand_animations=False)
        except tf.errors.OpError as error:
            return f"does not decode: {error.message.splitlines()[0]}"
    return None


def _images_under(root):
    found = []
    for path, _, names in tf.io.gfile.walk(root):
        found += [os.path.join(path, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def scan_image_folder(directory, *, validate="header"):
    """Lists the images of a directory, with labels from class sub-folders.

    With sub-folders, each first-level sub-folder is a class (images found recursively
    below it); files directly in `directory` are then skipped. Without, all image files of
    `directory` are used, with label -1.

    Args:
        directory: a local path or any `tf.io.gfile` URL (`gs://...`).
        validate: `"header"` (default: reads 8 bytes per file and skips empty files and
            files that are not JPEG/PNG/GIF/BMP), `"decode"` (decodes every file: slow, but
            also catches truncated images), or `"none"`.

    Returns:
        An `ImageFolder`; `len(folder.skipped)` counts the files left out.
    """
    if validate not in VALIDATION_MODES:
        raise ValueError(f"validate must be 'header', 'decode' or 'none', got {validate!r}")
    directory = os.fspath(directory)
    if not tf.io.gfile.isdir(directory):
        raise ValueError(f"image directory {directory!r} does not exist or is not a directory")

    entries = sorted(tf.io.gfile.listdir(directory))
    subdirs = [e.rstrip("/") for e in entries if tf.io.gfile.isdir(os.path.join(directory, e))]
    classes = [(name, _images_under(os.path.join(directory, name))) for name in subdirs]
    classes = [(name, files) for name, files in classes if files]
    loose = sorted(
        os.path.join(directory, e)
        for e in entries
        if e.lower().endswith(IMAGE_EXTENSIONS) and not tf.io.gfile.isdir(os.path.join(directory, e))
    )
    skipped = []
    if classes:
        candidates = [(f, i) for i, (_, files) in enumerate(classes) for f in files]
        skipped += [(f, "outside the class sub-folders") for f in loose]
        class_names = [name for name, _ in classes]
    else:
        candidates = [(f, -1) for f in loose]
        class_names = []
    files, labels = [], []
    for path, label in candidates:
        reason = _check_file(path, validate)
        if reason is None:
            files.append(path)
            labels.append(label)
        else:
            skipped.append((path, reason))
    if skipped:
        shown = "; ".join(f"{p} ({r})" for p, r in skipped[:5])
        total = len(candidates) + len(loose) * bool(classes)
        more = " …" if len(skipped) > 5 else ""
        logger.warning("%s: skipped %d of %d files: %s%s", directory, len(skipped), total, shown, more)
    if not files:
        raise ValueError(f"no readable images ({', '.join(IMAGE_EXTENSIONS)}) found in {directory!r}")
    return ImageFolder(directory, files, labels, class_names, skipped)
