"""Which image is in which split: the three folder layouts, a run's manifest, and the check that splits are
disjoint.

- split: `root/<train>/<class>/`, `root/<validation>/<class>/` and, optionally, `root/<test>/<class>/`;
  without a test folder, test is carved from validation by `carve_test` (the tutorial's rule).
- flat: `root/<class>/`; `val_fraction` of each class is held out, and `test_fraction` of the held-out
  images of each class is test (`stratified_split`).
- manifest: a CSV file with the columns path, label, split (train, validation or test); relative paths are
  relative to the file's folder. Without test rows, test is carved from validation as in the split layout.
"""

import csv
import hashlib
import math
import os
import stat
from collections import defaultdict
from pathlib import Path

import numpy as np

from catdog.data.images import ImageFolder, list_image_folder
from catdog.errors import CatdogError, first_few
from catdog.utils.io import printable

MANIFEST_SPLITS = {"train": "train", "validation": "val", "val": "val", "test": "test"}
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
SHARED, MISSING, UNREADABLE, UNTRAINED = ("shared_images.txt", "missing_images.txt", "unreadable_images.txt",
                                          "untrained_classes.txt")  # error details


def carve_test(val: ImageFolder, test_fraction: float, batch_size: int, seed: int) -> dict[str, ImageFolder]:
    """The tutorial's test set, as many images as floor(val_batches * test_fraction) whole batches, drawn from
    each class in proportion to its share of the validation files (the largest remainders round up), shuffled
    by `seed`; the rest stays validation, both in the original file order."""
    n_test = min(math.floor(math.ceil(len(val) / batch_size) * test_fraction) * batch_size, len(val))
    counts = np.bincount(val.labels, minlength=len(val.class_names))
    quota = counts * n_test / max(len(val), 1)
    take = np.floor(quota).astype(int)
    for label in np.argsort(-(quota - take), kind="stable")[:n_test - take.sum()]:
        take[label] += 1
    rng = np.random.default_rng(seed)
    held = np.concatenate([rng.permutation(np.flatnonzero(val.labels == label))[:take[label]]
                           for label in range(len(counts))] or [np.zeros(0, int)]).astype(int)
    mask = np.zeros(len(val), bool)
    mask[held] = True
    return {"val": val.subset(np.flatnonzero(~mask)), "test": val.subset(np.flatnonzero(mask))}


def stratified_split(folder: ImageFolder, fraction: float, seed: int) -> tuple[ImageFolder, ImageFolder]:
    """(kept, held out): `fraction` of each class's files (rounded, shuffled by `seed`) held out, in the
    original file order within each part."""
    rng = np.random.default_rng(seed)
    held = []
    for label in range(len(folder.class_names)):
        members = np.flatnonzero(folder.labels == label)
        held += list(rng.permutation(members)[:round(len(members) * fraction)])
    mask = np.zeros(len(folder), bool)
    mask[held] = True
    return folder.subset(np.flatnonzero(~mask)), folder.subset(np.flatnonzero(mask))


def flat_splits(root, val_fraction: float, test_fraction: float, seed: int) -> dict[str, ImageFolder]:
    folder = list_image_folder(root)
    train, held = stratified_split(folder, val_fraction, seed)
    val, test = stratified_split(held, test_fraction, seed + 1)
    return {"train": train, "val": val, "test": test}


