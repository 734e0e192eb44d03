"""A data module over a list of image files: the test split of `catdog.evaluate`, the images of
`catdog.predict`, built from a checkpoint's own input size and class names."""

import copy
import logging

import numpy as np

from catdog.data.base import DataModule
from catdog.data.cache import cached_decode
from catdog.data.images import ImageFolder
from catdog.data.layouts import UNREADABLE
from catdog.data.loaders import array_loader
from catdog.errors import CatdogError, first_few
from catdog.utils.io import printable

log = logging.getLogger(__name__)


class ImageFilesDataModule(DataModule):
    """`folder`'s files (an `ImageFolder`: paths, labels in the model's class order, its class names) as the test
    split and as the images to predict, decoded to `image_size` (the model's input) once, into `cache_dir` when
    given. Unreadable files are skipped with a warning (`strict`: an error) and listed in `skipped`."""

    def __init__(self, folder: ImageFolder, image_size, batch_size=32, max_image_pixels=89478485, cache_dir=None,
                 strict=False, loader="numpy"):
        self.folder, self.class_names = folder, list(folder.class_names)
        self.image_size, self.batch_size = tuple(image_size), batch_size
        self.max_image_pixels, self.cache_dir, self.strict, self.loader = max_image_pixels, cache_dir, strict, loader
        self.images = self.labels = self.good = None
        self.skipped: dict[str, str] = {}
        self.augment = None  # a function of a batch: test-time augmentation's view (`flipped`)

    def setup(self, stage=None) -> None:
        if self.images is not None:
            return
        images, good, bad = cached_decode(self.folder.paths, self.image_size, self.max_image_pixels, self.cache_dir,
                                          self.folder.stats)
        if bad:
            named = [f"{printable(p)} ({printable(e)})" for p, e in bad.items()]
            if self.strict:
                raise CatdogError(f"{len(bad)} image(s) cannot be read (strict=true): {first_few(named, UNREADABLE)}",
                                  {UNREADABLE: named})
            log.warning("Skipping %d unreadable image(s): %s", len(bad), first_few(named, "the outputs' JSON"))
        self.images, self.labels, self.good, self.skipped = images, self.folder.labels[good], good, bad

    @property
    def paths(self) -> list[str]:
        """The readable files, in the order of the predictions."""
        self.setup()
        return [self.folder.paths[i] for i in self.good]

    def sizes(self) -> dict[str, int]:
        return {"test": len(self.folder)}

    def num_images(self, split="test") -> int:
        self.setup()
        return len(self.labels)

    def _loader(self, limit_batches=None):
        self.setup()
        return array_loader(self.images, np.asarray(self.labels, "int32"), self.batch_size, loader=self.loader,
                            limit_batches=limit_batches, augment=self.augment)

    def flipped(self) -> "ImageFilesDataModule":
        """The same images (decoded once), mirrored left to right."""
        from catdog.data.augment import flip_horizontally

        self.setup()
        view = copy.copy(self)
        view.augment = flip_horizontally
        return view

    def test_dataloader(self, limit_batches=None):
        return self._loader(limit_batches)

    def predict_dataloader(self):
        return self._loader()

    def describe(self) -> dict:
        return {"class_names": self.class_names, "num_images": {"test": self.num_images()},
                "skipped_images": self.skipped}


def labelled_files(data_dir=None, manifest=None, split="test", class_names=None) -> ImageFolder:
    """The files to evaluate, labelled in the model's class order (`class_names`, when it has them): class
    folders under `data_dir` (listed as training lists them), or the rows of `split` in `manifest`."""
    from catdog.data.images import list_image_folder
    from catdog.data.layouts import MANIFEST_SPLITS, read_manifest

    if not manifest:
        if not data_dir:
            raise CatdogError("Give data_dir=DIR (one sub-folder per class) or manifest=FILE.csv [split=test].")
        return list_image_folder(data_dir, class_names=class_names)
    if split not in MANIFEST_SPLITS:
        raise CatdogError(f"split={split!r}: must be train, validation or test.")
    folder = read_manifest(manifest)[MANIFEST_SPLITS[split]]
    if not len(folder):
        raise CatdogError(f"manifest={manifest} has no {split} rows.")
    if class_names is None:
        return folder
    unknown = sorted(set(folder.class_names) - set(class_names))
    if unknown:
        raise CatdogError(f"manifest={manifest} has labels {list(map(printable, unknown))} that the model does "
                          f"not predict ({', '.join(map(printable, class_names))}).")
    order = np.asarray([class_names.index(name) for name in folder.class_names], dtype="int32")
    return ImageFolder(folder.paths, order[folder.labels], list(class_names))


def image_files(images) -> list[str]:
    """The files of `images`: a file, a folder (searched as training searches class folders: sub-folders too,
    hidden names and non-images skipped), a glob pattern, or a list of these; each file once, in order."""
    import glob
    from pathlib import Path

    from catdog.data.images import find_images, warn_skipped

    entries = [images] if isinstance(images, (str, Path)) else list(images)
    files, missing = [], []
    for entry in entries:
        path = Path(str(entry)).expanduser()
        if path.is_file():
            files.append(str(path))
        elif path.is_dir():
            found, skipped = find_images(path)
            warn_skipped(skipped)
            files += found
        elif glob.has_magic(str(path)) and glob.glob(str(path), recursive=True):
            files += sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        else:
            missing.append(printable(path))
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CatdogError(f"images: {', '.join(missing[:5])}{more}"
                          f" {'is' if len(missing) == 1 else 'are'} no file, folder or matching pattern.")
    if not files:
        raise CatdogError(f"images={printable(images if isinstance(images, (str, Path)) else list(entries))} holds "
                          "no image files.")
    return list(dict.fromkeys(files))
