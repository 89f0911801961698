"""Directories (or lists) of image files: scanning, class labels from sub-folders, skipping
and counting the files that cannot be read.

Example:
```python
folder = scan_image_folder("/data/pets")  # pets/cat/*.jpg, pets/dog/*.png
folder.class_names, len(folder.files), len(folder.skipped)
dataset = pretraining_dataset(folder, batch_size=256)
files = scan_image_files(["/data/a.jpg", "/data/b.png"])  # a flat folder of these files
```
"""

import dataclasses
import io
import logging
import os
import posixpath
import sys
import zlib

import tensorflow as tf

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# Image files that are not read (TensorFlow before 2.18 decodes none of them, and none
# decodes on every TensorFlow): skipped and counted, never silently ignored.
UNSUPPORTED_IMAGE_EXTENSIONS = (".webp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".jxl", ".jp2")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
VALIDATION_MODES = ("header", "decode", "none")


@dataclasses.dataclass
class ImageFolder:
    """A scanned directory of images (see `scan_image_folder`); also accepted as a source.

    Attributes:
        directory: the scanned directory (for a list of files: their common parent).
        files, labels: usable image files and their class indices (-1 for a flat folder).
        class_names: sorted sub-folder names (empty for a flat folder).
        skipped: `(path, reason)` for every file left out: unreadable, empty, truncated or
            corrupt files, images in an unsupported format (`.webp`, `.tif`, …), and files
            outside the class sub-folders.
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


def _unsupported_reason(path):
    extension = os.path.splitext(path)[1].lower()
    return (
        f"unsupported image format {extension}: only JPEG, PNG, GIF and BMP files are read; convert it, "
        "e.g. with Pillow: Image.open(path).convert('RGB').save(new_path_ending_in_jpg)"
    )


def _images_under(root):
    """(image files, files of an unsupported image format) below `root`, recursively."""
    found, unsupported = [], []
    for path, _, names in tf.io.gfile.walk(root):
        for name in names:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(path, name))
            elif name.lower().endswith(UNSUPPORTED_IMAGE_EXTENSIONS):
                unsupported.append(os.path.join(path, name))
    return sorted(found), sorted(unsupported)


def check_not_a_url(source):
    """Refuses an `http(s)://` or `ftp://` URL given as image files: nothing is downloaded.

    Other `tf.io.gfile` schemes (`gs://`, `s3://`, …) are read in place and pass.
    """
    source = os.fspath(source)
    if source.lower().startswith(("http://", "https://", "ftp://")):
        raise ValueError(
            f"{source!r} is a URL, and image sources are not downloaded: download it and unpack it into "
            "a local folder (e.g. keras.utils.get_file(origin=url, extract=True)), then pass that folder; "
            "or pass a TFDS dataset name with data_dir= where it is prepared; files in a bucket are read "
            "in place (gs://bucket/folder)"
        )


def scan_image_folder(directory, *, validate="header"):
    """Lists the images of a directory, with labels from class sub-folders.

    With sub-folders, each first-level sub-folder is a class (images found recursively
    below it); files directly in `directory` are then skipped. Without, all image files of
    `directory` are used, with label -1. Files with other extensions are not images and
    not listed, except images in a format that is not read (`.webp`, `.tif`, `.heic`,
    `.avif`, …): those are skipped and counted.

    Args:
        directory: a local path or any `tf.io.gfile` URL (`gs://...`); not `http(s)://`.
        validate: `"header"` (default: reads the first 33 and the last 12 bytes of each
            file; skips empty files, files that are not JPEG/PNG/GIF/BMP, and truncated
            files: those without their end marker that also fail to decode), `"decode"`
            (decodes every file: ~10× slower, but also catches corrupt image data that a
            complete file can hold), or `"none"`. Files that pass and still fail to decode
            are skipped by the pipelines when read, and counted in a warning at the end of
            each pass over the data.

    Returns:
        An `ImageFolder`; `len(folder.skipped)` counts the files left out.
    """
    _check_validate(validate)
    check_not_a_url(directory)
    directory = os.fspath(directory)
    if not tf.io.gfile.isdir(directory):
        raise ValueError(f"image directory {directory!r} does not exist or is not a directory")

    entries = sorted(tf.io.gfile.listdir(directory))
    subdirs = [e.rstrip("/") for e in entries if tf.io.gfile.isdir(os.path.join(directory, e))]
    classes, unsupported = [], []
    for name in subdirs:
        found, other = _images_under(os.path.join(directory, name))
        unsupported += other
        if found:
            classes.append((name, found))
    files = [os.path.join(directory, e) for e in entries if e.rstrip("/") not in subdirs]
    loose = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    unsupported = sorted(unsupported + [f for f in files if f.lower().endswith(UNSUPPORTED_IMAGE_EXTENSIONS)])
    skipped = [(f, _unsupported_reason(f)) for f in unsupported]
    if classes:
        candidates = [(f, i) for i, (_, found) in enumerate(classes) for f in found]
        skipped += [(f, "outside the class sub-folders") for f in loose]
        class_names = [name for name, _ in classes]
    else:
        candidates = [(f, -1) for f in loose]
        class_names = []
    return _checked_folder(directory, candidates, class_names, skipped, validate)


def scan_image_files(paths, *, validate="header"):
    """A list of image files as a flat `ImageFolder` (label -1), checked like a folder's.

    Args:
        paths: image file paths (local or `tf.io.gfile` URLs such as `gs://...`), used in
            this order; files that are missing, not JPEG/PNG/GIF/BMP, truncated or corrupt
            are skipped and counted in `skipped`.
        validate: as in `scan_image_folder`.

    Returns:
        An `ImageFolder` without classes; its `directory` is the files' common parent.

    Example:
    ```python
    folder = scan_image_files(sorted(glob.glob("/data/photos/*.jpg")))
    dataset = pretraining_dataset(folder, batch_size=256)  # or pass the list itself
    ```
    """
    _check_validate(validate)
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("got an empty list of image files")
    for path in paths:
        check_not_a_url(path)
    skipped, candidates = [], []
    for path in paths:
        if path.lower().endswith(UNSUPPORTED_IMAGE_EXTENSIONS):
            skipped.append((path, _unsupported_reason(path)))
        elif tf.io.gfile.isdir(path):
            skipped.append(
                (path, "a directory: pass a directory alone as the source, not in a list of files")
            )
        else:
            candidates.append((path, -1))
    return _checked_folder(_common_parent(paths), candidates, [], skipped, validate, what="the list of files")


def _common_parent(paths):
    """The deepest folder holding all `paths` (`scheme://…` for URLs of one scheme), else ""."""
    split = [p.split("://", 1) if "://" in p else ["", p] for p in paths]
    schemes = {scheme for scheme, _ in split}
    if len(schemes) != 1:
        return ""
    scheme = schemes.pop()
    try:
        if scheme:
            return f"{scheme}://" + posixpath.commonpath([posixpath.dirname(rest) for _, rest in split])
        return os.path.commonpath([os.path.dirname(rest) for _, rest in split])
    except ValueError:  # absolute and relative paths mixed
        return ""


def _check_validate(validate):
    if validate not in VALIDATION_MODES:
        raise ValueError(f"validate must be 'header', 'decode' or 'none', got {validate!r}")


def _checked_folder(directory, candidates, class_names, skipped, validate, what=None):
    """The `ImageFolder` of the `(path, label)` candidates that pass `_check_file`; warns
    about all skipped files, and raises when none is left."""
    what = what or repr(directory)
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
        more = " …" if len(skipped) > 5 else ""
        total = len(files) + len(skipped)
        logger.warning("%s: skipped %d of %d files: %s%s", what, len(skipped), total, shown, more)
    if not files:
        found = f"; skipped {len(skipped)} files, e.g. {skipped[0][0]} ({skipped[0][1]})" if skipped else ""
        raise ValueError(f"no readable images ({', '.join(IMAGE_EXTENSIONS)}) found in {what}{found}")
    return ImageFolder(directory, files, labels, class_names, skipped)


def _end_marker(spec):
    """A placeholder element of structure `spec` (dense tensors; unknown sizes as 0)."""
    return tf.nest.map_structure(lambda s: tf.zeros([d or 0 for d in s.shape], s.dtype), spec)


def _dense(spec):
    return all(isinstance(s, tf.TensorSpec) and s.shape.rank is not None for s in tf.nest.flatten(spec))


def _with_end_marker(dataset):
    """`(element, False)` for each element of `dataset`, then one `(placeholder, True)`."""
    marked = tf.data.Dataset.zip(dataset, tf.data.Dataset.from_tensors(False).repeat())
    return marked.concatenate(tf.data.Dataset.from_tensors((_end_marker(dataset.element_spec), True)))


def skip_undecodable(dataset, *, expected, at_least=1, batch=None, scan_skipped=0):
    """`dataset.ignore_errors()` that counts, at the end of each pass, the elements dropped.

    Each pass over the result ends with a warning on stderr when files failed to decode
    (how many of how many, and how to find them), and with an error, instead of a short or
    empty pass, when fewer than `at_least` elements are left. A pass that comes out short
    once comes out short every time, so training would otherwise stop or, refilling
    epochs, never end. Costs a few tf.data steps per element: for the elements of a
    single pass (e.g. decoded into a cache); `skip_undecodable_batches` counts per batch.

    Args:
        dataset: one pass over a source's files, mapped by a function that decodes them.
        expected: elements of one pass before decoding (None when unknown: no count).
        at_least: fewest elements a usable pass has (a batch of `batch` when only full
            batches are used).
        batch: the batch size, for the error message.
        scan_skipped: files the folder scan already left out, for the error message.

    Returns:
        The decodable elements, in order.
    """
    dataset = dataset.ignore_errors(log_warning=True)
    if expected is None or not _dense(dataset.element_spec):
        return dataset
    report = _pass_report(expected, at_least, batch, scan_skipped)

    @tf.autograph.experimental.do_not_convert
    def keep(count, element):  # `count`: the decoded elements before this one
        _, is_end = element
        checked = tf.cond(is_end, lambda: report(count), lambda: tf.constant(True))
        with tf.control_dependencies([checked]):
            return tf.logical_not(is_end)

    marked = _with_end_marker(dataset).enumerate()
    return marked.filter(keep).map(
        tf.autograph.experimental.do_not_convert(lambda count, element: element[0])
    )


def skip_undecodable_batches(dataset, *, batch_size, drop_remainder, expected, at_least=1, scan_skipped=0):
    """`dataset.ignore_errors().batch(batch_size, drop_remainder)`, counting the elements
    dropped at the end of each pass (see `skip_undecodable`) at the cost of a few steps per
    batch, not per element: the same batches, with the same static shapes.

    Args:
        dataset: one pass over a source's files, mapped by a function that decodes them.
        batch_size, drop_remainder: as in `tf.data.Dataset.batch`.
        expected, at_least, scan_skipped: as in `skip_undecodable`.

    Returns:
        The batches of the decodable elements, in order.
    """
    dataset = dataset.ignore_errors(log_warning=True)
    batches = dataset.batch(batch_size, drop_remainder=False)
    if expected is None or not _dense(batches.element_spec):
        return dataset.batch(batch_size, drop_remainder=drop_remainder)
    report = _pass_report(expected, at_least, batch_size, scan_skipped)

    def size(value):
        return tf.shape(tf.nest.flatten(value)[0], out_type=tf.int64)[0]

    @tf.autograph.experimental.do_not_convert
    def count_and_check(count, value):  # `count`: the decoded elements before this batch
        checked = tf.cond(size(value) == 0, lambda: report(count), lambda: tf.constant(True))
        with tf.control_dependencies([checked]):
            return count + size(value), tf.nest.map_structure(tf.identity, value)

    # The pass ends with an empty batch: the marker at which the count is checked.
    marked = batches.concatenate(tf.data.Dataset.from_tensors(_end_marker(batches.element_spec)))
    counted = marked.scan(tf.constant(0, tf.int64), count_and_check)
    unpacked = isinstance(batches.element_spec, tuple)  # tf.data passes a tuple's items as arguments

    @tf.autograph.experimental.do_not_convert
    def keep(*args):
        batch = size(args if unpacked else args[0])
        return batch == batch_size if drop_remainder else batch > 0

    @tf.autograph.experimental.do_not_convert
    def static_shape(*args):
        value = args if unpacked else args[0]
        return tf.nest.map_structure(lambda t: tf.ensure_shape(t, [batch_size, *t.shape[1:]]), value)

    kept = counted.filter(keep)
    return kept.map(static_shape) if drop_remainder else kept


def _pass_report(expected, at_least, batch, scan_skipped):
    """`count -> True`, run at the end of a pass of `count` decoded elements: warns when
    files were dropped, raises when fewer than `at_least` are left."""
    # No quotes: the error message of `tf.debugging.Assert` escapes them.
    find = "scan_image_folder (or scan_image_files) with validate set to decode lists them"
    scanned = f" (the folder scan skipped {scan_skipped} more files: see ImageFolder.skipped)" * bool(
        scan_skipped
    )
    full_batches = batch is not None and at_least == batch
    need = f"one batch of {batch}" if full_batches else str(at_least)
    lower = ", or lower batch_size" if full_batches else ""

    def report(count):
        dropped = expected - count
        warning = tf.strings.format(
            "keras_barlow: {} of {} image files failed to decode in this pass over the data and were "
            f"skipped (corrupt image data); {find}: remove or replace them",
            (dropped, expected),
        )
        warned = tf.cond(dropped > 0, lambda: _printed(warning), lambda: tf.constant(True))
        error = tf.strings.format(
            "only {} of {} image files decode ({} failed: corrupt image "
            f"data){scanned}, fewer than {need}: every pass over the data would come out short. {find}: "
            f"remove or replace them, add images{lower}",
            (count, expected, dropped),
        )
        with tf.control_dependencies([warned]):
            checked = tf.debugging.Assert(count >= at_least, [error], summarize=1)
        with tf.control_dependencies([checked]):
            return tf.constant(True)

    return report


def _printed(message):
    with tf.control_dependencies([tf.print(message, output_stream=sys.stderr)]):
        return tf.constant(True)
