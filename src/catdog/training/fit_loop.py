"""The fit loop (Lightning's `loops/fit_loop.py`): every stage in turn, each one Keras `fit` of the stage's model
on the stage's data, with the callbacks the loop relies on first."""

import logging
import time

import keras
import numpy as np

from catdog.callbacks import ModelCheckpoint
from catdog.training.strategy import sharded, weigh_metrics

log = logging.getLogger("catdog.trainer")
EPOCH_LINE = ("loss", "accuracy", "val_loss", "val_accuracy")


class FitLoop:
    def __init__(self, trainer):
        self.trainer = trainer

    def run(self, task, datamodule, resume, stopper) -> None:
        trainer = self.trainer
        state = resume.state if resume is not None else None
        for index, stage in enumerate(trainer.stages):
            if state is not None and index < state["stage"]:
                continue
            resumed = resume if state is not None and index == state["stage"] and resume.mid_stage else None
            trainer.stage_index = index
            trainer.stage_start = state["stage_start"] if resumed else trainer.current_epoch
            self.run_stage(task, datamodule, stage, resumed, stopper)
            trainer.checkpointing.save_last(trainer.current_epoch, stage=index + 1, stage_start=trainer.current_epoch)
            stopper.check()
        trainer.stage_index = len(trainer.stages)
        trainer.checkpointing.save_last(trainer.current_epoch, fit_complete=True)

    def run_stage(self, task, datamodule, stage, resume, stopper) -> None:
        trainer, strategy = self.trainer, self.trainer.strategy
        unfreezing = stage
        if not stage.unfreezes and resume is not None:  # "as it is": as the stages before this one left it
            unfreezing = next((s for s in reversed(trainer.stages[:trainer.stage_index]) if s.unfreezes), stage)
        if unfreezing.unfreezes:
            trainable = task.set_trainable_backbone_layers(unfreezing.unfreeze_backbone_layers,
                                                           unfreezing.unfreeze_backbone_fraction)
            log.info("Stage %s: %d backbone layers with weights train (BatchNormalization stays frozen)",
                     stage.name, trainable)
        fit_task, data = strategy.target(task, datamodule, trainer.dev_run_images(datamodule))
        stopper.check()  # a signal during the feature pass
        trainer.fit_task = fit_task
        train = strategy.shard(data.train_dataloader(limit_batches=trainer.limits["train"],
                                                     first_epoch=trainer.current_epoch))
        val = strategy.shard(data.val_dataloader(limit_batches=trainer.limits["val"]))
        class_weight = datamodule.class_weights()
        if sharded(train):  # sharded batches carry sample weights, which take the class weights
            train.class_weight, class_weight = class_weight, None
        rate = stage.learning_rate
        if stage.schedule != "constant":  # a schedule over the stage's steps, from its rate or the task's
            base = rate or float(task.configure_optimizer().get_config()["learning_rate"])
            steps = 1 if trainer.fast_dev_run else data.steps_per_epoch(trainer.limits["train"]) or len(train)
            rate = stage.learning_rate_at(base, steps)
        optimizer = task.configure_optimizer(rate)
        fit_task.compile(optimizer=optimizer)
        if sharded(train) or sharded(val):
            weigh_metrics(fit_task, optimizer)
        if resume is not None:
            resume.restore_stage(task, fit_task)
        epochs = 1 if trainer.fast_dev_run else stage.epochs
        log.info("Stage %s: epochs %d-%d, %d trainable of %d parameters", stage.name, trainer.stage_start + 1,
                 trainer.stage_start + epochs, count(fit_task.trainable_weights), task.count_params())
        fit_task.fit(
            train, validation_data=val, steps_per_epoch=data.steps_per_epoch(trainer.limits["train"]),
            initial_epoch=trainer.current_epoch, epochs=trainer.stage_start + epochs,
            callbacks=self.callbacks(stopper), verbose=trainer.keras_verbose,
            shuffle=False,  # the training pipeline reshuffles every epoch itself
            class_weight=class_weight,
        )

    def callbacks(self, stopper) -> list:
        """A signal stops after the batch; timings, then the epoch is recorded, checkpointed and only then logged:
        an epoch cut before its checkpoint, and so run again on resume, reaches no logger's store."""
        trainer = self.trainer
        checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
        others = [c for c in trainer.callbacks if not isinstance(c, ModelCheckpoint)]
        return [stopper, trainer.timer, Recorder(trainer), *others, *checkpoints, *trainer.loggers]


class Recorder(keras.callbacks.Callback):
    """Keeps the trainer's epoch count and history current before loggers and checkpoints see an epoch. An
    epoch that a callback stopped before its last batch (`stop_training` set mid-epoch) is not complete: it is
    neither counted nor recorded, and `trainer.epoch_complete` tells checkpoints so."""

    def __init__(self, trainer):
        super().__init__()
        self.trainer = trainer

    def on_epoch_begin(self, epoch, logs=None):
        if self.trainer.setup_seconds is None:
            self.trainer.setup_seconds = time.perf_counter() - self.trainer.created
        self.trainer.epoch_complete, self.batches = True, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        steps = self.params.get("steps")
        self.trainer.epoch_complete = not (self.model.stop_training and steps and self.batches < steps)
        if not self.trainer.epoch_complete:
            log.warning("Epoch %d stopped before its last batch (stop_training): not counted as a completed epoch.",
                        epoch + 1)
            return
        row = {"epoch": epoch, "stage": self.trainer.stages[self.trainer.stage_index].name,
               **{k: float(v) for k, v in (logs or {}).items()}}
        self.trainer.history = [r for r in self.trainer.history if r["epoch"] < epoch] + [row]
        self.trainer.current_epoch = epoch + 1
        if self.trainer.epoch_lines:  # output that is no terminal: a line an epoch instead of Keras' bar
            figures = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k in EPOCH_LINE)
            log.info("Epoch %d/%d: %s, %.1f s", epoch + 1, self.params.get("epochs", 0), figures,
                     row.get("epoch_seconds", 0.0))


def count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))
