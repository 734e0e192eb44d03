"""SIGINT and SIGTERM while fitting (Lightning's signal connector): stop after the batch, keep the last complete
checkpoint, exit as a shell reports a process ended by the signal."""

import logging
import signal
import threading

import keras

from catdog.errors import CatdogError

log = logging.getLogger("catdog.trainer")


class Interrupted(CatdogError):
    """Training stopped by SIGINT or SIGTERM after a batch; the last complete checkpoint is kept. The command
    exits with 128 + the signal's number (130, 143), as a shell reports a process ended by it."""

    def __init__(self, signum, epochs_done, run_dir):
        name = signal.Signals(signum).name
        super().__init__(f"Stopped by {name}; the last complete checkpoint is after epoch {epochs_done}.")
        self.exit_code, self.run_dir = 128 + signum, run_dir


class StopOnSignal(keras.callbacks.Callback):
    """While fitting: the first SIGINT or SIGTERM stops the fit after the current batch (a second one at once),
    with `Interrupted`; Slurm and Kubernetes send SIGTERM before they kill. `where()` gives (epochs done, the
    run directory to resume, or None) for the message."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, where):
        super().__init__()
        self.where, self.signum, self.previous = where, None, {}

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
            raise Interrupted(self.signum, *self.where())

    def on_train_batch_end(self, batch, logs=None):
        self.check()

    def on_test_batch_end(self, batch, logs=None):
        self.check()

    def on_epoch_begin(self, epoch, logs=None):
        self.check()
