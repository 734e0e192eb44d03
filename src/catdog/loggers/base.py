"""Loggers (Lightning's role): per-epoch metrics while fitting, then the run's summary, each in its own store.

A logger is a catdog Callback (it sees every epoch's logs) with `log_hyperparams`, `log_metrics` and
`finalize`. The Trainer keeps model metrics apart from run provenance (versions, CPU, backend, XLA flags).
"""

import numbers
import re

from catdog.callbacks.base import Callback
from catdog.utils.config import flatten


def metric_name(key: str) -> str:
    """`key` as a metric, param or tag name that MLflow and TensorBoard accept: characters other than letters,
    digits, `_`, `.`, `-` and `/` become `_`."""
    return re.sub(r"[^A-Za-z0-9_./-]", "_", key)


def scalars(metrics: dict) -> dict:
    """The real numbers among `metrics` (numpy's too, not bools), nested ones flattened, by `_name`."""
    return {metric_name(k): float(v) for k, v in flatten(metrics).items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool)}


class Logger(Callback):
    """The logger interface; its `on_epoch_end` receives Keras' epoch logs, after the epoch's checkpoint."""

    @property
    def epoch_counts(self) -> bool:
        """Whether the epoch that just ended is complete: one stopped before its last batch is run again on
        resume, so a store that keeps every value (TensorBoard, MLflow) skips it."""
        return self.trainer is None or self.trainer.epoch_complete

    def log_hyperparams(self, params: dict) -> None:
        pass

    def log_metrics(self, metrics: dict, step=None) -> None:
        pass

    def log_provenance(self, provenance: dict) -> None:
        pass

    def finalize(self, status: str = "success") -> None:
        """The run's end: "success" after the test, "failed" or "killed" when its fit stopped on an error or
        a signal (it may still be resumed)."""
