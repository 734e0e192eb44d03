"""Registered model builders; importing this package registers the built-in ones."""

from catdog.models import cnn, mobilenet  # noqa: F401  (registers the builders)
from catdog.models.registry import available_models, build_model, register_model

__all__ = ["available_models", "build_model", "register_model"]
