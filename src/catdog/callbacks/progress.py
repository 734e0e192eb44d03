"""Progress lines while a model predicts (`catdog.utils.progress`: silent for a few seconds, then every 10 s)."""

from catdog.callbacks.base import Callback
from catdog.utils.progress import Progress


class PredictionProgress(Callback):
    """Counts `images` images in batches of `batch_size` through `predict`."""

    def __init__(self, images: int, batch_size: int, what="Predicting"):
        super().__init__()
        self.images, self.batch_size, self.what = images, batch_size, what
        self.progress = None

    def on_predict_begin(self, logs=None):
        self.progress = Progress(self.what, self.images)

    def on_predict_batch_end(self, batch, logs=None):
        self.progress.advance(min(self.batch_size, self.images - batch * self.batch_size))

    def on_predict_end(self, logs=None):
        self.progress.close()
