"""`python -m catdog.predict ckpt_path=FILE images=PATH`: `Trainer.predict` of a checkpoint on image files (a
file, a folder, a glob or a list of them): label and probability per image, as CSV and JSON."""

import csv
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, ListConfig

from catdog.backend import use_backend
from catdog.entry import hydra_entry
from catdog.errors import CatdogError
from catdog.evaluate import TTA
from catdog.utils.io import TEXT, atomic_path, printable, write_json

log = logging.getLogger("catdog.predict")
SHOWN = 20  # rows on the console; all of them in predictions.csv


def predict(cfg: DictConfig) -> list[dict]:
    if cfg.tta not in TTA:
        raise CatdogError(f"tta={cfg.tta!r}: must be one of {', '.join(TTA)}.")
    use_backend(**cfg.backend)
    from catdog.callbacks import PredictionProgress
    from catdog.data.files import ImageFilesDataModule, image_files
    from catdog.data.images import ImageFolder
    from catdog.tasks.loading import load_task
    from catdog.training import Trainer

    task, classes = load_task(cfg.ckpt_path, cfg.safe_mode)
    classes = classes or [str(i) for i in range(task.output_shape[-1])]
    images = list(cfg.images) if isinstance(cfg.images, ListConfig) else cfg.images
    files = image_files(images)
    data = ImageFilesDataModule(ImageFolder(files, np.zeros(len(files), "int32"), classes), task.input_shape[1:3],
                                cfg.batch_size, cfg.max_image_pixels)
    trainer = Trainer(callbacks=[PredictionProgress(data.num_images(), cfg.batch_size)],
                      default_root_dir=cfg.paths.output_dir, num_processes=1, process_id=0)  # in an srun step too
    probabilities = trainer.predict(task, data) if data.num_images() else []
    if cfg.tta == "flip" and data.num_images():  # the mean over each image and its mirror image
        probabilities = (probabilities + trainer.predict(task, data.flipped())) / 2
    rows = []
    for path, probs in zip(data.paths, probabilities):
        best = int(probs.argmax())
        rows.append({"path": path, "label": classes[best], "probability": float(probs[best]),
                     **{f"p_{name}": float(p) for name, p in zip(classes, probs)}})
    shown = "\n".join(f"  {printable(r['label']):>12}  {r['probability']:.3f}  {printable(r['path'])}"
                      for r in rows[:SHOWN])
    more = f"\n  ... and {len(rows) - SHOWN} more (predictions.csv)" if len(rows) > SHOWN else ""
    counts = ", ".join(f"{sum(r['label'] == c for r in rows)} {printable(c)}" for c in classes)
    log.info("Predicted %d image(s): %s%s\n%s%s", len(rows), counts,
             f"; {len(data.skipped)} unreadable skipped" if data.skipped else "", shown, more)
    out = Path(cfg.paths.output_dir)
    write_json(out / "predictions.json", {"predictions": rows, "tta": cfg.tta, "skipped_images": data.skipped})
    with atomic_path(out / "predictions.csv") as tmp, open(tmp, "w", newline="", **TEXT) as f:
        writer = csv.DictWriter(f, ["path", "label", "probability", *(f"p_{c}" for c in classes)])
        writer.writeheader()
        writer.writerows(rows)
    return rows


main = hydra_entry("predict")(predict)


if __name__ == "__main__":
    main()
