"""Importable by the processes of a multi-process run (PYTHONPATH=tests): what each one read, and a stop."""

import json
import os
import signal
from pathlib import Path

import keras

from catdog.data import ImageFolderDataModule
from catdog.data.loaders import ArrayBatches


class RecordingBatches(ArrayBatches):
    """ArrayBatches that append every batch's rows of weight > 0 (this process's shard) to `record`."""

    record = None

    def __getitem__(self, index):
        rows, weights = self.rows(index)
        counted = rows if weights is None else rows[weights > 0]
        with open(self.record, "a") as f:
            f.write(json.dumps({"epoch": self.epoch, "batch": index, "rows": counted.tolist()}) + "\n")
        return super().__getitem__(index)


class RecordingDataModule(ImageFolderDataModule):
    """An ImageFolderDataModule whose training batches record themselves in `record_dir/rank<R>.jsonl`."""

    def __init__(self, record_dir, **kwargs):
        super().__init__(**kwargs)
        self.record_dir = Path(record_dir)

    def train_dataloader(self, limit_batches=None, first_epoch=0):
        import jax

        batches = super().train_dataloader(limit_batches, first_epoch)
        batches.__class__ = RecordingBatches
        self.record_dir.mkdir(parents=True, exist_ok=True)
        batches.record = self.record_dir / f"rank{jax.process_index()}.jsonl"
        return batches


class SigtermAfter(keras.callbacks.Callback):
    """Sends its own process SIGTERM after `epochs` epochs, as Slurm signals every task of a job it stops."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            os.kill(os.getpid(), signal.SIGTERM)
