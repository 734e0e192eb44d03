"""`python -m catdog.evaluate ckpt_path=FILE data_dir=DIR` (or `manifest=FILE split=test`): overall accuracy, and per class accuracy, precision,
recall and F1, on any class folders (listed as training lists them: `catdog.data.images.list_image_folder`)."""

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from catdog.backend import use_backend
from catdog.entry import hydra_entry
from catdog.errors import CatdogError
from catdog.io import printable, write_json

log = logging.getLogger("catdog.evaluate")


def evaluate(cfg: DictConfig) -> dict:
    use_backend(**cfg.backend)
    from catdog.analysis import per_class_metrics
    from catdog.backend import active_backend
    from catdog.data.cache import cached_decode
    from catdog.data.images import list_image_folder
    from catdog.inference import load_classifier, predict_probabilities

    model, classes = load_classifier(cfg.ckpt_path, cfg.safe_mode)
    folder = manifest_split(cfg.manifest, cfg.split, classes) if cfg.get("manifest") else None
    if folder is None:
        if not cfg.data_dir:
            raise CatdogError("Give data_dir=DIR (one sub-folder per class) or manifest=FILE.csv [split=test].")
        folder = list_image_folder(cfg.data_dir, class_names=classes)
    if len(folder.class_names) != model.output_shape[-1]:
        raise CatdogError(f"data_dir={cfg.data_dir} has {len(folder.class_names)} classes "
                          f"({', '.join(map(printable, folder.class_names))}) but the model predicts "
                          f"{model.output_shape[-1]}; "
                          "evaluate it on folders of the classes it was trained on.")
    images, good, bad = cached_decode(folder.paths, model.input_shape[1:3], cfg.max_image_pixels, cfg.cache_dir)
    if bad and cfg.strict:
        raise CatdogError(f"{len(bad)} image(s) cannot be read (strict=true): {sorted(bad)}")
    if not len(good):
        raise CatdogError(f"{cfg.manifest or cfg.data_dir} holds no readable images.")
    labels = folder.labels[good]
    predicted = predict_probabilities(model, images, cfg.batch_size).argmax(axis=-1)
    scores = per_class_metrics(labels, predicted, folder.class_names)
    per_class = {
        name: {"images": int((labels == i).sum()),
               "accuracy": float((predicted[labels == i] == i).mean()) if (labels == i).any() else None,
               **{k: scores[name][k] for k in ("precision", "recall", "f1")}}
        for i, name in enumerate(folder.class_names)
    }
    result = {
        "ckpt_path": str(cfg.ckpt_path), "data_dir": str(cfg.data_dir), "manifest": cfg.get("manifest"),
        "split": cfg.split if cfg.get("manifest") else None, "backend": active_backend(),
        "images": int(len(labels)), "accuracy": float((predicted == labels).mean()), "per_class": per_class,
        "skipped_images": bad,
    }
    write_json(Path(cfg.paths.output_dir) / "evaluation.json", result)
    log.info("accuracy %.4f on %d images", result["accuracy"], result["images"])
    for name, row in per_class.items():
        log.info("  %-20s %5d images  accuracy %s  precision %.4f  recall %.4f  F1 %.4f", printable(name),
                 row["images"], "n/a" if row["accuracy"] is None else f"{row['accuracy']:.4f}", row["precision"],
                 row["recall"], row["f1"])
    return result


def manifest_split(manifest, split, classes):
    """The rows of `split` in `manifest`, labelled in the model's class order (`classes`, when it has them)."""
    from catdog.data.images import ImageFolder
    from catdog.data.layouts import MANIFEST_SPLITS, read_manifest

    if split not in MANIFEST_SPLITS:
        raise CatdogError(f"split={split!r}: must be train, validation or test.")
    folder = read_manifest(manifest)[MANIFEST_SPLITS[split]]
    if not len(folder):
        raise CatdogError(f"manifest={manifest} has no {split} rows.")
    if classes is None:
        return folder
    unknown = sorted(set(folder.class_names) - set(classes))
    if unknown:
        raise CatdogError(f"manifest={manifest} has labels {list(map(printable, unknown))} that the model does "
                          f"not predict ({', '.join(map(printable, classes))}).")
    order = np.asarray([classes.index(name) for name in folder.class_names], dtype="int32")
    return ImageFolder(folder.paths, order[folder.labels], list(classes))


main = hydra_entry("evaluate")(evaluate)


if __name__ == "__main__":
    main()
