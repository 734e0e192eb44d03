"""Load a trained task from a checkpoint file, refusing files that would allocate or run what they should not."""

import json
import math
import zipfile
from pathlib import Path

from catdog.errors import CatdogError

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


def load_task(ckpt_path, safe_mode=True):
    """A checkpoint (any `.keras` model) and its class names (None when it does not name them). A model that is
    not a catdog task is compiled as one: its outputs taken as logits, scored by accuracy."""
    import keras

    from catdog.tasks.classifier import ImageClassifier

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
    if not isinstance(model, ImageClassifier):
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model, getattr(model, "class_names", None)
