"""The data module: one place that turns an image folder into train, validation and test pipelines."""

import json
import logging
from pathlib import Path

import numpy as np

from catdog.backend import require_tensorflow
from catdog.data.base import DataModule
from catdog.data.cache import cached_decode
from catdog.data.download import download_dataset
from catdog.data.images import ImageFolder, list_image_folder
from catdog.data.layouts import (SPLIT_NAMES, UNREADABLE, carve_test, check_classes, check_disjoint, flat_splits,
                                 read_manifest, write_manifest)
from catdog.data.loaders import array_loader
from catdog.errors import CatdogError, first_few
from catdog.utils.io import printable
from catdog.utils.progress import working

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "split", "flat", "manifest")


class ImageFolderDataModule(DataModule):
    """Train / validation / test images from a folder or a manifest (Lightning's LightningDataModule role).

    Layouts (`catdog.data.layouts`), chosen by `layout` (auto: a manifest when given, else split when `root`
    holds `train_split`/ and `val_split`/, else flat):
    - split: `root/<train_split>/<class>/`, `root/<val_split>/<class>/` and, if present,
      `root/<test_split>/<class>/`; without one, test is the first `test_fraction` of the validation batches,
      split from a shuffle by `split_seed` (the tutorial's fifth);
    - flat: `root/<class>/`; `val_fraction` of each class held out, `test_fraction` of that is test;
    - manifest: a CSV of path, label, split (`write_manifest` writes one for every run).
    Splits that share a file or a file's content are refused. `split_seed` (not `seed`, which shuffles the
    training batches) draws the splits.

    `setup` lists the files; every image is decoded and resized once, when a loader first needs it, into the
    decode cache in `cache_dir` (rows on disk, read per batch: memory does not grow with the data; without a
    `cache_dir` the images are held in memory). `augment`: Keras preprocessing layers (a list, or a dict run in
    key order) applied to training batches. `class_weight`: null, "balanced" (n / (classes * n_class), as
    scikit-learn's) or {class name: weight}, for Keras' `fit(class_weight=...)`.
    """

    def __init__(self, root=None, url=None, download_dir=None, train_split="train", val_split="validation",
                 test_split="test", layout="auto", manifest=None, val_fraction=0.2, image_size=(160, 160),
                 batch_size=32, test_fraction=0.2, split_seed=0, seed=0, cache_dir=None, strict=False,
                 max_image_pixels=89478485, loader="numpy", name="images", augment=None, class_weight=None):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise CatdogError(f"dataset.batch_size={batch_size!r}: must be a positive integer.")
        size = list(image_size)
        if len(size) != 2 or any(not isinstance(s, int) or s < 8 for s in size):
            raise CatdogError(f"dataset.image_size={size!r}: must be [height, width], each at least 8.")
        for key, value, low in (("test_fraction", test_fraction, 0), ("val_fraction", val_fraction, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise CatdogError(f"dataset.{key}={value!r}: must be in [0, 1).")
        if layout not in LAYOUTS:
            raise CatdogError(f"dataset.layout={layout!r}: must be one of {', '.join(LAYOUTS)}.")
        if layout == "manifest" and not manifest:
            raise CatdogError("dataset.layout=manifest needs dataset.manifest=FILE.csv (columns path, label, split).")
        if not (class_weight is None or class_weight == "balanced" or hasattr(class_weight, "items")):
            raise CatdogError(f"dataset.class_weight={class_weight!r}: must be null, balanced or "
                              "{class name: weight}.")
        if loader not in ("numpy", "tf_data"):
            raise CatdogError(f"dataset.loader={loader!r}: must be numpy or tf_data.")
        if loader == "tf_data":
            require_tensorflow("dataset.loader=tf_data")
        self.name = name
        self.augment = _pipeline(augment)
        self.root, self.url, self.download_dir = root, url, download_dir
        self.splits = (train_split, val_split)
        self.test_split, self.layout, self.manifest, self.val_fraction = test_split, layout, manifest, val_fraction
        self.image_size = tuple(image_size)
        self.batch_size, self.test_fraction, self.split_seed, self.seed = batch_size, test_fraction, split_seed, seed
        self.cache_dir, self.strict, self.max_image_pixels = cache_dir, strict, max_image_pixels
        self.loader, self.class_weight = loader, class_weight
        self.folders: dict[str, ImageFolder] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.class_names: list[str] = []
        self.skipped: dict[str, str] = {}
        self.classes_missing: dict[str, list[str]] = {}  # {split: classes with no image there}

    def prepare_data(self) -> Path | None:
        """The data folder (downloading the archive when neither a root nor a manifest is given)."""
        if self.manifest or self.layout == "manifest":
            return None
        if self.root:
            root = Path(self.root).expanduser()
            if not root.is_dir():
                raise CatdogError(f"dataset.root={self.root} is not a folder; give a folder of class folders, one "
                                  f"with {' and '.join(s + '/' for s in self.splits)} class folders, or "
                                  "dataset.manifest=FILE.csv.")
            return root
        if not self.url:
            raise CatdogError("Set dataset.root to a folder of class folders (or of "
                              f"{' and '.join(s + '/' for s in self.splits)} class folders), dataset.manifest to "
                              "a CSV of path, label, split, or dataset.url to an archive.")
        return download_dataset(self.url, self.splits, self.download_dir)

    def _layout(self, root) -> str:
        if self.layout != "auto":
            return self.layout
        if root is None:
            return "manifest"
        present = [s for s in self.splits if (root / s).is_dir()]
        if len(present) == 1:
            missing = [s for s in self.splits if s not in present]
            raise CatdogError(f"dataset.root={root} has {present[0]}/ but not {missing[0]}/: give both split "
                              "folders, or set dataset.layout=flat to treat every sub-folder as a class.")
        return "split" if present else "flat"

    def setup(self, stage=None) -> None:
        """List the splits' files and the class names (idempotent); decoding waits for `arrays`."""
        if self.folders:
            return
        root = self.prepare_data()
        layout = self._layout(root)
        with working(f"Listing and checking the images of {printable(self.manifest or root)}"):
            folders = self._list(root, layout)
            if not len(folders["train"]) or not len(folders["val"]):
                raise CatdogError(f"{self.manifest or root} gives {len(folders['train'])} training and "
                                  f"{len(folders['val'])} validation images; both need at least one "
                                  f"(dataset.val_fraction={self.val_fraction} for a flat folder).")
            check_disjoint(folders)
            self.classes_missing = check_classes(folders, self.manifest or root)
        for split, names in self.classes_missing.items():
            log.warning("%d class(es) have no %s image, so their %s figures are not measured: %s",
                        len(names), SPLIT_NAMES[split], SPLIT_NAMES[split], first_few(map(printable, names),
                                                                                       "metrics.json"))
        self.folders, self.class_names, self.layout_used = folders, folders["train"].class_names, layout
        self.root_dir = self.manifest or root

    def _list(self, root, layout) -> dict[str, ImageFolder]:
        if layout == "manifest":
            folders = read_manifest(self.manifest)
            if not len(folders["test"]) and len(folders["val"]):
                folders.update(carve_test(folders["val"], self.test_fraction, self.batch_size, self.split_seed))
            return folders
        if layout == "flat":
            return flat_splits(root, self.val_fraction, self.test_fraction, self.split_seed)
        missing = [s for s in self.splits if not (root / s).is_dir()]
        if missing:
            raise CatdogError(f"dataset.root={root} must hold {' and '.join(s + '/' for s in self.splits)} "
                              f"class folders (dataset.layout=split); missing: {', '.join(missing)}.")
        train = list_image_folder(root / self.splits[0])
        val = list_image_folder(root / self.splits[1], class_names=train.class_names)
        if self.test_split and (root / self.test_split).is_dir():
            return {"train": train, "val": val,
                    "test": list_image_folder(root / self.test_split, class_names=train.class_names)}
        return {"train": train, **carve_test(val, self.test_fraction, self.batch_size, self.split_seed)}

    def write_manifest(self, path) -> None:
        """Every listed file with its class and split (`dataset.manifest=path` reruns on exactly these)."""
        self.setup()
        write_manifest(path, self.folders)

    @property
    def arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{split: (uint8 images, labels)}, decoded on first use; the images are rows on disk (a `RowFile`)
        when there is a `cache_dir`."""
        if not self._arrays:
            self.setup()
            for name, folder in self.folders.items():
                self._arrays[name] = self._decode(name, folder)
            if not len(self._arrays["train"][0]) or not len(self._arrays["val"][0]):
                raise CatdogError(f"{self.root_dir} has no readable training or validation images.")
            log.info("Data %s (%s): %s", self.name, self.root_dir, {k: len(v[1]) for k, v in self._arrays.items()})
        return self._arrays

    def _decode(self, name: str, folder: ImageFolder):
        if not len(folder):
            return np.zeros((0, *self.image_size, 3), np.uint8), folder.labels
        images, good, bad = cached_decode(folder.paths, self.image_size, self.max_image_pixels, self.cache_dir,
                                          folder.file_stats())
        if bad:
            named = [f"{printable(p)} ({printable(e)})" for p, e in bad.items()]
            if self.strict:
                raise CatdogError(f"{len(bad)} {name} image(s) cannot be read (dataset.strict=true): "
                                  f"{first_few(named, UNREADABLE)}", {UNREADABLE: named})
            log.warning("Skipping %d unreadable %s image(s): %s", len(bad), name, first_few(named, "metrics.json"))
            self.skipped.update(bad)
        return images, folder.labels[good]

    def class_weights(self) -> dict[int, float] | None:
        """Keras' `class_weight` for `fit`: {label: weight}, or None."""
        if self.class_weight is None:
            return None
        self.setup()
        if self.class_weight == "balanced":
            counts = np.bincount(self.arrays["train"][1], minlength=len(self.class_names))
            return {i: float(counts.sum() / (len(counts) * c)) if c else 0.0 for i, c in enumerate(counts)}
        unknown = sorted(set(self.class_weight) - set(self.class_names))
        if unknown:
            raise CatdogError(f"dataset.class_weight names {unknown}, which are not among the classes "
                              f"{self.class_names}.")
        return {i: float(self.class_weight.get(name, 1.0)) for i, name in enumerate(self.class_names)}

    def label_counts(self, split="train") -> dict[str, int]:
        counts = np.bincount(self.arrays[split][1], minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def describe(self) -> dict:
        """What the metrics record about the data: counts per split and class, the majority baseline, skips."""
        counts = self.label_counts("train")
        return {"class_names": self.class_names, "layout": self.layout_used, "label_counts": counts,
                "baseline_accuracy": max(counts.values()) / sum(counts.values()),
                "num_images": {s: self.num_images(s) for s in ("train", "val", "test")},
                "classes_missing": self.classes_missing, "skipped_images": self.skipped}

    def signature(self) -> dict:
        """Image size, batching, splitting, the loader, class weights and the augmentation's layers (not where
        the files are: a moved copy of the data resumes)."""
        layers = [] if self.augment is None else [[type(layer).__name__, layer.get_config()] for layer in
                                                   getattr(self.augment, "layers", [self.augment])]
        return json.loads(json.dumps({
            "image_size": list(self.image_size), "batch_size": self.batch_size, "layout": self.layout,
            "val_fraction": self.val_fraction, "test_fraction": self.test_fraction, "split_seed": self.split_seed,
            "seed": self.seed, "loader": self.loader, "class_weight": self.class_weight,
            "augment": [[name, {k: v for k, v in config.items() if k != "name"}] for name, config in layers]},
            default=str))

    def sizes(self) -> dict[str, int]:
        self.setup()
        return {split: len(folder) for split, folder in self.folders.items()}

    def num_images(self, split: str) -> int:
        return len(self.arrays[split][1])

    def state_dict(self) -> dict:
        """The augmentation's random state (its layers' seed generators): a resumed run draws on where the
        checkpointed epoch left off, as an uninterrupted run does (the order of the batches is a function of
        `seed` and the epoch alone)."""
        if self.augment is None:
            return {}
        return {"augment_seeds": [np.asarray(v.numpy()).tolist() for v in self.augment.variables]}

    def load_state_dict(self, state: dict) -> None:
        seeds = state.get("augment_seeds")
        if seeds is None or self.augment is None:
            return
        variables = self.augment.variables
        if len(seeds) != len(variables):
            raise CatdogError(f"The checkpoint holds {len(seeds)} augmentation seed states, but this run's "
                              f"augmentation has {len(variables)}: resume with the augment it started with.")
        for variable, value in zip(variables, seeds):
            variable.assign(np.asarray(value, dtype=variable.dtype))

    def dataset(self, split, *, shuffle=False, augment=None, limit_batches=None, first_epoch=0):
        """Batches of the decoded images of `split` (`loaders.array_loader`)."""
        return array_loader(*self.arrays[split], self.batch_size, loader=self.loader,
                            seed=self.seed if shuffle else None, augment=augment, limit_batches=limit_batches,
                            first_epoch=first_epoch)

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
