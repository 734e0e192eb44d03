"""The Trainer (Lightning's role): the one class users call to fit in stages, validate, test on the best
checkpoint and predict. Its concerns live beside it: checkpoints (`checkpoint`), the run directory (`run_dir`),
signals (`signals`), devices and processes (`strategy`), precision (`precision`), the stages (`fit_loop`).

It runs Keras' own `fit` / `evaluate` / `predict` on the task (or, where a stage's backbone is frozen and the
feature cache applies, on `task.feature_task()` over cached features) and knows nothing of a task's insides
beyond ImageClassifier's methods: `compile`, `configure_optimizer`, `set_trainable_backbone_layers`,
`backbone_frozen`, `feature_task`.
"""

import logging
import sys
import time
from pathlib import Path

import keras
import numpy as np

from catdog.analysis.history import summarise
from catdog.callbacks import EpochTimer, ModelCheckpoint
from catdog.data.base import DataModule, check_datamodule
from catdog.errors import CatdogError
from catdog.training.checkpoint import CheckpointConnector
from catdog.training.fit_loop import FitLoop, count
from catdog.training.lr_finder import lr_find
from catdog.training.precision import AUTO, fit_to_task, set_precision, warn_if_slow
from catdog.training.run_dir import RunDirectory, describe, provenance
from catdog.training.signals import Interrupted, StopOnSignal
from catdog.training.stages import as_stages
from catdog.training.strategy import Strategy, platform, sharded, weigh_metrics

log = logging.getLogger("catdog.trainer")


