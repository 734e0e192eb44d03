"""Error analysis of a trained classifier: confusion matrix and the most confidently wrong images."""

import logging
from pathlib import Path

import numpy as np

from catdog.callbacks import Callback
from catdog.plots import plt

log = logging.getLogger(__name__)


class ErrorAnalysis(Callback):
    """After the test, `confusion.png` and `mistakes.png` in `save_dir` for the tested weights on the validation
    images; their confusion matrix and the indices of the most confident mistakes join the metrics. A failing
    plot is a warning: the metrics and checkpoints are already written."""

    def __init__(self, save_dir, top=9):
        super().__init__()
        self.save_dir, self.top = Path(save_dir), top

    def on_tested(self, trainer, task):
        datamodule = trainer.datamodule
        images, labels = datamodule.arrays["val"]
        probabilities = trainer.predict_split(task, datamodule, "val")
        labels = labels[: len(probabilities)]
        matrix = confusion_matrix(labels, probabilities.argmax(axis=-1), len(task.class_names))
        mistakes = confident_mistakes(labels, probabilities, self.top)
        try:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            plot_confusion(matrix, task.class_names, self.save_dir / "confusion.png")
            plot_confident_mistakes(images, labels, probabilities, mistakes, task.class_names,
                                    self.save_dir / "mistakes.png")
        except Exception as exc:  # matplotlib and the filesystem raise many types; the run is already saved
            log.warning("Could not plot the error analysis into %s (%s: %s).", self.save_dir, type(exc).__name__, exc)
        return {"val_confusion_matrix": matrix.tolist(), "val_confident_mistakes": [int(i) for i in mistakes]}


def confusion_matrix(labels, predicted, num_classes) -> np.ndarray:
    """counts[true, predicted]."""
    return np.bincount(labels * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)


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
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted", ylabel="true", title="validation confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_confident_mistakes(images, labels, probabilities, worst, class_names, path) -> None:
    predicted = probabilities.argmax(axis=-1)
    cols = 3
    rows = max(1, -(-len(worst) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, worst):
        ax.imshow(images[i])
        ax.set_title(f"{class_names[labels[i]]} as {class_names[predicted[i]]} ({probabilities[i, predicted[i]]:.2f})",
                     fontsize=9)
    fig.suptitle("most confident mistakes (validation)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
