"""Keras callbacks catdog adds: an epoch timer, a checkpoint and a backup that are written atomically, and an
early stop that survives a resume."""

import os
import time

import keras


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds per epoch (train + validation), its training part alone, and the cores it kept busy.

    `epoch_cores` is the process's CPU seconds over the epoch's wall seconds: near the core count when the
    step's threads run in parallel, near 1 when they take turns or wait.
    """

    def __init__(self):
        super().__init__()
        self.epoch_seconds, self.train_seconds, self.epoch_cores = [], [], []
        self._start = self._cpu_start = self._train_end = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._cpu_start, self._train_end = time.perf_counter(), time.process_time(), None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        self.epoch_seconds.append(end - self._start)
        self.train_seconds.append((self._train_end or end) - self._start)
        self.epoch_cores.append((time.process_time() - self._cpu_start) / max(end - self._start, 1e-9))
        if logs is not None:
            logs["epoch_seconds"] = self.epoch_seconds[-1]
            logs["train_seconds"] = self.train_seconds[-1]
            logs["epoch_cores"] = self.epoch_cores[-1]


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` that saves to a hidden file and renames it over the old one.

    A kill while saving leaves the previous complete checkpoint, never a truncated one. `export_model`,
    when set, is saved instead of the model being fit (the whole image model while only its head trains
    on cached features); it must share the trained layers. `resumed_values` restores `best` on a resume.
    """

    export_model = None
    resumed_values = ()  # the monitored values of the epochs before a resume

    def on_train_begin(self, logs=None):
        if self.resumed_values:  # a resumed run's first epoch must beat the best before the interruption
            if self.monitor_op is None:
                self._set_monitor_op()
            for value in self.resumed_values:
                if self._is_improvement(value, self.best):
                    self.best = value
            self.resumed_values = ()

    def _save_model(self, epoch, batch, logs):
        trained = self.model  # on JAX, reading .model syncs the trained state back into the layers
        if self.export_model is None or self.export_model is trained:
            return self._save_atomically(epoch, batch, logs)
        self._model = self.export_model
        try:
            self._save_atomically(epoch, batch, logs)
        finally:
            self._model = trained

    def _get_file_path(self, epoch, batch, logs):
        self._final_path = super()._get_file_path(epoch, batch, logs)
        head, tail = os.path.split(self._final_path)
        self._partial_path = os.path.join(head, f".partial-{tail}")
        if os.path.exists(self._partial_path):  # left by a save that was killed; never to be renamed over
            os.remove(self._partial_path)
        return self._partial_path

    def _save_atomically(self, epoch, batch, logs):
        super()._save_model(epoch, batch, logs)
        if os.path.exists(self._partial_path):  # only when this save wrote it
            os.replace(self._partial_path, self._final_path)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` whose patience survives a resume.

    `resumed_values` (the monitored value of every epoch before the interruption, indexed by epoch) are
    replayed through Keras' own rule at the first epoch after the resume, counting only the epochs from
    `stage_start` (the first epoch of this fit), as the uninterrupted fit would have. With
    `restore_best_weights`, a best epoch from before the interruption restores the weights the run resumed
    from, not that epoch's: those were not kept (the best checkpoint file has them).
    """

    resumed_values = ()
    stage_start = 0

    def on_epoch_begin(self, epoch, logs=None):
        replay, self.resumed_values = list(enumerate(self.resumed_values))[self.stage_start:epoch], ()
        for past_epoch, value in replay:
            self.on_epoch_end(past_epoch, {self.monitor: value})


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that writes its files under hidden names and renames them over the old ones.

    A kill while backing up leaves the previous epoch's backup (or none), never a truncated file that
    would stop the rerun; that is what Keras' `double_checkpoint` guards against, so it is refused here.
    """

    def __init__(self, backup_dir, *args, double_checkpoint=False, **kwargs):
        if double_checkpoint:
            raise ValueError("AtomicBackupAndRestore never leaves a truncated backup; drop double_checkpoint, or "
                             "use keras.callbacks.BackupAndRestore for Keras' own copy of the previous one.")
        super().__init__(backup_dir, *args, **kwargs)

    def _save_model(self):
        final = self._weights_path, self._training_metadata_path
        partial = [os.path.join(os.path.dirname(p), f".partial-{os.path.basename(p)}") for p in final]
        self._weights_path, self._training_metadata_path = partial
        try:
            super()._save_model()
        finally:
            self._weights_path, self._training_metadata_path = final
        for src, dst in zip(partial, final):  # weights first: a kill between leaves the older epoch number
            os.replace(src, dst)
