"""Where and on what a stage trains (Lightning's strategy and accelerator connector): one device, data parallel over
several (`keras.distribution.DataParallel`, JAX), several processes (`catdog.training.distributed`), and the
feature cache for a frozen backbone."""

import logging

import keras

from catdog.data.loaders import ArrayBatches
from catdog.errors import CatdogError
from catdog.training import distributed

log = logging.getLogger("catdog.trainer")


class Strategy:
    """The devices and processes of a run. After a data-parallel fit (devices or processes > 1) `leave` puts rank
    0's copy of the task on one device of its own, where the test, predictions and analyses run exactly (sharded
    batches would carry padding)."""

    def __init__(self, devices=1, num_processes=None, process_id=None, coordinator=None, feature_cache=None):
        self.devices, self.feature_cache = devices, feature_cache
        self.processes = distributed.processes(num_processes, process_id, coordinator)
        self.left, self._local_task = False, None

    @property
    def is_global_zero(self) -> bool:
        return self.processes.index == 0

    @property
    def parallel(self) -> bool:
        return self.devices > 1 or self.processes.count > 1

    def setup(self) -> None:
        """Join the run's processes and set the Keras distribution over their devices (nothing on one device)."""
        run = self.processes
        if not self.parallel:
            return
        if keras.backend.backend() != "jax":
            what = f"trainer.devices={self.devices}" if run.count == 1 else f"trainer.num_processes={run.count}"
            raise CatdogError(f"{what} needs backend=jax (keras.distribution.DataParallel); on TensorFlow, Keras' "
                              "distribution API is an unfinished prototype (docs/scale_out.md).")
        if run.count > 1:
            distributed.initialize(run)
        distribution = distributed.data_parallel(self.devices, run)
        keras.distribution.set_distribution(distribution)
        log.info("Data parallel over %s (process %d of %d)", distribution.device_mesh.devices.tolist(), run.index,
                 run.count)

    def check_run_dir(self, run_dir) -> None:
        """Every process of a run must write to the same run directory."""
        if self.processes.count > 1:
            runs = distributed.gather_text(str(run_dir.resolve()))
            if len(set(runs)) > 1:
                raise CatdogError(f"The processes of one run were given different run directories ({', '.join(runs)}"
                                  " by rank): give every process the same hydra.run.dir.")

    def lock_run(self, run) -> None:
        """Rank 0 takes the run directory's lock for every process of the run: where it is refused (another run
        writes there), every process stops with rank 0's error, none waits on the others."""
        refused = ""
        if self.is_global_zero:
            try:
                run.lock()
            except CatdogError as exc:
                refused = str(exc)
        if self.processes.count > 1:
            refused = distributed.gather_text(refused[:4000])[0]  # rank 0's answer, on every process
        if refused:
            raise CatdogError(refused)

    def check_fit(self) -> None:
        if self.left:
            raise CatdogError("This trainer's data-parallel fit is over; build a new Trainer (in new processes, for "
                              "several) for another one.")

    def leave(self, task) -> None:
        """End of a data-parallel fit: rank 0 copies the task onto one device of its own, then every process
        leaves the distribution (and the run of processes)."""
        if not self.parallel:
            return
        if self.is_global_zero:
            with distributed.local_scope():
                self._local_task = type(task).from_config(task.get_config())
                self._local_task.set_weights(task.get_weights())
        if self.processes.count > 1:
            distributed.shutdown()
        keras.distribution.set_distribution(None)
        self.left = True
        log.info("Data-parallel fit over%s", "; testing on one device" if self.is_global_zero else "")

    def alone(self, task, fitted):
        """The task to evaluate or predict with: `task`, or after a data-parallel fit rank 0's copy of `fitted`."""
        if not self.left:
            return task
        if not self.is_global_zero:
            raise CatdogError(f"Process {self.processes.index}: after a multi-process fit, process 0 alone "
                              "evaluates and predicts.")
        return self._local_task if task is fitted else task

    def check_predict(self) -> None:
        if self.processes.count > 1 and not self.left:
            raise CatdogError("Keras cannot gather the predictions of several processes; predict after the fit, "
                              "which process 0 does alone.")

    def target(self, task, datamodule, max_images=None):
        """(model to fit, data to fit it on): the task on images, or its feature task on cached features (not
        while several processes train together: each would compute and cache the features itself)."""
        alone = self.processes.count == 1 or self.left
        if alone and self.feature_cache is not None and self.feature_cache.applies(task, datamodule):
            return task.feature_task(), self.feature_cache.data(task, datamodule, max_images)
        return task, datamodule

    def shard(self, loader):
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


def sharded(loader) -> bool:
    """Whether `loader` yields this process's shard of every batch (`Strategy.shard`)."""
    return isinstance(loader, ArrayBatches) and loader.shard is not None


def weigh_metrics(task, optimizer="auto") -> None:
    """Compile `task` again with its metrics as weighted metrics: sharded batches weigh their padding 0, and
    Keras gives sample weights to weighted metrics alone."""
    metrics = task.get_compile_config().get("metrics")
    if metrics:
        task.compile(optimizer=optimizer, metrics=[], weighted_metrics=keras.saving.deserialize_keras_object(metrics))


def platform() -> str:
    """The platform Keras computes on: cpu, gpu or tpu."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend()
    import tensorflow as tf

    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
