"""Find images in class folders and decode them to fixed-size RGB arrays with Pillow."""

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from catdog.errors import CatdogError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def is_image_file(path: Path) -> bool:
    """A visible file with one of IMAGE_EXTENSIONS."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


@dataclass
class ImageFolder:
    """Files of one split: paths, integer labels and the class names they index."""

    paths: list[str]
    labels: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index) -> "ImageFolder":
        return ImageFolder([self.paths[i] for i in index], self.labels[index], self.class_names)


def list_image_folder(directory, class_names=None) -> ImageFolder:
    """List `directory/<class>/<image>`; classes are the sorted sub-folder names unless given."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CatdogError(f"Image folder {directory} does not exist or is not a directory.")
    found = sorted(d.name for d in directory.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = list(class_names) if class_names is not None else found
    for name in classes:  # class names are data, never paths out of `directory`
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise CatdogError(f"Class name {name!r} is not a folder name inside {directory}; class names are data, "
                              "never paths.")
    if class_names is None and len(classes) < 2:
        raise CatdogError(
            f"{directory} has {len(classes)} class folder(s) ({', '.join(classes) or 'none'}); "
            "a classifier needs at least two sub-folders, one per class, each holding images."
        )
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise CatdogError(f"{directory} has class folders {unknown} that are not among the classes {classes}.")
    paths, labels, ignored = [], [], []
    for label, name in enumerate(classes):
        class_dir = directory / name
        files = sorted(class_dir.iterdir()) if class_dir.is_dir() else []
        images = [f for f in files if is_image_file(f)]
        ignored += [str(f) for f in files if f.is_file() and f not in images]
        if not images and class_names is None:
            raise CatdogError(
                f"Class folder {class_dir} holds no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})."
            )
        paths += [str(f) for f in images]
        labels += [label] * len(images)
    if ignored:
        log.warning("Ignored %d file(s) that are not images: %s", len(ignored), ", ".join(ignored[:10]))
    return ImageFolder(paths, np.asarray(labels, dtype="int32"), classes)


def load_image(path, image_size, max_pixels=Image.MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode one file to an RGB uint8 array of `image_size` (height, width); bilinear, no crop."""
    height, width = image_size
    with Image.open(path) as img:
        if max_pixels and img.width * img.height > max_pixels:
            raise ValueError(
                f"{img.width}x{img.height} pixels exceeds the {max_pixels}-pixel guard against decompression bombs"
            )
        img.draft("RGB", (width, height))  # JPEG: decode at a reduced scale when that still covers the size
        img = img.convert("RGB").resize((width, height), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def is_transient(exc: BaseException) -> bool:
    """An error of the moment (memory, permissions, I/O), not of the file's content: never cached as unreadable.
    Pillow reports a bad file with its own types, or with an OSError that carries no errno."""
    return isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno is not None)


def decode_images(paths, image_size, max_pixels=Image.MAX_IMAGE_PIXELS, workers=None, transient=None):
    """Decode every file once; returns (uint8 array of the good ones, their indices, {path: error}).

    `transient`, a set, receives the paths whose failure `is_transient`.

    `max_pixels` (0 or None: no limit) replaces Pillow's own guard while decoding, which refuses twice
    Pillow's limit before `load_image` could allow more; Pillow's setting is restored afterwards."""

    def one(path):
        try:
            return load_image(path, image_size, max_pixels), None
        except Exception as exc:  # Pillow raises many types for bad files
            if transient is not None and is_transient(exc):
                transient.add(path)
            return None, f"{type(exc).__name__}: {exc}"

    pillows_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
            results = list(pool.map(one, paths))
    finally:
        Image.MAX_IMAGE_PIXELS = pillows_limit
    good = [i for i, (img, _) in enumerate(results) if img is not None]
    bad = {paths[i]: err for i, (_, err) in enumerate(results) if err is not None}
    images = np.stack([results[i][0] for i in good]) if good else np.zeros((0, *image_size, 3), np.uint8)
    return images, np.asarray(good, dtype=np.int64), bad
