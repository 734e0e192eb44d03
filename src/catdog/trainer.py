"""The Trainer (Lightning's role): fit in stages, checkpoints, resume, validate, test on the best, predict.

It runs Keras' own `fit` / `evaluate` / `predict` on the task (or, where a stage's backbone is frozen and the
feature cache applies, on `task.feature_task()` over cached features) and knows nothing of a task's insides
beyond ImageClassifier's methods: `compile`, `configure_optimizer`, `set_trainable_backbone_layers`,
`backbone_frozen`, `feature_task`.
"""

import logging
import os
import resource
import signal
import threading
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from catdog import distributed
from catdog.backend import tensorflow_imported
from catdog.callbacks import Callback, EpochTimer, ModelCheckpoint
from catdog.checkpoint import load_optimizer_state, load_variables, mark_finished, read_state, save_checkpoint
from catdog.config import PRECISIONS
from catdog.data.loaders import ArrayBatches
from catdog.errors import CatdogError
from catdog.history import summarise
from catdog.stages import as_stages

log = logging.getLogger("catdog.trainer")


class Trainer:
    """Trainer(max_epochs, stages, callbacks, loggers, precision, devices, fast_dev_run, limit_*_batches, ...).

    precision: a Keras dtype policy, set here, so build the Trainer before the task.
    devices: >1 trains data-parallel over that many JAX devices (keras.distribution.DataParallel), per process.
    num_processes, process_id, coordinator: a run of several processes (`catdog.distributed`; the `srun` step's
        variables fill in what is not given), data-parallel over all their devices. Rank 0 alone writes
        (checkpoints, loggers, the run lock, the manifest); ranks > 0 return {} from `test` and `finalize`.
        After a data-parallel fit (devices or processes > 1) the test, predictions and analyses run on one device
        (rank 0's), on a copy of the task: exact, where sharded batches would carry padding.
    stages: a list of `catdog.stages.Stage` (or dicts); none is one stage of `max_epochs`.
    feature_cache: a `catdog.features.FeatureCache`: how a stage with a frozen backbone trains its head.
    default_root_dir: where `ckpt_path="last"` and a checkpoint callback without a folder look.
    """

    def __init__(self, max_epochs=20, stages=None, callbacks=(), loggers=(), precision="float32", devices=1,
                 fast_dev_run=False, limit_train_batches=None, limit_val_batches=None, limit_test_batches=None,
                 feature_cache=None, default_root_dir=".", verbose="auto", num_processes=None, process_id=None,
                 coordinator=None):
        self._created = time.perf_counter()
        if precision not in PRECISIONS:
            raise CatdogError(f"trainer.precision={precision!r}: must be one of {', '.join(PRECISIONS)}.")
        for key, value in {"trainer.max_epochs": max_epochs, "trainer.devices": devices,
                           "trainer.limit_train_batches": limit_train_batches,
                           "trainer.limit_val_batches": limit_val_batches,
                           "trainer.limit_test_batches": limit_test_batches}.items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise CatdogError(f"{key}={value!r}: must be a positive integer.")
        if fast_dev_run:
            n = 1 if fast_dev_run is True else int(fast_dev_run)
            limit_train_batches = limit_val_batches = limit_test_batches = n
        self.processes = distributed.processes(num_processes, process_id, coordinator)
        self.fast_dev_run = bool(fast_dev_run)
        self.stages = as_stages(stages, max_epochs)
        self.callbacks = [c for c in callbacks if c is not None]
        self.loggers = [lg for lg in loggers if lg is not None] if self.is_global_zero else []
        self.limits = {"train": limit_train_batches, "val": limit_val_batches, "test": limit_test_batches}
        self.precision, self.devices, self.feature_cache = precision, devices, feature_cache
        self.default_root_dir, self.verbose = Path(default_root_dir), verbose
        self.history: list[dict] = []  # every epoch's logs, across stages and resumes
        self.current_epoch, self.stage_index, self.stage_start = 0, 0, 0
        self.datamodule = self.task = self._fit_task = self._local_task = None
        self._left = False  # after a data-parallel fit: each process on its own
        self.callback_metrics: dict = {}
        self._setup_seconds = None  # process start to the first epoch
        self.timer = EpochTimer()
        keras.config.set_dtype_policy(precision)
        _distribute(devices, self.processes)
        _check_precision_fits(precision)
        if self.processes.count > 1:
            runs = distributed.gather_text(str(self.run_dir.resolve()))
            if len(set(runs)) > 1:
                raise CatdogError(f"The processes of one run were given different run directories ({', '.join(runs)}"
                                  " by rank): give every process the same hydra.run.dir.")

    @property
    def is_global_zero(self) -> bool:
        """Whether this process writes the run: the only one, or rank 0 of several."""
        return self.processes.index == 0

    # --- the callbacks the loop itself relies on ---
    @property
    def checkpoint_callback(self) -> ModelCheckpoint | None:
        return next((c for c in self.callbacks if isinstance(c, ModelCheckpoint)), None)

    def _stateful(self) -> dict:
        """Callbacks and loggers by a stable key, for their state in a checkpoint."""
        keyed, seen = {}, {}
        for c in [*self.loggers, *self.callbacks]:
            if not isinstance(c, Callback):
                continue
            name = type(c).__name__
            seen[name] = seen.get(name, -1) + 1
            keyed[f"{name}:{seen[name]}"] = c
        return keyed

    def _keras_callbacks(self):
        checkpoints = [c for c in self.callbacks if isinstance(c, ModelCheckpoint)]
        others = [c for c in self.callbacks if not isinstance(c, ModelCheckpoint)]
        for c in [*self.loggers, *self.callbacks]:
            if isinstance(c, Callback):
                c.trainer = self
        # a signal stops after the batch; timings, then the epoch is recorded, logged and checkpointed
        return [self._stopper, self.timer, _Recorder(self), *self.loggers, *others, *checkpoints]

    # --- checkpoints ---
    def state_dict(self, epochs_done: int) -> dict:
        return {"format": 1, "epoch": epochs_done, "stage": self.stage_index, "stage_start": self.stage_start,
                "stages": [s.name for s in self.stages], "history": self.history[:epochs_done],
                "fit_complete": False, "callbacks": {k: c.state_dict() for k, c in self._stateful().items()}}

    def save_checkpoint(self, path, epochs_done: int, **state) -> None:
        """The task and this trainer's state (plus the training optimizer's variables) to `path`, atomically;
        rank 0's alone (Keras' saving makes variables of its own: local ones, so the others need not join)."""
        if not self.is_global_zero:
            return
        fitting = self._fit_task
        variables = None if fitting is None else {"optimizer": fitting.optimizer.variables,
                                                  "non_trainable": fitting.non_trainable_variables}
        with distributed.local_scope():
            save_checkpoint(path, self.task, {**self.state_dict(epochs_done), **state}, variables)

    def _resolve(self, ckpt_path) -> Path:
        path = Path(ckpt_path).expanduser() if ckpt_path not in ("last", "best") else None
        if ckpt_path in ("last", "best"):
            folder = Path(self.checkpoint_callback.dirpath) if self.checkpoint_callback else (
                self.default_root_dir / "checkpoints")
            path = folder / f"{ckpt_path}.keras"
        elif path.is_dir():
            path = path / "checkpoints" / "last.keras" if (path / "checkpoints").is_dir() else path / "last.keras"
        if not path.is_file():
            raise CatdogError(f"ckpt_path={ckpt_path}: no checkpoint at {path}.")
        return path

    # --- fit ---
    def fit(self, task, datamodule, ckpt_path=None):
        """Run every stage (resuming from `ckpt_path`: "last", a run directory or a checkpoint file); returns
        the per-epoch history."""
        self._check_precision(task)
        if self._left:
            raise CatdogError("This trainer's data-parallel fit is over; build a new Trainer (in new processes, for "
                              "several) for another one.")
        self.task, self.datamodule = task, datamodule
        self._lock = _RunLock(self.run_dir) if self.is_global_zero else None
        try:
            history = self._fit(task, datamodule, ckpt_path)
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        if self.devices > 1 or self.processes.count > 1:
            self._leave(task)
        return history

    def _leave(self, task):
        """End of a data-parallel fit: rank 0 copies the task onto one device of its own, then every process
        leaves the distribution (and the run of processes)."""
        if self.is_global_zero:
            with distributed.local_scope():
                self._local_task = type(task).from_config(task.get_config())
                self._local_task.set_weights(task.get_weights())
        if self.processes.count > 1:
            distributed.shutdown()
        keras.distribution.set_distribution(None)
        self._left = True
        log.info("Data-parallel fit over%s", "; testing on one device" if self.is_global_zero else "")

    def _alone(self, task):
        """The task to evaluate or predict with: `task`, or after a data-parallel fit rank 0's copy of it."""
        if not self._left:
            return task
        if not self.is_global_zero:
            raise CatdogError(f"Process {self.processes.index}: after a multi-process fit, process 0 alone "
                              "evaluates and predicts.")
        return self._local_task if task is self.task else task

    @property
    def run_dir(self) -> Path:
        """The run's folder: the checkpoint callback's parent, else default_root_dir."""
        checkpoint = self.checkpoint_callback
        return Path(checkpoint.dirpath).parent if checkpoint else self.default_root_dir

    def _fit(self, task, datamodule, ckpt_path):
        last = self.checkpoint_callback and Path(self.checkpoint_callback.last_model_path)
        if ckpt_path is None and last and last.is_file():
            state = read_state(last)
            run = last.parent.parent
            if state.get("finished"):
                raise RunExists(f"{run} holds a finished run, which is never restarted or overwritten; write this "
                                "run elsewhere (another hydra.run.dir).", None)
            raise RunExists(f"{run} holds an interrupted run (after epoch {state['epoch']}), which is never "
                            "overwritten; resume it with ckpt_path, or write this run elsewhere.", run)
        state = path = None
        if ckpt_path is not None:
            path = self._resolve(ckpt_path)
            state = read_state(path)
            for last_of_run in {path.parent / "last.keras", last} - {None}:
                if last_of_run.is_file() and read_state(last_of_run).get("finished"):
                    raise RunExists(f"ckpt_path={ckpt_path}: its run is finished (fit and test), and a finished "
                                    "run is never restarted or overwritten.", None)
            names = [s.name for s in self.stages]
            if state["stages"] != names:
                raise CatdogError(f"ckpt_path={ckpt_path} was trained in the stages {state['stages']}, not {names}; "
                                  "resume it with the configuration it started with.")
            with warnings.catch_warnings():  # the optimizer's state is restored with its stage
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                task.load_weights(path)
            self.history, self.current_epoch = list(state["history"]), state["epoch"]
            mid_stage = state["epoch"] > state["stage_start"]
            for key, callback in self._stateful().items():  # a stage-scoped one only within its stage
                if key in state["callbacks"] and (mid_stage or not getattr(callback, "stage_scoped", False)):
                    callback.load_state_dict(state["callbacks"][key])
            log.info("Resuming from %s after epoch %d", path, state["epoch"])
            if state.get("fit_complete"):
                log.info("Its fit is complete: nothing left to train.")
                return self.history
        if hasattr(datamodule, "write_manifest") and self.is_global_zero:
            datamodule.write_manifest(self.run_dir / "manifest.csv")
        with _StopOnSignal(self) as self._stopper:
            self._fit_stages(task, datamodule, state, path)
        return self.history

    def _fit_stages(self, task, datamodule, state, path):
        for index, stage in enumerate(self.stages):
            if state is not None and index < state["stage"]:
                continue
            resume = state is not None and index == state["stage"] and state["epoch"] > state["stage_start"]
            self.stage_index = index
            self.stage_start = state["stage_start"] if resume else self.current_epoch
            self._fit_stage(task, datamodule, stage, path if resume else None)
            self.save_checkpoint_if_enabled(self.current_epoch, stage=index + 1, stage_start=self.current_epoch)
            self._stopper.check()
        self.stage_index = len(self.stages)
        self.save_checkpoint_if_enabled(self.current_epoch, fit_complete=True)

    def save_checkpoint_if_enabled(self, epochs_done, **state):
        checkpoint = self.checkpoint_callback
        if checkpoint is not None and checkpoint.save_last:
            self.save_checkpoint(checkpoint.last_model_path, epochs_done, **state)

    def _fit_stage(self, task, datamodule, stage, resume_path):
        unfreeze = stage.unfreeze_backbone_layers
        if unfreeze is None and resume_path is not None:  # "as it is": as the stages before this one left it
            unfreeze = next((s.unfreeze_backbone_layers for s in reversed(self.stages[:self.stage_index])
                             if s.unfreeze_backbone_layers is not None), None)
        if unfreeze is not None:
            trainable = task.set_trainable_backbone_layers(unfreeze)
            log.info("Stage %s: %d backbone layers with weights train (BatchNormalization stays frozen)",
                     stage.name, trainable if unfreeze else 0)
        fit_task, data = self._strategy(task, datamodule)
        self._stopper.check()  # a signal during the feature pass
        self._fit_task = fit_task
        train = data.train_dataloader(limit_batches=self.limits["train"], first_epoch=self.current_epoch)
        train, val = self._shard(train), self._shard(data.val_dataloader(limit_batches=self.limits["val"]))
        class_weight = datamodule.class_weights() if hasattr(datamodule, "class_weights") else None
        if _sharded(train):  # sharded batches carry sample weights, which take the class weights
            train.class_weight, class_weight = class_weight, None
        optimizer = task.configure_optimizer(stage.learning_rate)
        fit_task.compile(optimizer=optimizer)
        if _sharded(train) or _sharded(val):
            _weigh_metrics(fit_task, optimizer)
        if resume_path is not None:
            load_optimizer_state(resume_path, fit_task.optimizer, fit_task.trainable_variables)
            load_variables(resume_path, "non_trainable", fit_task.non_trainable_variables)  # Dropout's seeds
        epochs = 1 if self.fast_dev_run else stage.epochs
        log.info("Stage %s: epochs %d-%d, %d trainable of %d parameters", stage.name, self.stage_start + 1,
                 self.stage_start + epochs, _count(fit_task.trainable_weights), task.count_params())
        fit_task.fit(
            train, validation_data=val, steps_per_epoch=data.steps_per_epoch(self.limits["train"]),
            initial_epoch=self.current_epoch, epochs=self.stage_start + epochs,
            callbacks=self._keras_callbacks(), verbose=self.verbose,
            shuffle=False,  # the training pipeline reshuffles every epoch itself
            class_weight=class_weight,
        )

    def _shard(self, loader):
        """`loader`, reading this process's shard of every batch while the fit's distribution is in force."""
        shard = distributed.batch_shard()
        if shard is None:
            return loader
        if isinstance(loader, ArrayBatches):
            loader.shard = shard
        elif self.processes.count > 1:
            raise CatdogError(f"trainer.num_processes={self.processes.count} needs loaders that give each process "
                              "its shard of every batch: dataset.loader=numpy (catdog's ArrayBatches).")
        return loader

    def _strategy(self, task, datamodule):
        """(model to fit, data to fit it on): the task on images, or its feature task on cached features (not
        while several processes train together: each would compute and cache the features itself)."""
        alone = self.processes.count == 1 or self._left
        if alone and self.feature_cache is not None and self.feature_cache.applies(task):
            max_images = ({k: n * datamodule.batch_size for k, n in self.limits.items() if n}
                          if self.fast_dev_run else {})
            return task.feature_task(), self.feature_cache.data(task, datamodule, max_images)
        return task, datamodule

    def _check_precision(self, task):
        policy = task.dtype_policy.name
        if policy != self.precision:
            raise CatdogError(f"The task was built with dtype policy {policy}, but trainer.precision="
                              f"{self.precision}: build the Trainer before the task.")

    # --- evaluation ---
    def _load(self, task, ckpt_path) -> str:
        """Load the weights `ckpt_path` names into `task`; returns what was used: best, last, a path, or
        "current" (the weights as they are)."""
        if ckpt_path is None:
            return "current"
        if ckpt_path == "best" and not (self.checkpoint_callback and self.checkpoint_callback.save_best
                                        and Path(self.checkpoint_callback.best_model_path).is_file()):
            log.warning("ckpt_path=best, but there is no best checkpoint (callbacks.model_checkpoint); "
                        "using the current weights.")
            return "current"
        with warnings.catch_warnings():  # a checkpoint of another stage has another optimizer: weights only here
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            task.load_weights(self._resolve(ckpt_path))
        return ckpt_path if ckpt_path in ("best", "last") else str(ckpt_path)

    def _evaluate(self, task, datamodule, split):
        task = self._alone(task)
        fit_task, data = self._strategy(task, datamodule)
        fit_task.compile()
        loader = self._shard(getattr(data, f"{split}_dataloader")(
            limit_batches=self.limits["val" if split == "val" else split]))
        if _sharded(loader):
            _weigh_metrics(fit_task)
        return fit_task.evaluate(loader, verbose=0, return_dict=True)

    def validate(self, task, datamodule, ckpt_path=None) -> dict:
        task = self._alone(task)
        self._load(task, ckpt_path)
        return self._evaluate(task, datamodule, "val")

    def test(self, task, datamodule, ckpt_path="best") -> dict:
        """Test metrics (test_accuracy, test_loss, ...) of the `ckpt_path` weights; logged with the fit's summary
        and the run's provenance, then the loggers are finalized."""
        if self._left and not self.is_global_zero:
            return {}
        if not self._left:
            self.task = task
        self.datamodule, task = datamodule, self._alone(task)
        used = self._load(task, ckpt_path)
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
        datamodule = self.datamodule
        describe = getattr(datamodule, "describe", None)
        self.callback_metrics = {**self.summary(datamodule), **(describe() if describe else {}), **(metrics or {})}
        failed = None
        try:
            for logger in self.loggers:  # each one on its own: a failing store does not cost the others theirs
                try:
                    logger.log_metrics(self.callback_metrics, step=self.current_epoch)
                    logger.log_provenance(self.provenance())
                    logger.finalize("success")
                except Exception as exc:  # loggers' stores (files, databases) raise many types
                    log.error("Logger %s failed: %s: %s", type(logger).__name__, type(exc).__name__, exc)
                    failed = failed or exc
            if failed is not None:
                raise CatdogError(f"A logger could not record this run ({failed}); the checkpoints are intact, and "
                                  "the run can be tested again with ckpt_path.") from failed
            checkpoint = self.checkpoint_callback
            if checkpoint is not None and checkpoint.save_last and Path(checkpoint.last_model_path).is_file():
                mark_finished(checkpoint.last_model_path)
        finally:
            if getattr(self, "_lock", None) is not None:
                self._lock.release()
        return self.callback_metrics

    def predict_split(self, task, datamodule, split="val") -> np.ndarray:
        """Class probabilities for a data module's split, on cached features where the feature cache applies."""
        model, data = self._strategy(self._alone(task), datamodule)
        limit = self.limits["val" if split == "val" else split]
        return self.predict(model, getattr(data, f"{split}_dataloader")(limit_batches=limit))

    def predict(self, task, dataloader, ckpt_path=None) -> np.ndarray:
        """Class probabilities for every batch of `dataloader` (or of a data module's predict_dataloader)."""
        task = self._alone(task)
        self._load(task, ckpt_path)
        if hasattr(dataloader, "predict_dataloader"):
            dataloader = dataloader.predict_dataloader()
        if self.processes.count > 1 and not self._left:
            raise CatdogError("Keras cannot gather the predictions of several processes; predict after the fit, "
                              "which process 0 does alone.")
        from catdog.inference import softmax

        return softmax(task.predict(dataloader, verbose=0))

    # --- what a run reports ---
    def summary(self, datamodule) -> dict:
        history = {k: [row.get(k) for row in self.history] for k in dict.fromkeys(k for r in self.history for k in r)}
        if not history.get("val_accuracy"):
            return {}
        limit = self.limits["train"]
        images = datamodule.num_images("train")
        per_epoch = min(images, limit * datamodule.batch_size) if limit else images
        return {**summarise(history, self._setup_seconds or 0.0, per_epoch),
                "params_total": int(self.task.count_params()),
                "params_trainable": _count(self.task.trainable_weights),
                "class_names": self.task.class_names, "stages": [s.name for s in self.stages]}

    def provenance(self) -> dict:
        from catdog.run_info import cpu_info, package_versions, peak_rss_mb

        return {"backend": keras.backend.backend(), "devices": self.devices, "processes": self.processes.count,
                "platform": _platform(), "precision": self.precision,
                "xla_flags": os.environ.get("XLA_FLAGS", ""),
                "jax_compilation_cache_dir": os.environ.get("JAX_COMPILATION_CACHE_DIR"),
                "feature_runtime": getattr(self.feature_cache, "resolved_runtime", None),
                "peak_rss_mb": peak_rss_mb(), "peak_rss_children_mb": peak_rss_mb(resource.RUSAGE_CHILDREN),
                "tensorflow_imported": tensorflow_imported(),
                "run_seconds": time.perf_counter() - self._created, "versions": package_versions(),
                "cpu": cpu_info()}


