"""`python -m catdog.train`: train one model; every output lands in the Hydra run directory."""

import logging
import os
import resource
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from catdog.backend import use_backend
from catdog.config import check_train_config
from catdog.entry import hydra_entry, run_job_in_fresh_process
from catdog.errors import CatdogError
from catdog.history import read_history, summarise
from catdog.io import write_json, write_text

log = logging.getLogger("catdog.train")


def train(cfg: DictConfig) -> dict:
    """Compose everything from `cfg`, fit, test, and write the run's outputs; returns metrics.json."""
    started = time.perf_counter()
    check_train_config(cfg)
    use_backend(**cfg.backend)

    import keras
    from hydra.utils import instantiate

    from catdog.analysis import analyse_validation
    from catdog.backend import active_backend, tensorflow_imported, use_devices
    from catdog.callbacks import AtomicModelCheckpoint, ResumableEarlyStopping
    from catdog.data import ImageFolderDataModule
    from catdog.features import FeatureDataModule, frozen_split, unfreeze_top
    from catdog.models import build_model
    from catdog.module import ClassifierModule
    from catdog.plots import plot_history
    from catdog.run_info import cpu_info, package_versions, peak_rss_mb
    from catdog.trainer import Trainer

    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    keras.utils.set_random_seed(cfg.seed)
    use_devices(cfg.trainer.devices)
    keras.config.set_dtype_policy(cfg.trainer.precision)

    try:
        datamodule = ImageFolderDataModule(**cfg.dataset)
    except TypeError as exc:  # a key added with +dataset.<key>= that the data module does not take
        raise CatdogError(f"dataset: bad option ({exc}).") from exc
    datamodule.setup()
    model_options = OmegaConf.to_container(cfg.model, resolve=True)
    network = build_model(model_options.pop("name"), (*datamodule.image_size, 3), len(datamodule.class_names),
                          **model_options)
    augment_layers = [instantiate(c) for c in cfg.augment.layers.values() if c is not None]
    image_augment = keras.layers.Pipeline(augment_layers, name="augment") if augment_layers else None
    split = frozen_split(network) if cfg.trainer.feature_cache.enabled or cfg.finetune else None
    if cfg.finetune and split is None:
        raise CatdogError(f"finetune needs a model with a frozen backbone, and {network.name} has none; "
                          "use model=mobilenet (experiment=model4_finetune) or drop finetune.")
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]
    trainer = Trainer(callbacks=callbacks, max_epochs=cfg.trainer.max_epochs, fast_dev_run=cfg.trainer.fast_dev_run,
                      limit_train_batches=cfg.trainer.limit_train_batches,
                      limit_val_batches=cfg.trainer.limit_val_batches,
                      limit_test_batches=cfg.trainer.limit_test_batches, verbose=cfg.trainer.verbose)
    data, trained, augment, feature_views, feature_runtime = datamodule, network, image_augment, None, None
    if split is not None and cfg.trainer.feature_cache.enabled:
        features, trained = split
        # a fast_dev_run computes the features of the batches it runs, not of every image
        max_images = ({k: n * datamodule.batch_size for k, n in trainer.limits.items()}
                      if cfg.trainer.fast_dev_run else {})
        data = FeatureDataModule(datamodule, features, image_augment, cfg.trainer.feature_cache.views,
                                 cfg.trainer.feature_cache.batch_size, cfg.dataset.cache_dir, max_images,
                                 cfg.trainer.feature_cache.runtime)
        data.setup()
        augment, feature_views, feature_runtime = None, data.views, data.runtime  # augmentation is in the views
        log.info("Training the head on cached features (%s; computed by %s)",
                 f"{data.views} augmented views" if image_augment is not None else "no augmentation", data.runtime)

    def make_module(net, **optimizer_overrides):
        return ClassifierModule(
            net, optimizer=instantiate(cfg.trainer.optimizer, **optimizer_overrides),
            loss=instantiate(cfg.trainer.loss), metrics=cfg.trainer.metrics, jit_compile=cfg.trainer.jit_compile,
            steps_per_execution=cfg.trainer.steps_per_execution, export_network=network,
        )

    module = make_module(trained)
    write_text(out / "model_summary.txt", module.summary())
    log.info("Training %s on %s (%s), %d trainable of %d parameters", network.name, active_backend(),
             datamodule.class_names, module.params_trainable, module.params_total)

    # history.csv (csv_logger) holds every epoch across resumes and stages; Keras' History only the last fit's
    csv_path = Path(trainer.csv_logger.filename) if trainer.csv_logger else None
    has_csv = csv_path is not None and csv_path.is_file()
    checkpoint = trainer.checkpoint_callback
    if trainer.backup_callback and Path(trainer.backup_callback.backup_dir).is_dir():
        log.info("Resuming from the backup in %s", trainer.backup_callback.backup_dir)
        before = read_history(csv_path) if has_csv else {}
        for callback in trainer.callbacks:  # the best checkpoint and early stopping carry on from there
            if isinstance(callback, (AtomicModelCheckpoint, ResumableEarlyStopping)):
                callback.resumed_values = before.get(callback.monitor, [])
    elif has_csv:  # a finished run's history in a reused run directory: keep it aside
        csv_path.replace(csv_path.with_suffix(".csv.prev"))
    if checkpoint is not None:  # before fit, so that an interrupted run's checkpoint names its classes too
        write_json(Path(checkpoint.filepath).parent / "classes.json", datamodule.class_names)
    setup_seconds = time.perf_counter() - started
    fit = trainer.fit(module, data, augment=augment, keep_backup=bool(cfg.finetune))
    if cfg.finetune:  # stage 2: the top of the backbone too, on images
        unfrozen = unfreeze_top(split[0], cfg.finetune.unfreeze_layers)
        log.info("Fine-tuning the last %d backbone layers (%d of them with weights; BatchNormalization stays "
                 "frozen) at learning rate %g", cfg.finetune.unfreeze_layers, unfrozen, cfg.finetune.learning_rate)
        module, data = make_module(network, learning_rate=cfg.finetune.learning_rate), datamodule
        stage_one = trainer.max_epochs
        trainer.max_epochs += 1 if cfg.trainer.fast_dev_run else cfg.finetune.epochs
        fit = trainer.fit(module, data, augment=image_augment, initial_epoch=stage_one, stage="finetune")
        trainer.remove_backup()
    history = read_history(csv_path) if csv_path is not None and csv_path.is_file() else fit.history
    tested = "last"
    if cfg.trainer.test_ckpt == "best":
        if checkpoint is not None and checkpoint.save_best_only and Path(checkpoint.filepath).is_file():
            network.load_weights(checkpoint.filepath)
            tested = "best"
        else:
            log.warning("trainer.test_ckpt=best, but there is no best-only checkpoint file (callbacks."
                        "model_checkpoint with save_best_only and a fixed filepath): testing the last weights.")
    test = trainer.test(module, data) if datamodule.num_images("test") else {}

    matrix, mistakes = analyse_validation(module.network, data.val_dataloader(trainer.limits["val"]),
                                          *datamodule.arrays["val"], datamodule.class_names, out)
    counts = datamodule.label_counts("train")
    metrics = {
        "experiment": cfg.experiment_name,
        "backend": active_backend(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "jax_compilation_cache_dir": os.environ.get("JAX_COMPILATION_CACHE_DIR"),
        "devices": cfg.trainer.devices,
        "precision": cfg.trainer.precision,
        "model": network.name,
        "augment": cfg.augment.name,
        "params_total": module.params_total,
        "params_trainable": module.params_trainable,
        "feature_cache_views": feature_views,
        "feature_runtime": feature_runtime,
        "finetune": OmegaConf.to_container(cfg.finetune) if cfg.finetune else None,
        **summarise(history, setup_seconds, trainer.images_per_epoch(datamodule)),
        "test_accuracy": test.get("accuracy"),
        "test_loss": test.get("loss"),
        "test_checkpoint": tested,
        "baseline_accuracy": max(counts.values()) / sum(counts.values()),
        "label_counts": counts,
        "val_confusion_matrix": matrix,
        "val_confident_mistakes": mistakes,
        "class_names": datamodule.class_names,
        "num_images": {s: datamodule.num_images(s) for s in ("train", "val", "test")},
        "skipped_images": datamodule.skipped,
        "fast_dev_run": bool(cfg.trainer.fast_dev_run),
        "seed": cfg.seed,
        "tags": list(cfg.tags),
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_children_mb": peak_rss_mb(resource.RUSAGE_CHILDREN),  # e.g. the ONNX export's on JAX
        "tensorflow_imported": tensorflow_imported(),
        "run_seconds": time.perf_counter() - started,
        "versions": package_versions(),
        "cpu": cpu_info(),
    }
    write_json(out / "metrics.json", metrics)
    plot_history(history, out / "accuracy.png", title=f"{cfg.experiment_name} ({metrics['backend']})")
    log.info("best val %.4f, test %s -> %s", metrics["best_val_accuracy"], metrics["test_accuracy"], out)
    return metrics


@hydra_entry("train")
def main(cfg: DictConfig):
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    metrics = run_job_in_fresh_process("catdog.train") if multirun else train(cfg)
    return metrics[cfg.optimized_metric] if cfg.optimized_metric else metrics


if __name__ == "__main__":
    main()
