"""Callbacks (Lightning's `lightning.pytorch.callbacks`): Keras callbacks that the Trainer also tells about the
run, each owning the state it needs to resume."""

from catdog.callbacks.base import Callback
from catdog.callbacks.early_stopping import EarlyStopping
from catdog.callbacks.error_analysis import ErrorAnalysis
from catdog.callbacks.model_checkpoint import ModelCheckpoint
from catdog.callbacks.progress import PredictionProgress
from catdog.callbacks.timer import EpochTimer

__all__ = ["Callback", "EarlyStopping", "EpochTimer", "ErrorAnalysis", "ModelCheckpoint", "PredictionProgress"]
