"""Keras callbacks catdog adds: an epoch timer and a checkpoint that is written atomically."""

import os
import time

import keras


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds per epoch (train + validation) and for its training part alone."""

    def __init__(self):
        super().__init__()
        self.epoch_seconds, self.train_seconds = [], []
        self._start = self._train_end = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        self.epoch_seconds.append(end - self._start)
        self.train_seconds.append((self._train_end or end) - self._start)
        if logs is not None:
            logs["epoch_seconds"] = self.epoch_seconds[-1]
            logs["train_seconds"] = self.train_seconds[-1]


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` that saves to a hidden file and renames it over the old one.

    A kill while saving leaves the previous complete checkpoint, never a truncated one. `export_model`,
    when set, is saved instead of the model being fit (the whole image model while only its head trains
    on cached features); it must share the trained layers.
    """

    export_model = None

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
        return self._partial_path

    def _save_atomically(self, epoch, batch, logs):
        super()._save_model(epoch, batch, logs)
        if os.path.exists(self._partial_path):
            os.replace(self._partial_path, self._final_path)
