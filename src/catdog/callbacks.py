"""Keras callbacks that the Trainer also tells about the run, each owning the state it needs to resume."""

import time

import keras

from catdog.errors import CatdogError


class Callback(keras.callbacks.Callback):
    """A Keras callback with Lightning's extras: `trainer` (set by the Trainer before fit) and its own state,
    saved in every checkpoint and given back on a resume."""

    trainer = None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class EpochTimer(Callback):
    """Wall seconds per epoch (train + validation), its training part alone, and the cores it kept busy.

    `epoch_cores` is the process's CPU seconds over the epoch's wall seconds: near the core count when the
    step's threads run in parallel, near 1 when they take turns or wait.
    """

    def __init__(self):
        super().__init__()
        self._start = self._cpu_start = self._train_end = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._cpu_start, self._train_end = time.perf_counter(), time.process_time(), None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        if logs is not None:
            logs["epoch_seconds"] = end - self._start
            logs["train_seconds"] = (self._train_end or end) - self._start
            logs["epoch_cores"] = (time.process_time() - self._cpu_start) / max(end - self._start, 1e-9)


class ModelCheckpoint(Callback):
    """Saves `last.keras` after every epoch and `best.keras` whenever `monitor` improves, in `dirpath`, through
    the Trainer (`Trainer.save_checkpoint`: atomic, with the state a resume needs).

    The best score is this callback's state, so a resumed run's first epoch must beat the best from before.
    A `monitor` that the epoch's logs do not hold is an error, not a checkpoint every epoch.
    """

    def __init__(self, dirpath, monitor="val_accuracy", mode="max", save_last=True, save_best=True):
        super().__init__()
        if mode not in ("max", "min"):
            raise CatdogError(f"callbacks.model_checkpoint.mode={mode!r}: must be max or min.")
        self.dirpath, self.monitor, self.mode = str(dirpath), monitor, mode
        self.save_last, self.save_best = save_last, save_best
        self.best = None

    @property
    def best_model_path(self) -> str:
        return f"{self.dirpath}/best.keras"

    @property
    def last_model_path(self) -> str:
        return f"{self.dirpath}/last.keras"

    def improved(self, value) -> bool:
        return self.best is None or (value > self.best if self.mode == "max" else value < self.best)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best:
            if self.monitor not in logs:
                raise CatdogError(f"callbacks.model_checkpoint.monitor={self.monitor!r} is not among this run's "
                                  f"epoch metrics ({', '.join(sorted(logs))}).")
            value = float(logs[self.monitor])
            if self.improved(value):
                self.best = value
                self.trainer.save_checkpoint(self.best_model_path, epoch + 1)
        if self.save_last:
            self.trainer.save_checkpoint(self.last_model_path, epoch + 1)

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state.get("best")


class EarlyStopping(keras.callbacks.EarlyStopping, Callback):
    """Keras' EarlyStopping whose patience and best value survive a resume within a training stage."""

    _restored = None
    stage_scoped = True  # patience counts within one training stage, as Keras' own does within one fit

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restored:
            self.wait, self.best, self.best_epoch = (self._restored[k] for k in ("wait", "best", "best_epoch"))
            self._restored = None

    def state_dict(self):
        return {"wait": self.wait, "best": None if self.best is None else float(self.best),
                "best_epoch": self.best_epoch}

    def load_state_dict(self, state):
        self._restored = state
