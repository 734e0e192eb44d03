"""Figures: accuracy curves, grouped bars, the confusion matrix and the most confident mistakes.

Text is drawn as it is written: mathtext is off (a class named `$x_1` or `a$b$c` shows its dollar signs), and
class names go through `catdog.utils.io.printable` (a newline or an undecodable byte shows as its escape)."""

import logging
import warnings

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from catdog.utils.io import printable  # noqa: E402

plt.rcParams["text.parse_math"] = False
log = logging.getLogger(__name__)


def save_figure(fig, path, dpi) -> None:
    """Lay out, write and close `fig`. Characters the font lacks (CJK class names in DejaVu Sans) draw as
    boxes: one warning line says so, instead of matplotlib's warning for each glyph and each pass."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    plt.close(fig)
    glyphs = [w for w in caught if "missing from font" in str(w.message)]
    for w in caught:
        if w not in glyphs:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if glyphs:
        log.warning("%s: some label characters are not in the plot font and show as boxes.", path)


def plot_history(history: dict, path, title: str = "") -> None:
    """Training and validation accuracy per epoch, as the tutorial plots them."""
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = range(1, len(history["accuracy"]) + 1)
    ax.plot(epochs, history["accuracy"], label="training")
    ax.plot(epochs, history["val_accuracy"], label="validation")
    ax.set(xlabel="epoch", ylabel="accuracy", title=title)
    ax.legend()
    save_figure(fig, path, 100)


def plot_samples(images, labels, class_names, path, per_class=3) -> None:
    """`per_class` labelled images of each class, one row per class (the tutorial's 3 cats, 3 dogs)."""
    fig, axes = plt.subplots(len(class_names), per_class, figsize=(3 * per_class, 3 * len(class_names)),
                             squeeze=False)
    for row, name in enumerate(class_names):
        picks = [i for i, label in enumerate(labels) if label == row][:per_class]
        for col, ax in enumerate(axes[row]):
            ax.axis("off")
            if col < len(picks):
                ax.imshow(images[picks[col]])
                ax.set_title(printable(name))
    save_figure(fig, path, 80)


def plot_augmentations(rows, path) -> None:
    """One row per augmentation layer: the original image, then its augmented copies."""
    cols = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.6 * cols, 2.8 * len(rows)), squeeze=False)
    for (title, images), row_axes in zip(rows, axes):
        for col, ax in enumerate(row_axes):
            ax.axis("off")
            if col < len(images):
                ax.imshow(images[col].clip(0, 255).astype("uint8"))
                ax.set_title("original" if col == 0 else title, fontsize=9)
    save_figure(fig, path, 80)


def grouped_bars(ax, series: dict, ylabel: str, title: str) -> None:
    """series: {bar label: {group: value}}; one group of bars per group name."""
    groups = list(dict.fromkeys(g for values in series.values() for g in values))
    width = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(groups))], [values.get(g, 0) for g in groups], width, label=label)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(groups))], groups, fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    ax.legend()


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


def plot_lr_find(found: dict, path) -> None:
    """lr_find's loss against the learning rate (log scale), the suggested rate marked."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(found["lrs"], found["losses"])
    if found.get("suggestion"):
        ax.axvline(found["suggestion"], color="tab:red", linestyle="--", label=f"suggested {found['suggestion']:.1e}")
        ax.legend()
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)", title="lr_find")
    save_figure(fig, path, 90)
