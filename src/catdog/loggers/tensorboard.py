"""TensorBoard event files through Keras' TensorBoard callback."""

import importlib.util
from pathlib import Path

from catdog.backend import require_tensorflow
from catdog.errors import CatdogError
from catdog.loggers.base import Logger, scalars
from catdog.utils.config import flatten


class TensorBoardLogger(Logger):
    """Keras' TensorBoard callback (epoch scalars under `save_dir/train` and `save_dir/validation`), plus the
    summary and test metrics as scalars and the hyperparameters as text, under `save_dir/summary`."""

    def __init__(self, save_dir, **tensorboard_options):
        super().__init__()
        import keras

        require_tensorflow("logger=tensorboard (Keras' TensorBoard callback writes with tf.summary; or use "
                           "logger=csv or mlflow)")
        if importlib.util.find_spec("tensorboard") is None:  # tf.summary.scalar is TensorBoard's
            raise CatdogError("logger=tensorboard needs the tensorboard package: pip install tensorboard.")
        self.save_dir = str(save_dir)
        self.callback = keras.callbacks.TensorBoard(log_dir=self.save_dir, **tensorboard_options)

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.callback.set_params(params)

    def on_train_begin(self, logs=None):
        self._write_hyperparams()
        self.callback.on_train_begin(logs)

    def on_train_end(self, logs=None):
        self.callback.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self.callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.epoch_counts:
            self.callback.on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self.callback.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.callback.on_train_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        self.callback.on_test_begin(logs)

    def on_test_batch_begin(self, batch, logs=None):
        self.callback.on_test_batch_begin(batch, logs)

    def on_test_end(self, logs=None):
        self.callback.on_test_end(logs)

    def _write(self, write):
        import tensorflow as tf

        writer = tf.summary.create_file_writer(str(Path(self.save_dir) / "summary"))
        with writer.as_default():
            write(tf)
        writer.close()

    _hyperparams = None

    def log_hyperparams(self, params):
        self._hyperparams = params  # written once training starts: a run the Trainer refuses gets nothing

    def _write_hyperparams(self):
        params, self._hyperparams = self._hyperparams, None
        if params:
            text = "\n".join(f"    {k}: {v}" for k, v in flatten(params).items())
            self._write(lambda tf: tf.summary.text("hyperparameters", text, step=0))

    def finalize(self, status="success"):
        if status == "success":  # a stopped or refused fit writes nothing more
            self._write_hyperparams()

    def log_metrics(self, metrics, step=None):
        def write(tf):
            for key, value in scalars(metrics).items():
                tf.summary.scalar(key, value, step=step or 0)

        self._write(write)
