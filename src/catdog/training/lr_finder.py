"""The learning-rate finder (Lightning's `Tuner.lr_find`, fastai's `lr_find`): a short fit whose learning rate
grows exponentially every batch, the loss it reaches at each rate, and the rate where the loss fell fastest."""

import logging
import math

import keras
import numpy as np

from catdog.errors import CatdogError

log = logging.getLogger("catdog.trainer")


class _Sweep(keras.callbacks.Callback):
    """Sets the learning rate before each batch and records the smoothed loss after it; stops once the loss has
    grown past `diverged` times its best."""

    def __init__(self, rates, smoothing=0.05, diverged=4.0):
        super().__init__()
        self.rates, self.smoothing, self.diverged = rates, smoothing, diverged
        self.losses, self.average, self.best = [], 0.0, math.inf

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(self.rates[len(self.losses)])

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", math.nan))
        self.average = self.smoothing * loss + (1 - self.smoothing) * self.average
        corrected = self.average / (1 - (1 - self.smoothing) ** (len(self.losses) + 1))  # debiased, as fastai's
        self.losses.append(corrected)
        self.best = min(self.best, corrected)
        if not math.isfinite(corrected) or corrected > self.diverged * self.best or len(self.losses) == len(self.rates):
            self.model.stop_training = True


def suggestion(rates, losses, skip_start=10, skip_end=5) -> float | None:
    """The rate where the smoothed loss falls fastest against log(rate) (Lightning's rule), edges left out."""
    rates, losses = np.asarray(rates[:len(losses)]), np.asarray(losses)
    kept = slice(skip_start, max(skip_start + 2, len(losses) - skip_end))
    r, loss = rates[kept], losses[kept]
    if len(loss) < 3 or not np.isfinite(loss).all():
        return None
    return float(r[int(np.argmin(np.gradient(loss, np.log(r))))])


def lr_find(trainer, task, datamodule, min_lr=1e-7, max_lr=1.0, num_training=100) -> dict:
    """Sweep `num_training` batches from `min_lr` to `max_lr` on the task as its first stage trains it (on cached
    features when the backbone is frozen), then give the task its weights back; returns {"lrs", "losses",
    "suggestion"}."""
    if not 0 < min_lr < max_lr:
        raise CatdogError(f"lr_find: min_lr={min_lr} and max_lr={max_lr} must satisfy 0 < min_lr < max_lr.")
    if not isinstance(num_training, int) or num_training < 10:
        raise CatdogError(f"lr_find: num_training={num_training!r} must be an integer of at least 10.")
    stage = trainer.stages[0]
    if stage.unfreeze_backbone_layers is not None:
        task.set_trainable_backbone_layers(stage.unfreeze_backbone_layers)
    fit_task, data = trainer.strategy.target(task, datamodule)
    saved = [np.asarray(v) for v in fit_task.weights]
    rates = list(np.geomspace(min_lr, max_lr, num_training))
    sweep = _Sweep(rates)
    fit_task.compile(optimizer=task.configure_optimizer(min_lr))
    train = data.train_dataloader()
    steps = data.steps_per_epoch() or len(train)
    try:
        fit_task.fit(train, epochs=math.ceil(num_training / steps), steps_per_epoch=data.steps_per_epoch(),
                     callbacks=[sweep], verbose=0, shuffle=False)
    finally:
        for variable, value in zip(fit_task.weights, saved):
            variable.assign(value)
    suggested = suggestion(rates, sweep.losses)
    log.info("lr_find: %d rates from %.1e to %.1e; suggested learning rate %s", len(sweep.losses), min_lr,
             rates[len(sweep.losses) - 1], "none (the loss did not fall)" if suggested is None else f"{suggested:.2e}")
    return {"lrs": rates[:len(sweep.losses)], "losses": sweep.losses, "suggestion": suggested}