class Interrupted(CatdogError):
    """Training stopped by SIGINT or SIGTERM after a batch; the last complete checkpoint is kept. The command
    exits with 128 + the signal's number (130, 143), as a shell reports a process ended by it."""

    def __init__(self, signum, epochs_done, run_dir):
        name = signal.Signals(signum).name
        super().__init__(f"Stopped by {name}; the last complete checkpoint is after epoch {epochs_done}.")
        self.exit_code, self.run_dir = 128 + signum, run_dir


class _StopOnSignal(keras.callbacks.Callback):
    """While fitting: the first SIGINT or SIGTERM stops the fit after the current batch (a second one at once),
    with `Interrupted`; Slurm and Kubernetes send SIGTERM before they kill."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, trainer):
        super().__init__()
        self.trainer, self.signum, self.previous = trainer, None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, kind, value, traceback):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        if kind is None:
            self.check()  # a signal during the last epoch's saves

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("%s: stopping after this batch (again to stop at once).", signal.Signals(signum).name)

    def check(self):
        if self.signum is not None:
            checkpoint = self.trainer.checkpoint_callback
            raise Interrupted(self.signum, self.trainer.current_epoch, self.trainer.run_dir if checkpoint else None)

    def on_train_batch_end(self, batch, logs=None):
        self.check()

    def on_test_batch_end(self, batch, logs=None):
        self.check()

    def on_epoch_begin(self, epoch, logs=None):
        self.check()


class _RunLock:
    """An exclusive lock on `run_dir/.lock` while a run writes there: a writer in another process is refused.
    Within one process the lock is shared, so a notebook can fit again after a failed fit."""

    held: dict = {}

    def __init__(self, run_dir):
        import fcntl

        run_dir = Path(run_dir).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / ".lock"
        if self.path in self.held and not self.held[self.path].closed:
            return
        file = open(self.path, "a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            file.close()
            raise CatdogError(f"{run_dir} is in use by another catdog run ({holder}); two runs never share a run "
                              "directory. Wait for it, or write this run elsewhere (another hydra.run.dir).") from None
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()}")
        file.flush()
        self.held[self.path] = file

    def release(self):
        file = self.held.pop(self.path, None)
        if file is not None:
            file.close()  # closing the file releases the lock


class RunExists(CatdogError):
    """Training into a folder that holds a run; `run_dir` is where `ckpt_path` would resume from."""

    def __init__(self, message, run_dir):
        super().__init__(message)
        self.run_dir = run_dir


class _Recorder(keras.callbacks.Callback):
    """Keeps the trainer's epoch count and history current before loggers and checkpoints see an epoch."""

    def __init__(self, trainer):
        super().__init__()
        self.trainer = trainer

    def on_epoch_begin(self, epoch, logs=None):
        if self.trainer._setup_seconds is None:
            self.trainer._setup_seconds = time.perf_counter() - self.trainer._created

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, "stage": self.trainer.stages[self.trainer.stage_index].name,
               **{k: float(v) for k, v in (logs or {}).items()}}
        self.trainer.history = [r for r in self.trainer.history if r["epoch"] < epoch] + [row]
        self.trainer.current_epoch = epoch + 1