class Trainer:
    """Trainer(max_epochs, stages, callbacks, loggers, precision, devices, fast_dev_run, limit_*_batches, ...).

    precision: auto (chosen for the hardware and the task: `catdog.training.precision`) or a Keras dtype policy;
        set here, so build the Trainer before the task.
    devices: >1 trains data-parallel over that many JAX devices (keras.distribution.DataParallel), per process.
    num_processes, process_id, coordinator: a run of several processes (`catdog.training.distributed`; the
        `srun` step's variables fill in what is not given), data-parallel over all their devices. Rank 0 alone
        writes (checkpoints, loggers, the run lock, the manifest); ranks > 0 return {} from `test` and `finalize`.
    stages: a list of `catdog.training.stages.Stage` (or dicts); none is one stage of `max_epochs`.
    feature_cache: a `catdog.training.FeatureCache`: how a stage with a frozen backbone trains its head.
    default_root_dir: where `ckpt_path="last"` and a checkpoint callback without a folder look.
    verbose: auto (Keras' progress bar on a terminal, else a log line per epoch), or Keras' 0, 1, 2.
    """

    def __init__(self, max_epochs=20, stages=None, callbacks=(), loggers=(), precision=AUTO, devices=1,
                 fast_dev_run=False, limit_train_batches=None, limit_val_batches=None, limit_test_batches=None,
                 feature_cache=None, default_root_dir=".", verbose="auto", num_processes=None, process_id=None,
                 coordinator=None):
        self.created = time.perf_counter()
        for key, value in {"trainer.max_epochs": max_epochs, "trainer.devices": devices,
                           "trainer.limit_train_batches": limit_train_batches,
                           "trainer.limit_val_batches": limit_val_batches,
                           "trainer.limit_test_batches": limit_test_batches}.items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise CatdogError(f"{key}={value!r}: must be a positive integer.")
        if fast_dev_run:
            n = 1 if fast_dev_run is True else int(fast_dev_run)
            limit_train_batches = limit_val_batches = limit_test_batches = n
        self.strategy = Strategy(devices, num_processes, process_id, coordinator, feature_cache)
        self.fast_dev_run = bool(fast_dev_run)
        self.stages = as_stages(stages, max_epochs)
        self.callbacks = [c for c in callbacks if c is not None]
        self.loggers = [lg for lg in loggers if lg is not None] if self.is_global_zero else []
        self.limits = {"train": limit_train_batches, "val": limit_val_batches, "test": limit_test_batches}
        self.devices, self.feature_cache = devices, feature_cache
        self.default_root_dir, self.verbose = Path(default_root_dir), verbose
        self.history: list[dict] = []  # every epoch's logs, across stages and resumes
        self.current_epoch, self.stage_index, self.stage_start = 0, 0, 0
        self.datamodule = self.task = self.fit_task = self._announced = None
        self.callback_metrics: dict = {}
        self.setup_seconds = None  # process start to the first epoch
        self.epoch_complete = True  # False while an epoch stopped before its last batch is ending
        self.timer = EpochTimer()
        self.checkpointing = CheckpointConnector(self)
        self.run = RunDirectory(self.run_dir)
        self.strategy.setup()
        self.precision_choice = set_precision(precision)  # auto asks the devices: after the strategy's setup
        warn_if_slow(self.precision)
        self.strategy.check_run_dir(self.run_dir)
        for c in [*self.loggers, *self.callbacks]:
            c.trainer = self

    @property
    def precision(self) -> str:
        """The dtype policy the run computes in (`auto` resolved, and fitted to the task once one is given)."""
        return self.precision_choice.policy

    @property
    def is_global_zero(self) -> bool:
        """Whether this process writes the run: the only one, or rank 0 of several."""
        return self.strategy.is_global_zero

    @property
    def checkpoint_callback(self) -> ModelCheckpoint | None:
        return self.checkpointing.callback

    @property
    def epoch_lines(self) -> bool:
        """verbose=auto on output that is no terminal (a file, a pipe, CI, Slurm), where catdog's INFO lines
        show (its command lines set that up): one log line an epoch."""
        return self.verbose == "auto" and not sys.stdout.isatty() and log.isEnabledFor(logging.INFO)

    @property
    def keras_verbose(self):
        """verbose=auto: Keras' progress bar on a terminal, nothing beside the epoch lines, else Keras' line an
        epoch (a notebook); 0, 1 or 2 as Keras takes them."""
        if self.verbose != "auto":
            return self.verbose
        return 1 if sys.stdout.isatty() else 0 if self.epoch_lines else 2

    @property
    def run_dir(self) -> Path:
        """The run's folder: the checkpoint callback's parent, else default_root_dir."""
        checkpoint = self.checkpoint_callback
        return Path(checkpoint.dirpath).parent if checkpoint else self.default_root_dir

    def save_checkpoint(self, path, epochs_done: int, **state) -> None:
        """The task and this trainer's state to `path` (what `ModelCheckpoint` calls)."""
        self.checkpointing.save(path, epochs_done, **state)

    def copy_checkpoint(self, source, path) -> None:
        """`source`, saved by `save_checkpoint` at this same moment, to `path` too (best.keras as last.keras)."""
        self.checkpointing.copy(source, path)

    def dev_run_images(self, datamodule) -> dict:
        """{split: n}: the images a fast_dev_run's batches hold, so the feature pass computes no more."""
        return {k: n * datamodule.batch_size for k, n in self.limits.items() if n} if self.fast_dev_run else {}

    # --- fit ---
    def fit(self, task, datamodule, ckpt_path=None) -> list[dict]:
        """Run every stage (resuming from `ckpt_path`: "last", a run directory or a checkpoint file); returns
        the per-epoch history."""
        check_datamodule(datamodule, "fit", ("train_dataloader", "val_dataloader", "num_images"))
        self.precision_choice = fit_to_task(task, self.precision_choice, platform())
        self._announce(datamodule)
        self.strategy.check_fit()
        self.task, self.datamodule = task, datamodule
        self.strategy.lock_run(self.run)
        try:
            resume = self.checkpointing.restore_for_fit(task, ckpt_path)
            if resume is not None:
                self.history, self.current_epoch = list(resume.state["history"]), resume.state["epoch"]
            if resume is not None and resume.state.get("fit_complete"):
                log.info("Its fit is complete: nothing left to train.")
            else:
                if self.is_global_zero:
                    datamodule.write_manifest(self.run_dir / "manifest.csv")
                with StopOnSignal(self._where_stopped) as stopper:
                    FitLoop(self).run(task, datamodule, resume, stopper)
        except BaseException as exc:
            self.run.release()
            self._abort_loggers("killed" if isinstance(exc, (Interrupted, KeyboardInterrupt)) else "failed")
            raise
        self.strategy.leave(task)
        return self.history

    def _abort_loggers(self, status) -> None:
        for logger in self.loggers:
            try:
                logger.finalize(status)
            except Exception as exc:  # loggers' stores raise many types; the fit's own error is the one to show
                log.error("Logger %s could not record the %s fit: %s: %s", type(logger).__name__, status,
                          type(exc).__name__, exc)

    def _announce(self, datamodule) -> None:
        if self._announced is not datamodule:
            self._announced = datamodule
            log.info("%s", describe(self, datamodule))

    def _where_stopped(self):
        return self.current_epoch, self.run_dir if self.checkpoint_callback else None

    def lr_find(self, task, datamodule, min_lr=1e-7, max_lr=1.0, num_training=100) -> dict:
        """Lightning's `Tuner.lr_find`: a short sweep of exponentially growing learning rates on the first stage,
        the task's weights given back after it; {"lrs", "losses", "suggestion"} (`catdog.training.lr_finder`)."""
        check_datamodule(datamodule, "lr_find", ("train_dataloader",))
        self.precision_choice = fit_to_task(task, self.precision_choice, platform())
        return lr_find(self, task, datamodule, min_lr, max_lr, num_training)

    # --- evaluation ---
    def _evaluate(self, task, datamodule, split) -> dict:
        self.precision_choice = fit_to_task(task, self.precision_choice, platform())
        fit_task, data = self.strategy.target(task, datamodule, self.dev_run_images(datamodule))
        if not fit_task.compiled:
            fit_task.compile()
        loader = self.strategy.shard(getattr(data, f"{split}_dataloader")(limit_batches=self.limits[split]))
        if sharded(loader):
            weigh_metrics(fit_task)
        return fit_task.evaluate(loader, verbose=0, return_dict=True)

    def validate(self, task, datamodule, ckpt_path=None) -> dict:
        check_datamodule(datamodule, "validate", ("val_dataloader",))
        task = self.strategy.alone(task, self.task)
        self.checkpointing.load_for_evaluation(task, ckpt_path)
        return self._evaluate(task, datamodule, "val")

    def test(self, task, datamodule, ckpt_path="best") -> dict:
        """Test metrics (test_accuracy, test_loss, ...) of the `ckpt_path` weights; logged with the fit's summary
        and the run's provenance, then the loggers are finalized."""
        check_datamodule(datamodule, "test", ("test_dataloader", "num_images"))
        if self.strategy.left and not self.is_global_zero:
            return {}
        if not self.strategy.left:
            self.task = task
        self.datamodule, task = datamodule, self.strategy.alone(task, self.task)
        self.precision_choice = fit_to_task(task, self.precision_choice, platform())  # before the Run line names it
        self._announce(datamodule)
        used = self.checkpointing.load_for_evaluation(task, ckpt_path)
        tested = self._evaluate(task, datamodule, "test") if datamodule.num_images("test") else {}
        metrics = {f"test_{k}": float(v) for k, v in tested.items()}
        metrics["test_checkpoint"] = used
        for callback in self.callbacks:
            if hasattr(callback, "on_tested"):
                metrics.update(callback.on_tested(self, task) or {})
        return self.finalize(metrics)

    def finalize(self, metrics=None) -> dict:
        """Log the fit's summary, the data's description, `metrics` and the provenance; finalize the loggers and
        mark the run finished (a later fit of it is refused). `test` calls it; call it yourself to skip the test."""
        if not self.is_global_zero:
            return {}
        described = self.datamodule.describe() if self.datamodule is not None else {}
        self.callback_metrics = {**self.summary(), **described, **(metrics or {})}
        failed = None
        try:
            for logger in self.loggers:  # each one on its own: a failing store does not cost the others theirs
                try:
                    logger.log_metrics(self.callback_metrics, step=self.current_epoch)
                    logger.log_provenance(provenance(self))
                    logger.finalize("success")
                except Exception as exc:  # loggers' stores (files, databases) raise many types
                    log.error("Logger %s failed: %s: %s", type(logger).__name__, type(exc).__name__, exc)
                    failed = failed or exc
            if failed is not None:
                raise CatdogError(f"A logger could not record this run ({failed}); the checkpoints are intact, and "
                                  "the run can be tested again with ckpt_path.") from failed
            checkpoint = self.checkpoint_callback
            if checkpoint is not None and checkpoint.save_last and Path(checkpoint.last_model_path).is_file():
                self.run.mark_finished()
        finally:
            self.run.release()
        return self.callback_metrics

    def predict(self, task, data, ckpt_path=None, split="predict") -> np.ndarray:
        """Class probabilities for every batch of a loader, or of a data module's `split` (its predict_dataloader
        by default), on cached features where the feature cache applies. The trainer's callbacks see the batches."""
        task = self.strategy.alone(task, self.task)
        self.precision_choice = fit_to_task(task, self.precision_choice, platform())
        self.checkpointing.load_for_evaluation(task, ckpt_path)
        self.strategy.check_predict()
        model, loader = task, data
        if isinstance(data, DataModule):
            check_datamodule(data, "predict", (f"{split}_dataloader",))
            self._announce(data)
            model, target = self.strategy.target(task, data, self.dev_run_images(data))
            loader = (target.predict_dataloader() if split == "predict" else
                      getattr(target, f"{split}_dataloader")(limit_batches=self.limits[split]))
        logits = model.predict(loader, verbose=0, callbacks=self.callbacks)
        return keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))

    # --- what a run reports ---
    def summary(self) -> dict:
        history = {k: [row.get(k) for row in self.history] for k in dict.fromkeys(k for r in self.history for k in r)}
        if not history.get("val_accuracy"):
            return {}
        limit, datamodule = self.limits["train"], self.datamodule
        images = datamodule.num_images("train")
        per_epoch = min(images, limit * datamodule.batch_size) if limit else images
        return {**summarise(history, self.setup_seconds or 0.0, per_epoch),
                "params_total": int(self.task.count_params()), "params_trainable": count(self.task.trainable_weights),
                "class_names": self.task.class_names, "stages": [s.name for s in self.stages]}
