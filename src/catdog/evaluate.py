"""`python -m catdog.evaluate ckpt_path=FILE data_dir=DIR` (or `manifest=FILE split=test`): `Trainer.test` of a
checkpoint on any class folders, with overall accuracy and per class accuracy, precision, recall and F1."""

import logging
from pathlib import Path

from omegaconf import DictConfig

from catdog.backend import use_backend
from catdog.errors import CatdogError
from catdog.entry import hydra_entry
from catdog.utils.io import printable, write_json

log = logging.getLogger("catdog.evaluate")
TTA = ("none", "flip")  # test-time augmentation: none, or the mean over each image and its mirror image


def evaluate(cfg: DictConfig) -> dict:
    if cfg.tta not in TTA:
        raise CatdogError(f"tta={cfg.tta!r}: must be one of {', '.join(TTA)}.")
    use_backend(**cfg.backend)
    import keras

    from catdog.analysis.metrics import per_class_metrics
    from catdog.callbacks import PredictionProgress
    from catdog.data.files import ImageFilesDataModule, labelled_files
    from catdog.tasks.loading import load_task
    from catdog.training import Trainer

    task, classes = load_task(cfg.ckpt_path, cfg.safe_mode)
    folder = labelled_files(cfg.data_dir, cfg.get("manifest"), cfg.split, classes)
    if len(folder.class_names) != task.output_shape[-1]:
        raise CatdogError(f"data_dir={cfg.data_dir} has {len(folder.class_names)} classes "
                          f"({', '.join(map(printable, folder.class_names))}) but the model predicts "
                          f"{task.output_shape[-1]}; evaluate it on folders of the classes it was trained on.")
    data = ImageFilesDataModule(folder, task.input_shape[1:3], cfg.batch_size, cfg.max_image_pixels, cfg.cache_dir,
                                cfg.strict)
    if not data.num_images():
        raise CatdogError(f"{cfg.get('manifest') or cfg.data_dir} holds no readable images.")
    trainer = Trainer(callbacks=[PredictionProgress(data.num_images(), cfg.batch_size)],
                      default_root_dir=cfg.paths.output_dir, num_processes=1, process_id=0)  # in an srun step too
    labels = data.labels
    if cfg.tta == "flip":  # the mean of the images' and their mirror images' probabilities
        predicted = ((trainer.predict(task, data) + trainer.predict(task, data.flipped())) / 2).argmax(axis=-1)
        accuracy = float((predicted == labels).mean())
    else:
        accuracy = trainer.test(task, data, ckpt_path=None)["test_accuracy"]
        predicted = trainer.predict(task, data).argmax(axis=-1)
    scores = per_class_metrics(labels, predicted, folder.class_names)
    per_class = {name: {"images": int((labels == i).sum()),
                        "accuracy": float((predicted[labels == i] == i).mean()) if (labels == i).any() else None,
                        **{k: scores[name][k] for k in ("precision", "recall", "f1")}}
                 for i, name in enumerate(folder.class_names)}
    result = {"ckpt_path": str(cfg.ckpt_path), "data_dir": str(cfg.data_dir), "manifest": cfg.get("manifest"),
              "split": cfg.split if cfg.get("manifest") else None, "backend": keras.backend.backend(),
              "images": int(len(labels)), "accuracy": accuracy, "tta": cfg.tta, "per_class": per_class,
              "skipped_images": data.skipped}
    write_json(Path(cfg.paths.output_dir) / "evaluation.json", result)
    log.info("accuracy %.4f on %d images", result["accuracy"], result["images"])
    for name, row in per_class.items():
        log.info("  %-20s %5d images  accuracy %s  precision %.4f  recall %.4f  F1 %.4f", printable(name),
                 row["images"], "n/a" if row["accuracy"] is None else f"{row['accuracy']:.4f}", row["precision"],
                 row["recall"], row["f1"])
    return result


main = hydra_entry("evaluate")(evaluate)


if __name__ == "__main__":
    main()
