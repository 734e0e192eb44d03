"""Keras' EarlyStopping with its state in the checkpoint."""

import keras

from catdog.callbacks.base import Callback


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
