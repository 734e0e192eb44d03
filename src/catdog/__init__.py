"""catdog: image classification on your own folders with Keras 3 (JAX or TensorFlow), composed by Hydra.

Keras fixes its backend when it is first imported, from KERAS_BACKEND. So `import catdog` imports Keras, and
registers catdog's Keras classes with its deserializer (`keras.saving.load_model` then opens a catdog
checkpoint), as soon as the backend is chosen: when Keras is already imported or KERAS_BACKEND is set. Without
either it waits, so that `python -m catdog.train backend=jax` can choose; `catdog.ImageClassifier`,
`catdog.Trainer` and the data modules import Keras (and register) when first used.
"""

import importlib
import os
import sys

__version__ = "0.1.0"

_LAZY = {"ImageClassifier": "catdog.tasks", "Trainer": "catdog.training", "DataModule": "catdog.data",
         "ImageFolderDataModule": "catdog.data", "ImageFilesDataModule": "catdog.data"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'catdog' has no attribute {name!r}")


if "keras" in sys.modules or os.environ.get("KERAS_BACKEND"):
    from catdog.backend import import_keras

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import_keras()
    import catdog.tasks  # noqa: F401  (registers catdog's Keras classes)
