"""Load a trained classifier safely and run it on decoded images."""

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from catdog.errors import CatdogError
from catdog.progress import Progress

MAX_INPUT_VALUES = 4096 * 4096 * 3  # per image: a larger declared input is refused before anything is built


def check_input_shapes(path, max_values=MAX_INPUT_VALUES) -> None:
    """Refuse a .keras file whose config declares an input of more than `max_values` values per image, before
    Keras allocates it (a 4 KB file can declare a 30000x30000 input)."""
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise CatdogError(f"ckpt_path={path} is not a Keras .keras file ({exc}).") from exc

    def shapes(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("batch_shape", "batch_input_shape", "image_size") and isinstance(value, list):
                    yield value
                else:
                    yield from shapes(value)
        elif isinstance(node, list):
            for item in node:
                yield from shapes(item)

    for shape in shapes(config):
        per_image = shape[1:] if shape and shape[0] is None else shape  # batch_shape leads with the batch
        dims = [d for d in per_image if isinstance(d, int) and not isinstance(d, bool)]
        if any(d < 0 for d in dims) or math.prod(dims) > max_values:
            raise CatdogError(f"Refused to load {path}: it declares an input of shape {shape}, over "
                              f"{max_values:,} values per image.")


def load_classifier(ckpt_path, safe_mode=True):
    """A checkpoint (any `.keras` model) and its class names (None when it does not name them)."""
    import keras

    import catdog  # noqa: F401  (registers catdog's classes with Keras' deserializer)

    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise CatdogError(f"ckpt_path={ckpt_path}: no such checkpoint file.")
    check_input_shapes(path)
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
    """Softmax class probabilities for uint8 images of the model's input size, made float a batch at a time
    (with progress lines past a few seconds)."""
    import keras

    from catdog.data.loaders import array_loader

    progress = Progress("Predicting", len(images))

    class Counting(keras.callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            progress.advance(min(batch_size, len(images) - batch * batch_size))

    logits = model.predict(array_loader(images, np.zeros(len(images), "int32"), batch_size), verbose=0,
                           callbacks=[Counting()])
    progress.close()
    return softmax(logits)


def softmax(logits) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
