"""Task models: what is trained, what a checkpoint holds."""

from catdog.tasks.classifier import ImageClassifier
from catdog.tasks.focal import FocalLossClassifier
from catdog.tasks.losses import SparseCategoricalCrossentropy

__all__ = ["FocalLossClassifier", "ImageClassifier", "SparseCategoricalCrossentropy"]
