"""Loggers (Lightning's `lightning.pytorch.loggers`): per-epoch metrics while fitting, then the run's summary,
each in its own store."""

from catdog.loggers.base import Logger
from catdog.loggers.csv import CSVLogger
from catdog.loggers.mlflow import MLflowLogger
from catdog.loggers.tensorboard import TensorBoardLogger

__all__ = ["CSVLogger", "Logger", "MLflowLogger", "TensorBoardLogger"]
