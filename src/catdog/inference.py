"""Load a trained classifier safely and run it on decoded images."""

from pathlib import Path

import numpy as np

from catdog.errors import CatdogError


def load_classifier(ckpt_path, safe_mode=True):
    """A checkpoint (any `.keras` model) and its class names (None when it does not name them)."""
    import keras

    import catdog  # noqa: F401  (registers catdog's classes with Keras' deserializer)

    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise CatdogError(f"ckpt_path={ckpt_path}: no such checkpoint file.")
    try:
        model = keras.saving.load_model(path, safe_mode=safe_mode, compile=False)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise CatdogError(
                f"Refused to load {path}: it holds a Lambda layer, i.e. code that would run on load. "
                "Load it only if you trust its author, with safe_mode=false."
            ) from exc
        raise CatdogError(f"ckpt_path={ckpt_path} is not a loadable Keras model: {exc}") from exc
    except Exception as exc:
        raise CatdogError(f"ckpt_path={ckpt_path} is not a loadable Keras model: {exc}") from exc
    return model, getattr(model, "class_names", None)


def predict_probabilities(model, images: np.ndarray, batch_size=32) -> np.ndarray:
    """Softmax class probabilities for uint8 images of the model's input size, made float a batch at a time."""
    from catdog.data.loaders import array_loader

    return softmax(model.predict(array_loader(images, np.zeros(len(images), "int32"), batch_size), verbose=0))


def softmax(logits) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
