"""Error analysis of a classifier's predictions: confusion matrix, per-class precision / recall / F1 and the
most confidently wrong images."""

import numpy as np


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


def most_confused(matrix, class_names, top=10) -> list[dict]:
    """fastai's most_confused: the (true, predicted) pairs of different classes with the most images, most first."""
    matrix = np.asarray(matrix)
    pairs = [(int(matrix[i, j]), i, j) for i in range(len(matrix)) for j in range(len(matrix))
             if i != j and matrix[i, j]]
    return [{"true": class_names[i], "predicted": class_names[j], "images": n}
            for n, i, j in sorted(pairs, key=lambda p: (-p[0], p[1], p[2]))[:top]]
