"""`python -m catdog.predict ckpt_path=FILE images=PATH`: label and probability per image (CSV and JSON)."""

import csv
import logging
from pathlib import Path

from omegaconf import DictConfig

from catdog.backend import use_backend
from catdog.entry import hydra_entry
from catdog.errors import CatdogError
from catdog.io import TEXT, atomic_path, printable, write_json

log = logging.getLogger("catdog.predict")


def image_files(path) -> list[str]:
    """`path` itself when it is a file, else the images below it by the rule that training lists class folders
    with (`catdog.data.images.find_images`: sub-folders too, hidden names and non-images skipped)."""
    from catdog.data.images import find_images, warn_skipped

    path = Path(path).expanduser()
    if path.is_file():
        return [str(path)]
    if not path.is_dir():
        raise CatdogError(f"images={printable(path)}: no such file or folder.")
    files, skipped = find_images(path)
    warn_skipped(skipped)
    if not files:
        raise CatdogError(f"images={printable(path)} holds no image files.")
    return files


def predict(cfg: DictConfig) -> list[dict]:
    use_backend(**cfg.backend)
    from catdog.data.cache import cached_decode
    from catdog.inference import load_classifier, predict_probabilities

    model, classes = load_classifier(cfg.ckpt_path, cfg.safe_mode)
    files = image_files(cfg.images)
    images, good, bad = cached_decode(files, model.input_shape[1:3], cfg.max_image_pixels)
    if bad:
        log.warning("Skipping %d unreadable image(s): %s", len(bad),
                    "; ".join(f"{printable(p)} ({printable(e)})" for p, e in bad.items()))
    probabilities = predict_probabilities(model, images, cfg.batch_size) if len(good) else []
    classes = classes or [str(i) for i in range(model.output_shape[-1])]
    rows = []
    for index, probs in zip(good, probabilities):
        best = int(probs.argmax())
        rows.append({"path": files[index], "label": classes[best], "probability": float(probs[best]),
                     **{f"p_{name}": float(p) for name, p in zip(classes, probs)}})
        print(f"{printable(rows[-1]['label']):>12}  {rows[-1]['probability']:.3f}  {printable(files[index])}")
    out = Path(cfg.paths.output_dir)
    write_json(out / "predictions.json", {"predictions": rows, "skipped_images": bad})
    with atomic_path(out / "predictions.csv") as tmp, open(tmp, "w", newline="", **TEXT) as f:
        writer = csv.DictWriter(f, ["path", "label", "probability", *(f"p_{c}" for c in classes)])
        writer.writeheader()
        writer.writerows(rows)
    return rows


main = hydra_entry("predict")(predict)


if __name__ == "__main__":
    main()