def _count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def _sharded(loader) -> bool:
    """Whether `loader` yields this process's shard of every batch (`Trainer._shard`)."""
    return isinstance(loader, ArrayBatches) and loader.shard is not None


def _weigh_metrics(task, optimizer="auto") -> None:
    """Compile `task` again with its metrics as weighted metrics: sharded batches weigh their padding 0, and
    Keras gives sample weights to weighted metrics alone."""
    metrics = task.get_compile_config().get("metrics")
    if metrics:
        task.compile(optimizer=optimizer, metrics=[], weighted_metrics=keras.saving.deserialize_keras_object(metrics))


def _distribute(devices: int, run) -> None:
    """Data-parallel training (keras.distribution.DataParallel, JAX) over `devices` devices of each of the run's
    processes, once they have joined (`catdog.distributed`)."""
    if devices == 1 and run.count == 1:
        return
    if keras.backend.backend() != "jax":
        what = f"trainer.devices={devices}" if run.count == 1 else f"trainer.num_processes={run.count}"
        raise CatdogError(f"{what} needs backend=jax (keras.distribution.DataParallel); on TensorFlow, Keras' "
                          "distribution API is an unfinished prototype (docs/scale_out.md).")
    if run.count > 1:
        distributed.initialize(run)
    distribution = distributed.data_parallel(devices, run)
    keras.distribution.set_distribution(distribution)
    log.info("Data parallel over %s (process %d of %d)", distribution.device_mesh.devices.tolist(), run.index,
             run.count)


def _platform() -> str:
    """The platform Keras computes on: cpu, gpu or tpu."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend()
    import tensorflow as tf

    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def _check_precision_fits(precision: str) -> None:
    """Warn where the dtype policy is slow on this hardware: float16 on a CPU, bfloat16 on a GPU before Ampere.
    (Keras wraps the optimizer in a LossScaleOptimizer for mixed_float16 wherever it runs.)"""
    if precision == "float32":
        return
    platform = _platform()
    if "float16" in precision and "bfloat16" not in precision and platform == "cpu":
        log.warning("trainer.precision=%s on a CPU, which computes float16 slowly; mixed_bfloat16 is fast on "
                    "CPUs with AMX.", precision)
    if "bfloat16" in precision and platform == "gpu" and keras.backend.backend() == "jax":
        import jax

        capability = getattr(jax.local_devices()[0], "compute_capability", None)
        if capability and float(capability) < 8:
            log.warning("trainer.precision=%s on a GPU of compute capability %s: bfloat16 is fast from 8.0 "
                        "(Ampere) on; mixed_float16 suits this GPU.", precision, capability)
