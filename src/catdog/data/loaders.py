"""Batches of in-memory arrays for Keras' fit / evaluate / predict: NumPy (a Keras PyDataset) or tf.data."""

import math

import keras
import numpy as np


def array_loader(x, y, batch_size, *, loader="numpy", seed=None, augment=None, limit_batches=None, repeat=False):
    """(Reshuffled every pass when seeded) batches of float32 `x` and `y`, augmented, at most `limit_batches`.

    `loader`: numpy (`ArrayBatches`) or tf_data (`tf_data_pipeline`). NumPy batches were as fast or faster
    and used 0.25-0.5 GB less memory on both backends (results/loaders/report.md); tf.data runs Keras'
    augmentation layers with TensorFlow's kernels, NumPy batches with the backend's. `repeat`: a pass
    longer than an epoch (steps_per_epoch) goes on where the last epoch stopped.
    """
    if loader == "numpy":
        return ArrayBatches(x, y, batch_size, seed=seed, augment=augment, limit_batches=limit_batches)
    return tf_data_pipeline(x, y, batch_size, seed=seed, augment=augment, limit_batches=limit_batches, repeat=repeat)


def tf_data_pipeline(x, y, batch_size, seed=None, augment=None, limit_batches=None, repeat=False):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if limit_batches:
        ds = ds.take(limit_batches)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(lambda a, b: (tf.cast(a, "float32"), b), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:  # sequential: parallel calls would race on the layers' seed state
        ds = ds.map(lambda a, b: (augment(a, training=True), b))
    return ds.prefetch(tf.data.AUTOTUNE)


class ArrayBatches(keras.utils.PyDataset):
    """`tf_data_pipeline`'s batching by NumPy indexing, in the Python thread; reshuffled at every epoch's end.

    Keras goes on through the pass where the last epoch stopped when steps_per_epoch is shorter.
    """

    def __init__(self, x, y, batch_size, seed=None, augment=None, limit_batches=None):
        super().__init__()
        self.x, self.y, self.batch_size, self.augment = x, y, batch_size, augment
        self.rng = np.random.default_rng(seed) if seed is not None else None
        self.order = self.rng.permutation(len(y)) if self.rng is not None else np.arange(len(y))
        batches = math.ceil(len(y) / batch_size)
        self.batches = min(batches, limit_batches) if limit_batches else batches

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        x = self.x[rows].astype("float32")
        if self.augment is not None:
            x = keras.ops.convert_to_numpy(self.augment(x, training=True))
        return x, self.y[rows]

    def on_epoch_end(self):
        if self.rng is not None:
            self.order = self.rng.permutation(len(self.y))
