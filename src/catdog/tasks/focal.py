"""An example of custom training logic: ImageClassifier with a focal loss, by overriding Keras' `compute_loss`.

    python -m catdog.train model._target_=catdog.tasks.focal.FocalLossClassifier +model.gamma=2.0

Your own subclass works the same way from your own module (on PYTHONPATH); register it with
`keras.saving.register_keras_serializable` and store its arguments in `get_config`, so that its checkpoints
load back as it.
"""

import keras
from keras import ops

from catdog.errors import CatdogError
from catdog.tasks.classifier import ImageClassifier


@keras.saving.register_keras_serializable("catdog")
class FocalLossClassifier(ImageClassifier):
    """Focal loss (Lin et al., 2017): cross-entropy weighted by (1 - p_true) ** gamma, so that well-classified
    images count less; gamma=0 is plain cross-entropy. It runs on every path the Trainer takes, the cached-feature
    head included (`feature_task` is an instance of this class too)."""

    def __init__(self, *args, gamma=2.0, **kwargs):
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma < 0:
            raise CatdogError(f"model.gamma={gamma!r}: must be a number >= 0.")
        super().__init__(*args, **kwargs)
        self.gamma = float(gamma)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        labels = ops.cast(ops.reshape(y, (-1, 1)), "int32")
        log_p_true = ops.squeeze(ops.take_along_axis(log_probs, labels, axis=-1), -1)
        loss = -((1.0 - ops.exp(log_p_true)) ** self.gamma) * log_p_true
        if sample_weight is not None:
            loss = loss * ops.cast(sample_weight, loss.dtype)
        total = ops.mean(loss)
        return total + ops.sum(self.losses) if self.losses else total

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}
