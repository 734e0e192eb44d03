"""Where the Hydra configs live, and the start-up checks on values (Hydra itself rejects unknown keys)."""

from pathlib import Path

from omegaconf import DictConfig

from catdog.errors import CatdogError

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16", "float16", "float64")  # Keras' dtype policies


def config_dir() -> str:
    """conf/ inside an installed wheel, or at the root of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise CatdogError(f"catdog's conf/ directory was not found next to {here}; reinstall catdog.")


def check_train_config(cfg: DictConfig) -> None:
    """Reject values that compose but cannot run, naming the key."""
    positive = {
        "trainer.max_epochs": cfg.trainer.max_epochs,
        "dataset.batch_size": cfg.dataset.batch_size,
        "trainer.steps_per_execution": cfg.trainer.steps_per_execution,
        "trainer.devices": cfg.trainer.devices,
        "trainer.feature_cache.views": cfg.trainer.feature_cache.views,
    }
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        if cfg.trainer[key] is not None:
            positive[f"trainer.{key}"] = cfg.trainer[key]
    for key, value in positive.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CatdogError(f"{key}={value!r}: must be a positive integer.")
    size = list(cfg.dataset.image_size)
    if len(size) != 2 or any(not isinstance(s, int) or s < 8 for s in size):
        raise CatdogError(f"dataset.image_size={size!r}: must be [height, width], each at least 8.")
    if not 0 <= cfg.dataset.test_fraction < 1:
        raise CatdogError(f"dataset.test_fraction={cfg.dataset.test_fraction!r}: must be in [0, 1).")
    if cfg.dataset.loader not in ("numpy", "tf_data"):
        raise CatdogError(f"dataset.loader={cfg.dataset.loader!r}: must be numpy or tf_data.")
    if cfg.dataset.loader == "tf_data" and not cfg.backend.import_tensorflow:
        raise CatdogError("dataset.loader=tf_data runs on TensorFlow, which backend.import_tensorflow=false keeps "
                          "out of this JAX run; add backend.import_tensorflow=true.")
    runtime = cfg.trainer.feature_cache.runtime
    if runtime not in ("auto", "keras", "onnxruntime"):
        raise CatdogError(f"trainer.feature_cache.runtime={runtime!r}: must be auto, keras or onnxruntime.")
    if cfg.finetune is not None:
        for key in ("unfreeze_layers", "epochs"):
            if not isinstance(cfg.finetune[key], int) or cfg.finetune[key] < 1:
                raise CatdogError(f"finetune.{key}={cfg.finetune[key]!r}: must be a positive integer.")
    if cfg.trainer.precision not in PRECISIONS:
        raise CatdogError(f"trainer.precision={cfg.trainer.precision!r}: must be one of {', '.join(PRECISIONS)}.")
    if "accuracy" not in cfg.trainer.metrics:
        raise CatdogError(f"trainer.metrics={list(cfg.trainer.metrics)!r}: must include accuracy, which the "
                          "checkpoint, history and reports follow.")
    if cfg.trainer.test_ckpt not in ("best", "last"):
        raise CatdogError(f"trainer.test_ckpt={cfg.trainer.test_ckpt!r}: must be best or last.")
