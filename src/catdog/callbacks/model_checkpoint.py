"""Checkpoints after every epoch: last.keras and best.keras."""

from catdog.callbacks.base import Callback
from catdog.errors import CatdogError


class ModelCheckpoint(Callback):
    """Saves `last.keras` after every epoch and `best.keras` whenever `monitor` improves, in `dirpath`, through
    the Trainer (`Trainer.save_checkpoint`: atomic, with the state a resume needs). An epoch that saves
    best.keras copies it to last.keras rather than serializing the task twice.

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
        if not getattr(self.trainer, "epoch_complete", True):  # stopped mid-epoch: the last checkpoint stands
            return
        logs, saved_best = logs or {}, False
        if self.save_best:
            if self.monitor not in logs:
                raise CatdogError(f"callbacks.model_checkpoint.monitor={self.monitor!r} is not among this run's "
                                  f"epoch metrics ({', '.join(sorted(logs))}).")
            value = float(logs[self.monitor])
            if self.improved(value):
                self.best, saved_best = value, True
                self.trainer.save_checkpoint(self.best_model_path, epoch + 1)
        if self.save_last and saved_best:  # the same weights and state: copied, not serialized twice
            self.trainer.copy_checkpoint(self.best_model_path, self.last_model_path)
        elif self.save_last:
            self.trainer.save_checkpoint(self.last_model_path, epoch + 1)

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state.get("best")
