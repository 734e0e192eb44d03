"""Losses a config names by `_target_`: sparse cross-entropy with label smoothing, which Keras gives only to the
one-hot `CategoricalCrossentropy` (the loaders yield integer labels)."""

import keras
from keras import ops

from catdog.errors import CatdogError


@keras.saving.register_keras_serializable("catdog")
class SparseCategoricalCrossentropy(keras.losses.Loss):
    """Keras' `SparseCategoricalCrossentropy` on integer labels, plus `label_smoothing` (as in Keras'
    `CategoricalCrossentropy`: the one-hot target becomes 1 - s + s/k for the true class, s/k for the others).
    With label_smoothing=0 it is Keras' loss."""

    def __init__(self, from_logits=False, label_smoothing=0.0, name="sparse_categorical_crossentropy", **kwargs):
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) or \
                not 0 <= label_smoothing < 1:
            raise CatdogError(f"model.loss.label_smoothing={label_smoothing!r}: must be a number in [0, 1).")
        super().__init__(name=name, **kwargs)
        self.from_logits, self.label_smoothing = from_logits, float(label_smoothing)

    def call(self, y_true, y_pred):
        if not self.label_smoothing:
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=self.from_logits)
        labels = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(labels, y_pred, from_logits=self.from_logits,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}
