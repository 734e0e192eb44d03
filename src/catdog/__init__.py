"""catdog: image classification on your own folders with Keras 3 (JAX or TensorFlow), composed by Hydra.

Importing catdog does not import Keras, so that the backend can still be chosen (see `catdog.backend`); it
registers catdog's task classes with Keras' deserializer as soon as Keras is imported, so that
`keras.saving.load_model` opens a catdog checkpoint after a bare `import catdog`. `catdog.Trainer`,
`catdog.ImageClassifier` and `catdog.ImageFolderDataModule` import Keras when first used.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

_LAZY = {"ImageClassifier": "catdog.tasks", "Trainer": "catdog.trainer", "ImageFolderDataModule": "catdog.data"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'catdog' has no attribute {name!r}")


def _register_with_keras():
    importlib.import_module("catdog.tasks")


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps Keras' own loader so that catdog's classes register once Keras is loaded."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


class _Loader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _register_with_keras()

    def __getattr__(self, name):
        return getattr(self.loader, name)


if "keras" in sys.modules:
    _register_with_keras()
elif not any(isinstance(f, _RegisterAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
