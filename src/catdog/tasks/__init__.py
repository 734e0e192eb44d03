"""Task models: what is trained, what a checkpoint holds."""

from catdog.tasks.classifier import ImageClassifier

__all__ = ["ImageClassifier"]