def read_manifest(file) -> dict[str, ImageFolder]:
    """A manifest's splits; an absent split is empty. Class names: the labels, sorted."""
    file = Path(file).expanduser()
    try:
        with open(file, newline="", encoding="utf-8", errors="surrogateescape") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise CatdogError(f"dataset.manifest={file}: cannot be read ({exc}).") from exc
    missing = {"path", "label", "split"} - set(rows[0] if rows else {})
    if missing:
        raise CatdogError(f"dataset.manifest={file} needs the columns path, label, split (a header row); "
                          f"missing: {', '.join(sorted(missing))}.")
    unknown = sorted({r["split"] for r in rows} - set(MANIFEST_SPLITS))
    if unknown:
        raise CatdogError(f"dataset.manifest={file}: unknown split(s) {unknown}; use train, validation or test.")
    classes = sorted({r["label"] for r in rows})
    stats = {r["path"]: _file_stat(file.parent / r["path"]) for r in rows}
    absent = [printable(path) for path, st in stats.items() if st is None]
    if absent:
        raise CatdogError(f"dataset.manifest={file} lists {len(absent)} file(s) that do not exist (relative paths "
                          f"are relative to the manifest's folder): {first_few(absent, MISSING)}.",
                          {MISSING: absent})
    if len(classes) < 2:
        raise CatdogError(f"dataset.manifest={file} has {len(classes)} label(s); a classifier needs at least two.")
    label_of = {name: i for i, name in enumerate(classes)}
    splits = {}
    for split in ("train", "val", "test"):
        chosen = [r for r in rows if MANIFEST_SPLITS[r["split"]] == split]
        splits[split] = ImageFolder([str(file.parent / r["path"]) for r in chosen],
                                    np.asarray([label_of[r["label"]] for r in chosen], dtype="int32"), classes,
                                    [stats[r["path"]] for r in chosen])
    return splits


def _file_stat(path) -> os.stat_result | None:
    """The stat of a regular file (links followed), or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def write_manifest(path, folders: dict[str, ImageFolder]) -> None:
    """path,label,split rows of every split, with absolute paths: `dataset.manifest=path` reads them back."""
    from catdog.utils.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label", "split"])
            for split, folder in folders.items():
                for p, label in zip(folder.paths, folder.labels):
                    writer.writerow([str(Path(p).absolute()), folder.class_names[label], SPLIT_NAMES[split]])


def check_disjoint(folders: dict[str, ImageFolder]) -> None:
    """Refuse splits that share an image: the same file (a path, a link or a hard link to it) or the same
    content. Files are told apart by their stats, taken once; only files whose size is also found in another
    split are read."""
    where, first_path = defaultdict(set), {}
    by_size = defaultdict(list)
    for split, folder in folders.items():
        for p, st in zip(folder.paths, folder.file_stats()):
            file = (st.st_dev, st.st_ino)
            where[file].add(split)
            first_path.setdefault(file, p)
            by_size[st.st_size].append((split, file))
    shared = [f"{printable(first_path[f])} (in {' and '.join(SPLIT_NAMES[s] for s in sorted(splits))})"
              for f, splits in where.items() if len(splits) > 1]
    by_content = defaultdict(list)
    for files in by_size.values():
        if len({split for split, _ in files}) > 1:
            for split, file in dict.fromkeys(files):
                by_content[_digest(first_path[file])].append((split, file))
    for same in by_content.values():
        if len({split for split, _ in same}) > 1 and len({f for _, f in same}) > 1:
            shared.append(" = ".join(f"{printable(first_path[f])} ({SPLIT_NAMES[s]})" for s, f in same)
                          + " (the same content)")
    if shared:
        raise CatdogError(f"The splits share {len(shared)} image(s), so validation or test would score images the "
                          f"model trained on: {first_few(shared, SHARED)}. Remove the duplicates from all but one "
                          "split (or fix dataset.manifest).", {SHARED: shared})


def check_classes(folders: dict[str, ImageFolder], where) -> dict[str, list[str]]:
    """Refuse a class with no training image, naming it and where its images are; {split: [classes it lacks]}
    for the validation and test splits that lack some (each class is scored only where it has images)."""
    names = folders["train"].class_names
    counts = {s: np.bincount(f.labels, minlength=len(names)) for s, f in folders.items()}

    def spread(i):
        return ", ".join(f"{int(counts[s][i])} {SPLIT_NAMES[s]}" for s in folders)

    untrained = [f"{printable(names[i])} ({spread(i)})" for i in range(len(names)) if counts["train"][i] == 0]
    if untrained:
        raise CatdogError(f"{printable(where)}: {len(untrained)} class(es) have no training image, so the model "
                          f"would have an output it never learns: {first_few(untrained, UNTRAINED)}. Give each "
                          "class training images (dataset.val_fraction smaller for a flat folder), or remove it.",
                          {UNTRAINED: untrained})
    return {s: [names[i] for i in range(len(names)) if counts[s][i] == 0]
            for s in ("val", "test") if s in folders and len(folders[s]) and not counts[s].all()}


def _digest(path) -> str:
    h = hashlib.blake2b()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
