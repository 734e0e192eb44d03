"""The trainer: fit / validate / test over a module and a data module (Lightning's Trainer role)."""

import os
import shutil

import keras

from catdog.callbacks import AtomicModelCheckpoint, ResumableEarlyStopping


class Trainer:
    """Runs Keras' own loop; knows the data module's loaders and the module's network, nothing inside them."""

    def __init__(self, max_epochs=20, callbacks=(), fast_dev_run=False, limit_train_batches=None,
                 limit_val_batches=None, limit_test_batches=None, verbose="auto"):
        if fast_dev_run:
            n = 1 if fast_dev_run is True else int(fast_dev_run)
            max_epochs, limit_train_batches, limit_val_batches, limit_test_batches = 1, n, n, n
        self.max_epochs = max_epochs
        self.callbacks = list(callbacks)
        self.limits = {"train": limit_train_batches, "val": limit_val_batches, "test": limit_test_batches}
        self.verbose = verbose

    @property
    def checkpoint_callback(self):
        return next((c for c in self.callbacks if isinstance(c, keras.callbacks.ModelCheckpoint)), None)

    @property
    def csv_logger(self):
        return next((c for c in self.callbacks if isinstance(c, keras.callbacks.CSVLogger)), None)

    @property
    def backup_callback(self):
        return next((c for c in self.callbacks if isinstance(c, keras.callbacks.BackupAndRestore)), None)

    def images_per_epoch(self, datamodule) -> int:
        limit = self.limits["train"]
        n = datamodule.num_images("train")
        return min(n, limit * datamodule.batch_size) if limit else n

    def fit(self, module, datamodule, augment=None, initial_epoch=0, stage=None, keep_backup=False
            ) -> keras.callbacks.History:
        """Keras' fit. For a run of several stages (fine-tuning), `stage` names a later stage, backed up in
        its own sub-folder, and `keep_backup` keeps an earlier stage's backup until `remove_backup`, so a
        rerun replays the finished stages from their backups and resumes the interrupted one."""
        module.compile()
        for callback in self.callbacks:
            if isinstance(callback, AtomicModelCheckpoint):
                callback.export_model = module.export_network
            if isinstance(callback, ResumableEarlyStopping):
                callback.stage_start = initial_epoch
        backup = self.backup_callback
        callbacks = [self._stage_backup(stage, keep_backup) if c is backup else c for c in self.callbacks]
        return module.network.fit(
            datamodule.train_dataloader(augment=augment, limit_batches=self.limits["train"]),
            validation_data=datamodule.val_dataloader(limit_batches=self.limits["val"]),
            steps_per_epoch=datamodule.steps_per_epoch(self.limits["train"]),
            epochs=self.max_epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=self.verbose,
            shuffle=False,  # the training pipeline reshuffles every epoch itself
        )

    def _stage_backup(self, stage, keep):
        backup = self.backup_callback
        if stage is None and not keep:
            return backup
        return type(backup)(
            os.path.join(backup.backup_dir, stage) if stage else backup.backup_dir, save_freq=backup.save_freq,
            delete_checkpoint=backup.delete_checkpoint and not keep, double_checkpoint=backup.double_checkpoint)

    def remove_backup(self) -> None:
        """End a run of several stages: delete the kept backups, as a single stage's backup deletes itself."""
        if self.backup_callback and self.backup_callback.delete_checkpoint:
            shutil.rmtree(self.backup_callback.backup_dir, ignore_errors=True)

    def validate(self, module, datamodule) -> dict:
        loader = datamodule.val_dataloader(limit_batches=self.limits["val"])
        return module.network.evaluate(loader, verbose=0, return_dict=True)

    def test(self, module, datamodule) -> dict:
        loader = datamodule.test_dataloader(limit_batches=self.limits["test"])
        return module.network.evaluate(loader, verbose=0, return_dict=True)
