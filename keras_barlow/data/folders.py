"""Directories of image files: scanning, class labels from sub-folders, skipping non-images.

Example:
```python
folder = scan_image_folder("/data/pets")  # pets/cat/*.jpg, pets/dog/*.png
folder.class_names, len(folder.files), len(folder.skipped)
dataset = pretraining_dataset(folder, batch_size=256)
```
"""

import dataclasses
import io
import logging
import os
import zlib

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


PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the empty IEND chunk every PNG ends with
HEAD_BYTES = 33  # PNG signature + IHDR chunk (its CRC is checked); enough for every other magic
TAIL_BYTES = len(PNG_END)


def _looks_complete(head, tail, size):
    """Whether a file's last bytes hold its format's end marker (BMP: its declared size).

    False means "maybe truncated": also files with data after the end marker, which
    decode fine, so a False is confirmed by decoding before the file is skipped.
    """
    if head.startswith(b"\x89PNG"):
        return tail.endswith(PNG_END)
    if head.startswith(b"\xff\xd8\xff"):
        return tail.endswith(b"\xff\xd9")
    if head.startswith(b"GIF"):
        return tail.endswith(b";")
    return len(head) >= 6 and int.from_bytes(head[2:6], "little") <= size  # BMP


def _png_header_is_intact(head):
    """False when a PNG's IHDR chunk (image size, depth) fails its CRC; True for the rest."""
    if not head.startswith(b"\x89PNG") or len(head) < HEAD_BYTES:
        return True  # a shorter PNG is truncated: its tail tells
    return zlib.crc32(head[12:29]) == int.from_bytes(head[29:33], "big")


def _open(path):
    """Local files with Python's `open` (twice as fast as `GFile` for two short reads), others
    (`gs://`, …) with `tf.io.gfile`."""
    return tf.io.gfile.GFile(path, "rb") if "://" in path else open(path, "rb")


def _decode_error(content):
    try:
        tf.io.decode_image(content, channels=3, expand_animations=False)
    except tf.errors.OpError as error:
        return error.message.splitlines()[0]
    return None


def _check_file(path, validate):
    """Why the file at `path` is unusable, or None when it is usable.

    `"header"` reads the first and the last few bytes: a file that ends without its
    format's end marker is decoded to tell a truncated file (skipped) from one with
    trailing data (kept), so only those rare files cost a decode.
    """
    if validate == "none":
        return None
    try:
        with _open(path) as f:
            if validate == "decode":
                content = f.read()
                head, tail, size = content[:HEAD_BYTES], content[-TAIL_BYTES:], len(content)
            else:
                head = f.read(HEAD_BYTES)
                size = f.seek(0, os.SEEK_END) if isinstance(f, io.IOBase) else f.size()
                if size > HEAD_BYTES + TAIL_BYTES:
                    f.seek(size - TAIL_BYTES)
                    tail = f.read()
                else:
                    tail = (head + f.read())[-TAIL_BYTES:]
                content = None
    except (OSError, tf.errors.OpError) as error:
        return f"unreadable: {error}"
    if not head:
        return "empty file"
    if not head.startswith(_MAGIC):
        return "not a JPEG, PNG, GIF or BMP file"
    if not _png_header_is_intact(head):
        return "corrupt: the PNG header's checksum does not match"
    if validate == "header" and _looks_complete(head, tail, size):
        return None
    if content is None:
        with _open(path) as f:
            content = f.read()
    error = _decode_error(content)
    if error is None:
        return None
    if not _looks_complete(head, tail, size):
        return f"truncated: the file ends before its image data does ({error})"
    return f"corrupt: does not decode ({error})"


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
        validate: `"header"` (default: reads the first 33 and the last 12 bytes of each
            file; skips empty files, files that are not JPEG/PNG/GIF/BMP, and truncated
            files: those without their end marker that also fail to decode), `"decode"`
            (decodes every file: ~10× slower, but also catches corrupt image data that a
            complete file can hold), or `"none"`. Files that pass and still fail to decode
            are skipped by the pipelines when read.

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
