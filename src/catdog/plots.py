"""Figures: the tutorial's train-vs-validation accuracy curve."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_history(history: dict, path, title: str = "") -> None:
    """Training and validation accuracy per epoch, as the tutorial plots them."""
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = range(1, len(history["accuracy"]) + 1)
    ax.plot(epochs, history["accuracy"], label="training")
    ax.plot(epochs, history["val_accuracy"], label="validation")
    ax.set(xlabel="epoch", ylabel="accuracy", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
