"""The trainer: fit / validate / test over a module and a data module (Lightning's Trainer role)."""

import keras

from catdog.callbacks import AtomicModelCheckpoint


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
    def backup_callback(self):
        return next((c for c in self.callbacks if isinstance(c, keras.callbacks.BackupAndRestore)), None)

    def images_per_epoch(self, datamodule) -> int:
        limit = self.limits["train"]
        n = datamodule.num_images("train")
        return min(n, limit * datamodule.batch_size) if limit else n

    def fit(self, module, datamodule, augment=None, initial_epoch=0) -> keras.callbacks.History:
        module.compile()
        for callback in self.callbacks:
            if isinstance(callback, AtomicModelCheckpoint):
                callback.export_model = module.export_network
        return module.network.fit(
            datamodule.train_dataloader(augment=augment, limit_batches=self.limits["train"]),
            validation_data=datamodule.val_dataloader(limit_batches=self.limits["val"]),
            steps_per_epoch=datamodule.steps_per_epoch(self.limits["train"]),
            epochs=self.max_epochs, initial_epoch=initial_epoch, callbacks=self.callbacks, verbose=self.verbose,
            shuffle=False,  # the training pipeline reshuffles every epoch itself
        )

    def validate(self, module, datamodule) -> dict:
        loader = datamodule.val_dataloader(limit_batches=self.limits["val"])
        return module.network.evaluate(loader, verbose=0, return_dict=True)

    def test(self, module, datamodule) -> dict:
        loader = datamodule.test_dataloader(limit_batches=self.limits["test"])
        return module.network.evaluate(loader, verbose=0, return_dict=True)
