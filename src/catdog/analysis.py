"""Error analysis of a trained classifier: confusion matrix and the most confidently wrong images."""

import numpy as np

from catdog.inference import softmax
from catdog.plots import plt


def analyse_validation(network, loader, images, labels, class_names, out):
    """confusion.png and mistakes.png in `out` for `network` on `loader` (the validation images, in order).

    Returns the confusion matrix as lists and the indices of the most confident mistakes.
    """
    probabilities = softmax(network.predict(loader, verbose=0))
    labels = labels[: len(probabilities)]
    matrix = confusion_matrix(labels, probabilities.argmax(axis=-1), len(class_names))
    plot_confusion(matrix, class_names, out / "confusion.png")
    return matrix.tolist(), plot_confident_mistakes(images, labels, probabilities, class_names, out / "mistakes.png")


def confusion_matrix(labels, predicted, num_classes) -> np.ndarray:
    """counts[true, predicted]."""
    return np.bincount(labels * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)


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


def plot_confident_mistakes(images, labels, probabilities, class_names, path, top=9) -> list[int]:
    """The `top` wrong predictions with the highest probability for the wrong class; returns their indices."""
    predicted = probabilities.argmax(axis=-1)
    wrong = np.flatnonzero(predicted != labels)
    worst = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:top]
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
    return [int(i) for i in worst]
