"""Importable by subprocesses (PYTHONPATH=tests) for tests that need a slow or hostile run."""

import time

import keras

from catdog.tasks import ImageClassifier


class SleepAtEpochEnd(keras.callbacks.Callback):
    """Makes each epoch last long enough for a test to kill the process mid-run."""

    def __init__(self, seconds=1.0):
        super().__init__()
        self.seconds = seconds

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(self.seconds)


@keras.saving.register_keras_serializable("tests")
class OffsetLossClassifier(ImageClassifier):
    """The task's loss plus `offset`: a logged loss above it shows that this compute_loss ran."""

    def __init__(self, *args, offset=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.offset = offset

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x, y, y_pred, sample_weight, training) + self.offset

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}
