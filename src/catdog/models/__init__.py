"""Backbones (`catdog.models.cnn`, `catdog.models.mobilenet`), the XLA:CPU layer calls, and the named models of
the `model` config group."""

from catdog.models.registry import available_models, build_model

__all__ = ["available_models", "build_model"]
