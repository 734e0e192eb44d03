"""Error analysis of a trained classifier: confusion matrix, per-class precision / recall / F1 and the most
confidently wrong images."""

import logging
from pathlib import Path

import numpy as np

from catdog.callbacks import Callback
from catdog.io import printable
from catdog.plots import plt, save_figure

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
        images, labels = datamodule.arrays["val"]
        probabilities = trainer.predict_split(task, datamodule, "val")
        labels, predicted = labels[: len(probabilities)], probabilities.argmax(axis=-1)
        matrix = confusion_matrix(labels, predicted, len(task.class_names))
        mistakes = confident_mistakes(labels, probabilities, self.top)
        metrics = {"val_confusion_matrix": matrix.tolist(), "val_confident_mistakes": [int(i) for i in mistakes],
                   "val_per_class": per_class_metrics(labels, predicted, task.class_names)}
        if datamodule.num_images("test"):
            test = trainer.predict_split(task, datamodule, "test")
            metrics["test_per_class"] = per_class_metrics(datamodule.arrays["test"][1][: len(test)],
                                                          test.argmax(axis=-1), task.class_names)
        try:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            plot_confusion(matrix, task.class_names, self.save_dir / "confusion.png")
            plot_confident_mistakes(images, labels, probabilities, mistakes, task.class_names,
                                    self.save_dir / "mistakes.png")
        except Exception as exc:  # matplotlib and the filesystem raise many types; the run is already saved
            log.warning("Could not plot the error analysis into %s (%s: %s).", self.save_dir, type(exc).__name__, exc)
        return metrics


def confusion_matrix(labels, predicted, num_classes) -> np.ndarray:
    """counts[true, predicted]."""
    return np.bincount(labels * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_metrics(labels, predicted, class_names) -> dict:
    """{class name: {precision, recall, f1, support}} of integer `labels` and `predicted`; a ratio with nothing
    to divide by (a class never predicted, or absent) is 0.0, as scikit-learn's zero_division=0."""
    matrix = confusion_matrix(np.asarray(labels, np.int64), np.asarray(predicted, np.int64), len(class_names))
    result = {}
    for i, name in enumerate(class_names):
        hits, predicted_as, support = int(matrix[i, i]), int(matrix[:, i].sum()), int(matrix[i].sum())
        precision = hits / predicted_as if predicted_as else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return result


def confident_mistakes(labels, probabilities, top=9) -> np.ndarray:
    """Indices of the `top` wrong predictions with the highest probability for the wrong class."""
    predicted = probabilities.argmax(axis=-1)
    wrong = np.flatnonzero(predicted != labels)
    return wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:top]


def plot_confusion(matrix, class_names, path) -> None:
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2.5, 1.2 * len(class_names) + 2))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="black")
    names = [printable(name) for name in class_names]
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted", ylabel="true", title="validation confusion matrix")
    save_figure(fig, path, 90)


def plot_confident_mistakes(images, labels, probabilities, worst, class_names, path) -> None:
    predicted = probabilities.argmax(axis=-1)
    cols = 3
    rows = max(1, -(-len(worst) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, worst):
        ax.imshow(images[i])
        ax.set_title(f"{printable(class_names[labels[i]])} as {printable(class_names[predicted[i]])} "
                     f"({probabilities[i, predicted[i]]:.2f})", fontsize=9)
    fig.suptitle("most confident mistakes (validation)")
    save_figure(fig, path, 80)
