"""Seconds per epoch, recorded in the epoch's logs."""

import time

from catdog.callbacks.base import Callback


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
