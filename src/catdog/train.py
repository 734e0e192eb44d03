"""`python -m catdog.train`: compose, instantiate, fit, test; every output lands in the Hydra run directory."""

import json
import logging

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from catdog.backend import use_backend
from catdog.utils.config import build, hyperparameters
from catdog.entry import earlier_job, hydra_entry, result_table, run_job_in_fresh_process, runs_in_this_process
from catdog.errors import CatdogError

log = logging.getLogger("catdog.train")
RESULT = ("best_val_accuracy", "best_epoch", "epochs", "test_checkpoint", "test_accuracy", "test_loss",
          "median_epoch_seconds")


def instantiate(cfg: DictConfig):
    """The run's trainer (first: it sets the precision), data module (set up), task and loggers, from `cfg`."""
    use_backend(**cfg.backend)
    import keras

    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or cfg.seed < 0:
        raise CatdogError(f"seed={cfg.seed!r}: must be a non-negative integer.")
    keras.utils.set_random_seed(cfg.seed)
    callbacks = [build(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items() if c is not None]
    loggers = [build(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items() if c is not None]
    trainer = build(cfg.trainer, "trainer", callbacks=callbacks, loggers=loggers)
    datamodule = build(cfg.dataset, "dataset")
    datamodule.setup()
    task = build(cfg.model, "model", class_names=datamodule.class_names, image_size=datamodule.image_size)
    return trainer, datamodule, task, loggers


def train(cfg: DictConfig) -> dict:
    """Fit `cfg.model` on `cfg.dataset` with `cfg.trainer`, test it on the best checkpoint; returns the metrics."""
    trainer, datamodule, task, loggers = instantiate(cfg)
    for logger in loggers:
        logger.log_hyperparams(hyperparameters(cfg))
    trainer.fit(task, datamodule, ckpt_path=cfg.ckpt_path)
    return trainer.test(task, datamodule, ckpt_path=cfg.test_ckpt_path) if cfg.test else trainer.finalize()


@hydra_entry("train")
def main(cfg: DictConfig):
    job, run = earlier_job(cfg) if HydraConfig.get().mode == RunMode.MULTIRUN else ("new", None)
    if job == "finished":  # a sweep run again after a kill: its finished jobs stand
        log.info("Job %d finished in an earlier run of this sweep (%s): skipped.", HydraConfig.get().job.num, run)
        metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    elif not runs_in_this_process():  # the job states its own result
        metrics = run_job_in_fresh_process("catdog.train", cfg.backend.name, run if job == "interrupted" else None)
    else:
        if job == "interrupted":
            with open_dict(cfg):
                cfg.ckpt_path = str(run)
        metrics = train(cfg)
        if metrics:  # ranks > 0 have none
            log.info("%s", result_table(metrics, RESULT))
    return metrics[cfg.optimized_metric] if cfg.optimized_metric and metrics else metrics  # ranks > 0: {}


if __name__ == "__main__":
    main()
