"""The training loop: the Trainer and its concerns (checkpoints, run directory, signals, strategy, precision,
stages, the feature cache). Importing the package imports no Keras, so an entry point can still choose the
backend; its classes import it when first used."""

import importlib

_LAZY = {"Trainer": "catdog.training.trainer", "FeatureCache": "catdog.training.feature_cache",
         "Stage": "catdog.training.stages"}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'catdog.training' has no attribute {name!r}")
