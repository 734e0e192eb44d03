"""The data module: one place that turns an image folder into train, validation and test pipelines."""

import logging
import math
from pathlib import Path

import numpy as np

from catdog.data.cache import cached_decode
from catdog.data.download import download_dataset
from catdog.data.images import ImageFolder, list_image_folder
from catdog.data.loaders import array_loader
from catdog.errors import CatdogError

log = logging.getLogger(__name__)


class ImageFolderDataModule:
    """Train / validation / test from `root/<split>/<class>/*` (Lightning's LightningDataModule role).

    `setup` lists the files and their classes; every image is then decoded and resized once, when a loader
    first needs it (or read from the shared decode cache). Test is the first `test_fraction` of the
    validation batches, split once from a shuffle of the file list by `split_seed` (not `seed`, which
    shuffles the training batches) so test and validation never overlap. `augment`: Keras preprocessing
    layers (a list, or a dict run in key order) applied to training batches.
    """

    def __init__(self, root=None, url=None, download_dir=None, train_split="train", val_split="validation",
                 image_size=(160, 160), batch_size=32, test_fraction=0.2, split_seed=0, seed=0, cache_dir=None,
                 strict=False, max_image_pixels=89478485, loader="numpy", name="images", augment=None):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise CatdogError(f"dataset.batch_size={batch_size!r}: must be a positive integer.")
        size = list(image_size)
        if len(size) != 2 or any(not isinstance(s, int) or s < 8 for s in size):
            raise CatdogError(f"dataset.image_size={size!r}: must be [height, width], each at least 8.")
        if not 0 <= test_fraction < 1:
            raise CatdogError(f"dataset.test_fraction={test_fraction!r}: must be in [0, 1).")
        if loader not in ("numpy", "tf_data"):
            raise CatdogError(f"dataset.loader={loader!r}: must be numpy or tf_data.")
        if loader == "tf_data":
            try:
                import tensorflow  # noqa: F401
            except ImportError as exc:
                raise CatdogError(f"dataset.loader=tf_data runs on TensorFlow: {exc}") from exc
        self.name = name
        self.augment = _pipeline(augment)
        self.root, self.url, self.download_dir = root, url, download_dir
        self.splits = (train_split, val_split)
        self.image_size = tuple(image_size)
        self.batch_size, self.test_fraction, self.split_seed, self.seed = batch_size, test_fraction, split_seed, seed
        self.cache_dir, self.strict, self.max_image_pixels = cache_dir, strict, max_image_pixels
        self.loader = loader
        self.folders: dict[str, ImageFolder] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.class_names: list[str] = []
        self.skipped: dict[str, str] = {}

    def prepare_data(self) -> Path:
        """Resolve the data folder, downloading the archive when no local root is given."""
        if self.root:
            root = Path(self.root).expanduser()
            missing = [s for s in self.splits if not (root / s).is_dir()]
            if missing:
                raise CatdogError(
                    f"dataset.root={self.root} must hold {' and '.join(s + '/' for s in self.splits)} class "
                    f"folders; missing: {', '.join(missing)}."
                )
            return root
        if not self.url:
            raise CatdogError(f"Set dataset.root to a folder with {' and '.join(s + '/' for s in self.splits)} class "
                              "folders, or dataset.url to an archive of one.")
        return download_dataset(self.url, self.splits, self.download_dir)

    def setup(self) -> None:
        """List the splits' files and the class names (idempotent); decoding waits for `arrays`."""
        if self.folders:
            return
        root = self.prepare_data()
        train = list_image_folder(root / self.splits[0])
        val = list_image_folder(root / self.splits[1], class_names=train.class_names)
        self.class_names = train.class_names
        order = np.random.default_rng(self.split_seed).permutation(len(val))
        n_test = math.floor(math.ceil(len(val) / self.batch_size) * self.test_fraction) * self.batch_size
        self.folders = {"train": train, "val": val.subset(order[n_test:]), "test": val.subset(order[:n_test])}
        self.root_dir = root

    @property
    def arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{split: (uint8 images, labels)}, decoded on first use."""
        if not self._arrays:
            self.setup()
            for name, folder in self.folders.items():
                self._arrays[name] = self._decode(name, folder)
            if not len(self._arrays["train"][0]) or not len(self._arrays["val"][0]):
                raise CatdogError(f"{self.root_dir} has no readable training or validation images.")
            log.info("Data %s (%s): %s", self.name, self.root_dir, {k: len(v[1]) for k, v in self._arrays.items()})
        return self._arrays

    def _decode(self, name: str, folder: ImageFolder):
        images, good, bad = cached_decode(folder.paths, self.image_size, self.max_image_pixels, self.cache_dir)
        if bad:
            listing = "; ".join(f"{p} ({e})" for p, e in bad.items())
            if self.strict:
                raise CatdogError(f"{len(bad)} {name} image(s) cannot be read (dataset.strict=true): {listing}")
            log.warning("Skipping %d unreadable %s image(s): %s", len(bad), name, listing)
            self.skipped.update(bad)
        return images, folder.labels[good]

    def label_counts(self, split="train") -> dict[str, int]:
        counts = np.bincount(self.arrays[split][1], minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def describe(self) -> dict:
        """What the metrics record about the data: counts per split and class, the majority baseline, skips."""
        counts = self.label_counts("train")
        return {"class_names": self.class_names, "label_counts": counts,
                "baseline_accuracy": max(counts.values()) / sum(counts.values()),
                "num_images": {s: self.num_images(s) for s in ("train", "val", "test")},
                "skipped_images": self.skipped}

    def num_images(self, split: str) -> int:
        return len(self.arrays[split][1])

    def dataset(self, split, *, shuffle=False, augment=None, limit_batches=None, first_epoch=0):
        """Batches of the decoded images of `split` (`loaders.array_loader`)."""
        return array_loader(*self.arrays[split], self.batch_size, loader=self.loader,
                            seed=self.seed if shuffle else None, augment=augment, limit_batches=limit_batches,
                            first_epoch=first_epoch)

    def steps_per_epoch(self, limit_batches=None):
        """None: the training pipeline is finite, one pass per epoch."""
        return None

    def train_dataloader(self, limit_batches=None, first_epoch=0):
        """Shuffled (in an order set by `seed` and the epoch) and augmented training batches."""
        return self.dataset("train", shuffle=True, augment=self.augment, limit_batches=limit_batches,
                            first_epoch=first_epoch)

    def val_dataloader(self, limit_batches=None):
        return self.dataset("val", limit_batches=limit_batches)

    def test_dataloader(self, limit_batches=None):
        return self.dataset("test", limit_batches=limit_batches)


def _pipeline(augment):
    """Augmentation layers as one `keras.layers.Pipeline` (None when there are none)."""
    if augment is None:
        return None
    import keras

    if isinstance(augment, keras.layers.Layer):
        return augment
    layers = [layer for layer in (augment.values() if hasattr(augment, "values") else augment) if layer is not None]
    return keras.layers.Pipeline(layers, name="augment") if layers else None
