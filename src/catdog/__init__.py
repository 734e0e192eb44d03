"""catdog: image classification on your own folders with Keras 3 (JAX or TensorFlow), composed by Hydra.

Importing catdog does not import Keras: the backend is chosen first (see `catdog.backend`).
"""

__version__ = "0.1.0"
