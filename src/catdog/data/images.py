"""Find images in class folders and decode them to fixed-size RGB arrays with Pillow.

Which files are images (docs/data.md, "Which files are images"): every file below a class folder, in nested
sub-folders too, whose name ends in one of IMAGE_EXTENSIONS; names starting with "." (files and folders) are
hidden and skipped; links are followed (a folder reached twice through links is walked once); dangling links,
other files and files outside a class folder are skipped, with one warning that lists them. Train, evaluate and
predict all list files with `find_images`.

Decoding (`load_image`) gives what an image viewer shows: the first frame, turned upright by its EXIF
orientation, converted to sRGB by its embedded ICC profile, transparency composited over white, and 16-bit,
32-bit and float samples scaled to 0-255.
"""

import functools
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps

from catdog.errors import CatdogError
from catdog.utils.io import printable

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without LittleCMS: embedded profiles are ignored
    ImageCms = None

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
WHITE = (255, 255, 255)
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that turn the stored image by 90 degrees
_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_ALPHA = ("RGBA", "LA", "PA")


def find_images(folder, stats=None) -> tuple[list[str], list[str]]:
    """(images, skipped) below `folder`, each sorted: the image files of every visible sub-folder, links
    followed, and the visible entries that are not (other files, dangling links, unreadable folders).
    `stats`, a dict, receives each image's `os.stat_result`: the one stat of the file that setup makes."""
    images, skipped, seen, stats = [], [], set(), {} if stats is None else stats

    def walk(directory: Path):
        st = directory.stat()
        if (st.st_dev, st.st_ino) in seen:  # a link back to a folder already walked
            return
        seen.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(directory) as found:  # the entries' types come with the listing, without a stat
                entries = sorted((e for e in found if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError:
            skipped.append(directory)
            return
        for entry in entries:
            path = directory / entry.name
            try:
                if entry.is_dir():
                    walk(path)
                    continue
                if Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS and entry.is_file():
                    stats[str(path)] = entry.stat()
                    images.append(path)
                    continue
            except OSError:  # gone, or unreadable, since the listing
                pass
            skipped.append(path)

    walk(Path(folder))
    return [str(p) for p in sorted(images)], [str(p) for p in sorted(skipped)]


def warn_skipped(skipped, shown=10) -> None:
    """One warning naming (up to `shown` of) the files that listing skipped."""
    if skipped:
        more = f" and {len(skipped) - shown} more" if len(skipped) > shown else ""
        log.warning("Skipped %d file(s) that are not images (other files, dangling links, files outside a class "
                    "folder): %s%s", len(skipped), ", ".join(printable(p) for p in skipped[:shown]), more)


@dataclass
class ImageFolder:
    """Files of one split: paths, integer labels and the class names they index."""

    paths: list[str]
    labels: np.ndarray
    class_names: list[str]
    stats: list[os.stat_result] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index) -> "ImageFolder":
        return ImageFolder([self.paths[i] for i in index], self.labels[index], self.class_names,
                           None if self.stats is None else [self.stats[i] for i in index])

    def file_stats(self) -> list[os.stat_result]:
        """Each file's stat (links followed), taken once: by the listing, or here on first use."""
        if self.stats is None:
            self.stats = [os.stat(p) for p in self.paths]
        return self.stats


def list_image_folder(directory, class_names=None) -> ImageFolder:
    """List `directory/<class>/.../<image>` by the rule of `find_images`: a class is a visible sub-folder (or a
    link to one), named anything the filesystem allows; its images are all those below it. Classes are the
    sorted folder names unless given."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CatdogError(f"Image folder {directory} does not exist or is not a directory.")
    entries = sorted(e for e in directory.iterdir() if not e.name.startswith("."))
    found = [e.name for e in entries if e.is_dir()]
    skipped = [str(e) for e in entries if not e.is_dir()]
    classes = list(class_names) if class_names is not None else found
    for name in classes:  # class names are data, never paths out of `directory`
        if (not isinstance(name, str) or name in ("", ".", "..") or "\0" in name or os.sep in name
                or (os.altsep and os.altsep in name)):
            raise CatdogError(f"Class name {name!r} is not a folder name inside {directory}; class names are data, "
                              "never paths.")
    if class_names is None and len(classes) < 2:
        raise CatdogError(
            f"{directory} has {len(classes)} class folder(s) ({', '.join(map(repr, classes)) or 'none'}); "
            "a classifier needs at least two sub-folders, one per class, each holding images."
        )
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise CatdogError(f"{directory} has class folders {unknown} that are not among the classes {classes}.")
    paths, labels, stats = [], [], {}
    for label, name in enumerate(classes):
        class_dir = directory / name
        images, ignored = find_images(class_dir, stats) if class_dir.is_dir() else ([], [])
        skipped += ignored
        if not images and class_names is None:
            raise CatdogError(f"Class folder {printable(str(class_dir))} holds no images (looked for "
                              f"{', '.join(sorted(IMAGE_EXTENSIONS))}, in its sub-folders too).")
        paths += images
        labels += [label] * len(images)
    warn_skipped(skipped)
    return ImageFolder(paths, np.asarray(labels, dtype="int32"), classes, [stats[p] for p in paths])


def load_image(path, image_size, max_pixels=Image.MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode one file's first frame to an sRGB uint8 array of `image_size` (height, width), as a viewer shows
    it (see the module's docstring); bilinear, no crop."""
    height, width = image_size
    with Image.open(path) as img:
        if max_pixels and img.width * img.height > max_pixels:
            raise ValueError(
                f"{img.width}x{img.height} pixels exceeds the {max_pixels}-pixel guard against decompression bombs"
            )
        turned = img.getexif().get(ExifTags.Base.Orientation) in _SWAPS_AXES
        img.draft("RGB", (height, width) if turned else (width, height))  # JPEG: decode at a reduced scale
        ImageOps.exif_transpose(img, in_place=True)
        return np.asarray(to_rgb(img).resize((width, height), Image.BILINEAR), dtype=np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """`img` in RGB (sRGB where it embeds an ICC profile), transparent pixels over white."""
    if img.mode in _HIGH_DEPTH:
        img = _to_8bit(img)
    alpha = img.mode in _ALPHA or img.info.get("transparency") is not None
    if alpha or img.mode in ("P", "1"):
        img = img.convert("RGBA" if alpha else "RGB")
    profile = img.info.get("icc_profile")
    if img.mode == "LAB" or profile:
        transform = _to_srgb(profile if img.mode != "LAB" else None, img.mode, "RGBA" if alpha else "RGB")
        if transform is not None:
            img = ImageCms.applyTransform(img, transform)
    if alpha:
        background = Image.new("RGB", img.size, WHITE)
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img if img.mode == "RGB" else img.convert("RGB")


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float samples as "L" (or "LA" where a value is transparent): "I;16" and
    values in 0..65535 divided by 257, floats in 0..1 times 255, any other range stretched from min to max."""
    values = np.asarray(img).astype(np.float64)
    finite = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if img.mode == "F" and 0 <= low and high <= 1:
        scaled = finite * 255
    elif img.mode.startswith("I;16") or (0 <= low and high <= 65535 and img.mode != "F"):
        scaled = finite / 257
    else:
        scaled = (finite - low) * (255 / (high - low)) if high > low else np.zeros_like(finite)
    gray = Image.fromarray(np.round(scaled).clip(0, 255).astype(np.uint8), "L")
    transparent = img.info.get("transparency")
    if isinstance(transparent, (int, float)):
        gray.putalpha(Image.fromarray(np.where(values == transparent, 0, 255).astype(np.uint8), "L"))
    elif img.info.get("icc_profile"):
        gray.info["icc_profile"] = img.info["icc_profile"]
    return gray


@functools.lru_cache(maxsize=16)
def _to_srgb(profile: bytes | None, mode: str, out_mode: str):
    """A cached LittleCMS transform from an embedded profile (None: CIE L*a*b*) to sRGB, or None (with one
    warning per profile) when it cannot be built or Pillow has no LittleCMS: the pixels are then taken as they
    are."""
    if ImageCms is None:
        log.warning("Pillow has no LittleCMS (PIL.ImageCms): an embedded ICC profile is ignored for %s images.", mode)
        return None
    try:
        source = ImageCms.createProfile("LAB") if profile is None else ImageCms.ImageCmsProfile(io.BytesIO(profile))
        return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), mode, out_mode)
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError) as exc:
        log.warning("Ignoring an embedded ICC profile that does not convert %s to sRGB (%s).", mode, exc)
        return None


def is_transient(exc: BaseException) -> bool:
    """An error of the moment (memory, permissions, I/O), not of the file's content: never cached as unreadable.
    Pillow reports a bad file with its own types, or with an OSError that carries no errno."""
    return isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno is not None)
