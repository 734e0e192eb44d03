"""Importable by subprocesses (PYTHONPATH=tests) for tests that need a slow or hostile run."""

import time

import keras


class SleepAtEpochEnd(keras.callbacks.Callback):
    """Makes each epoch last long enough for a test to kill the process mid-run."""

    def __init__(self, seconds=1.0):
        super().__init__()
        self.seconds = seconds

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(self.seconds)
