"""After the test: the confusion matrix, per-class scores and the most confident mistakes, as plots and metrics."""

import logging
from pathlib import Path

from catdog.analysis.metrics import confident_mistakes, confusion_matrix, per_class_metrics
from catdog.callbacks.base import Callback

log = logging.getLogger(__name__)


class ErrorAnalysis(Callback):
    """After the test, `confusion.png` and `mistakes.png` in `save_dir` for the tested weights on the validation
    images; their confusion matrix and the indices of the most confident mistakes join the metrics, with
    `val_per_class` and `test_per_class` (`per_class_metrics`; no `test_per_class` without test images). A
    failing plot is a warning: the metrics and checkpoints are already written."""

    def __init__(self, save_dir, top=9):
        super().__init__()
        self.save_dir, self.top = Path(save_dir), top

    def on_tested(self, trainer, task):
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "arrays"):
            log.info("No error analysis: %s holds no decoded images to show.", type(datamodule).__name__)
            return {}
        images, labels = datamodule.arrays["val"]
        probabilities = trainer.predict(task, datamodule, split="val")
        labels, predicted = labels[: len(probabilities)], probabilities.argmax(axis=-1)
        matrix = confusion_matrix(labels, predicted, len(task.class_names))
        mistakes = confident_mistakes(labels, probabilities, self.top)
        metrics = {"val_confusion_matrix": matrix.tolist(), "val_confident_mistakes": [int(i) for i in mistakes],
                   "val_per_class": per_class_metrics(labels, predicted, task.class_names)}
        if datamodule.num_images("test"):
            test = trainer.predict(task, datamodule, split="test")
            metrics["test_per_class"] = per_class_metrics(datamodule.arrays["test"][1][: len(test)],
                                                          test.argmax(axis=-1), task.class_names)
        try:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            from catdog.analysis.plots import plot_confident_mistakes, plot_confusion

            plot_confusion(matrix, task.class_names, self.save_dir / "confusion.png")
            plot_confident_mistakes(images, labels, probabilities, mistakes, task.class_names,
                                    self.save_dir / "mistakes.png")
        except Exception as exc:  # matplotlib and the filesystem raise many types; the run is already saved
            log.warning("Could not plot the error analysis into %s (%s: %s).", self.save_dir, type(exc).__name__, exc)
        return metrics
