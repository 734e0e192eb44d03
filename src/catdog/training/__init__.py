"""The training loop: the Trainer and its concerns (checkpoints, run directory, signals, strategy, precision,
stages, the feature cache)."""

from catdog.training.feature_cache import FeatureCache
from catdog.training.stages import Stage
from catdog.training.trainer import Trainer

__all__ = ["FeatureCache", "Stage", "Trainer"]
