"""`python -m catdog.export ckpt_path=FILE format=...`: a checkpoint as a serving artifact (`Model.export`)."""

import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from catdog.backend import use_backend
from catdog.entry import hydra_entry
from catdog.errors import CatdogError
from catdog.utils.io import write_json
from catdog.utils.progress import working

log = logging.getLogger("catdog.export")

SUFFIX = {"tf_saved_model": "", "onnx": ".onnx", "openvino": ".xml", "litert": ".tflite"}
# Keras' LiteRT export goes through TensorFlow Lite; OpenVINO cannot convert JAX's XlaCallModule
BACKENDS = {"litert": ("tensorflow",), "openvino": ("tensorflow",)}


def export(cfg: DictConfig) -> Path:
    if cfg.format not in SUFFIX:
        raise CatdogError(f"format={cfg.format!r}: choose one of {', '.join(SUFFIX)}.")
    if cfg.backend.name not in BACKENDS.get(cfg.format, (cfg.backend.name,)):
        raise CatdogError(f"format={cfg.format} needs backend={' or '.join(BACKENDS[cfg.format])}.")
    use_backend(**{**cfg.backend, "import_tensorflow": True})  # on JAX, SavedModel export runs jax2tf
    from catdog.tasks.loading import load_task

    model, classes = load_task(cfg.ckpt_path, cfg.safe_mode)
    model(np.zeros((1, *model.input_shape[1:]), "float32"))  # ONNX export traces a model that has been called
    out = Path(cfg.paths.output_dir)
    target = out / f"{model.name}_{cfg.format}{SUFFIX[cfg.format]}"
    try:
        with working(f"Exporting to {cfg.format}"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "In the future `np.object`", FutureWarning)  # Keras' tf2onnx patch
            model.export(str(target), format=cfg.format, verbose=False)
    except ImportError as exc:
        raise CatdogError(f"format={cfg.format} needs a package that is not installed "
                          f"(pip install 'catdog[export]'): {exc}") from exc
    if classes:
        write_json(out / "classes.json", classes)
    shutil.copy(Path(cfg.ckpt_path).expanduser(), out / "model.keras")
    log.info("Exported %s to %s", cfg.ckpt_path, target)
    return target


main = hydra_entry("export")(export)


if __name__ == "__main__":
    main()
