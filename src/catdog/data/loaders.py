"""Batches of in-memory arrays for Keras' fit / evaluate / predict: NumPy (a Keras PyDataset) or tf.data."""

import math

import keras
import numpy as np


def array_loader(x, y, batch_size, *, loader="numpy", seed=None, augment=None, limit_batches=None, repeat=False,
                 first_epoch=0):
    """(Reshuffled every pass when seeded) batches of float32 `x` and `y`, augmented, at most `limit_batches`.

    `first_epoch`: the pass to start at; a NumPy loader's order depends only on `seed` and the pass, so a
    resumed run reads the same batches as an uninterrupted one.

    `loader`: numpy (`ArrayBatches`, through `ArrayBatches.tf_dataset` on TensorFlow) or tf_data
    (`tf_data_pipeline`). NumPy batches were as fast or faster and used 0.25-0.5 GB less memory on both
    backends (results/loaders/report.md); tf.data runs Keras' augmentation layers with TensorFlow's kernels,
    NumPy batches with the backend's. `repeat`: a pass longer than an epoch (steps_per_epoch) goes on where
    the last epoch stopped (on JAX, Keras reshuffles `ArrayBatches` at every epoch's end all the same, so
    the rest of the pass is read in a new order: each epoch still draws uniformly from the pool); Keras sees
    such batches as endless (`num_batches` None), so no epoch runs short.
    """
    if loader == "numpy":
        batches = ArrayBatches(x, y, batch_size, seed=seed, augment=augment, limit_batches=limit_batches,
                               first_epoch=first_epoch, repeat=repeat)
        return batches.tf_dataset(repeat) if keras.backend.backend() == "tensorflow" else batches
    seed = None if seed is None else seed + first_epoch
    return tf_data_pipeline(x, y, batch_size, seed=seed, augment=augment, limit_batches=limit_batches, repeat=repeat)


def without_autotune(ds):
    """`ds` without tf.data's autotuning. Deleting an iterator joins its autotuning thread, which the deletion
    does not always wake: it then sleeps on to its next optimization tick (10.2 s, 20.5 s, ... after the
    iterator started), and Keras' new iterator every epoch cost up to half of each epoch here
    (results/tf_data_stall)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def tf_data_pipeline(x, y, batch_size, seed=None, augment=None, limit_batches=None, repeat=False):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((np.asarray(x), y))  # in memory: rows on disk are read whole
    if seed is not None:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if limit_batches:
        ds = ds.take(limit_batches)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(lambda a, b: (tf.cast(a, "float32"), b))
    if augment is not None:  # sequential: parallel calls would race on the layers' seed state
        ds = ds.map(lambda a, b: (augment(a, training=True), b))
    return without_autotune(ds.prefetch(2))


class ArrayBatches(keras.utils.PyDataset):
    """`tf_data_pipeline`'s batching by NumPy indexing, in the Python thread; reshuffled at every epoch's end.

    When steps_per_epoch is shorter than a pass, Keras goes on at the next index, in the new order.

    `shard`: (rank, processes, devices) for data-parallel training, set by the Trainer on the loaders it fits
    on (`catdog.training.distributed.batch_shard`). Every process draws the same order (it depends only on `seed` and
    the pass); a batch of `batch_size` rows (the global batch) is padded up to a multiple of `devices` rows,
    and this process reads and augments only its `rank`-th of `processes` equal slices of it. Sharded batches
    carry sample weights: 1 for a row (times its `class_weight`, when set: Keras refuses
    `fit(class_weight=...)` beside sample weights), 0 for padding (repeats of the batch's first rows). So
    every row counts once per pass across the processes and weighted metrics are exact; a padded batch's loss
    is still summed over its padded size (Keras' sum_over_batch_size), which scales that batch's gradient by
    rows / padded and lowers the epoch's `loss` / `val_loss` logs a little.
    """

    def __init__(self, x, y, batch_size, seed=None, augment=None, limit_batches=None, first_epoch=0, shard=None,
                 repeat=False):
        super().__init__()
        self.x, self.y, self.batch_size, self.augment, self.repeat = x, y, batch_size, augment, repeat
        self.seed, self.epoch, self.shard, self.class_weight = seed, first_epoch, shard, None
        self.order = self._order()
        batches = math.ceil(len(y) / batch_size)
        self.batches = min(batches, limit_batches) if limit_batches else batches

    def __len__(self):
        return self.batches

    @property
    def num_batches(self):
        """Keras' count of batches: None, endless, for batches that repeat."""
        return None if self.repeat else self.batches

    def rows(self, index) -> tuple[np.ndarray, np.ndarray | None]:
        """(the rows batch `index` reads, their sample weights: None unless sharded)."""
        index = index % self.batches if self.repeat else index
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        if self.shard is None:
            return rows, None
        rank, processes, devices = self.shard
        padded = -(-len(rows) // devices) * devices
        weights = np.arange(padded) < len(rows)
        mine = slice(rank * padded // processes, (rank + 1) * padded // processes)
        rows, weights = np.resize(rows, padded)[mine], weights[mine].astype("float32")
        if self.class_weight:
            weights *= np.array([self.class_weight.get(int(label), 1.0) for label in self.y[rows]], "float32")
        return rows, weights

    def __getitem__(self, index):
        rows, weights = self.rows(index)
        x = self.x[rows].astype("float32")
        if self.augment is not None:
            x = keras.ops.convert_to_numpy(self.augment(x, training=True))
        return (x, self.y[rows]) if weights is None else (x, self.y[rows], weights)

    def _order(self):
        if self.seed is None:
            return np.arange(len(self.y))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.y))

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self._order()

    def tf_dataset(self, repeat=False):
        """These batches as Keras itself feeds a PyDataset to TensorFlow (a generator, prefetched), less
        tf.data's autotuning (`without_autotune`); reshuffled after every pass, `repeat`ed without end."""
        import tensorflow as tf

        def passes():
            while True:
                yield from (self[i] for i in range(len(self)))
                self.on_epoch_end()
                if not repeat:
                    return

        spec = (tf.TensorSpec((None, *self.x.shape[1:]), "float32"), tf.TensorSpec((None,), self.y.dtype))
        length = tf.data.INFINITE_CARDINALITY if repeat else len(self)  # so Keras knows an epoch's steps
        ds = tf.data.Dataset.from_generator(passes, output_signature=spec)
        return without_autotune(ds.apply(tf.data.experimental.assert_cardinality(length)).prefetch(2))
