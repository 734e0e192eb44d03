"""Frozen-backbone training: compute a frozen `features` model's outputs once, train the `head` on them.

A registered builder opts in by returning `Model(inputs, head(features(inputs)))` with a frozen
sub-model named "features" and a trainable one named "head" (see `catdog.models.mobilenet`).
"""

import gc
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

from catdog.data.cache import cached_arrays
from catdog.data.loaders import array_loader
from catdog.errors import CatdogError
from catdog.io import atomic_path

log = logging.getLogger(__name__)


def leaf_layers(model):
    """Every non-model layer inside `model`, nested models flattened, in order."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def layer_configs(layers) -> list:
    """Each layer's class and config, less its name (names count up per process)."""
    return [[type(layer).__name__, {k: v for k, v in layer.get_config().items() if k != "name"}] for layer in layers]


def unfreeze_top(features, count: int) -> int:
    """Make the last `count` layers of `features` trainable, BatchNormalization excepted; returns how many."""
    layers = list(leaf_layers(features))
    features.trainable = True
    for i, layer in enumerate(layers):
        layer.trainable = i >= len(layers) - count and not isinstance(layer, keras.layers.BatchNormalization)
    return sum(layer.trainable and bool(layer.weights) for layer in layers)


def onnx_predict(model, onnx_file=None):
    """`model`'s predict(loader) through ONNX Runtime's CPU provider, on Keras' own ONNX export by tf2onnx
    (`export_onnx`), 2.2-2.4x as fast as Keras for MobileNetV2 (results/feature_runtime, results/epyc).
    `onnx_file`: where the export is kept, and read back instead of exporting when it is there."""
    import onnxruntime

    session = _cached_session(onnx_file) if onnx_file and Path(onnx_file).is_file() else None
    if session is None:
        with tempfile.TemporaryDirectory() as tmp:
            exported = Path(tmp) / f"{model.name}.onnx"
            export_onnx(model, exported)
            session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
            if onnx_file:
                with atomic_path(onnx_file) as partial:
                    shutil.copyfile(exported, partial)
    name = session.get_inputs()[0].name

    def predict(loader):
        return np.concatenate([session.run(None, {name: x})[0] for x, _ in numpy_batches(loader)])

    return predict


def export_onnx(model, path) -> None:
    """Keras' ONNX export of `model` through tf2onnx: in this process on TensorFlow, elsewhere in a TensorFlow
    child process from a .keras copy. JAX's own export (jax2onnx) gives a graph that ONNX Runtime ran 3x
    slower than Keras (results/feature_runtime)."""
    if keras.backend.backend() == "tensorflow":
        model.export(str(path), format="onnx", verbose=False)
        gc.collect()  # the conversion leaves about 0.6 GB of TensorFlow graphs in reference cycles
        return
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "features.keras"
        model.save(saved)
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
        child = subprocess.run([sys.executable, "-m", "catdog.features", str(saved), str(path)], env=env,
                               capture_output=True, text=True)
    if child.returncode:
        raise CatdogError(f"Exporting the features model to ONNX on TensorFlow failed:\n{child.stderr[-1500:]}\n"
                          "Set trainer.feature_cache.runtime=keras to compute the features with Keras instead.")


def numpy_batches(loader):
    """(x, y) NumPy batches of a tf.data loader or of a PyDataset."""
    if hasattr(loader, "as_numpy_iterator"):
        return loader.as_numpy_iterator()
    return (loader[i] for i in range(len(loader)))


def _cached_session(path):
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's exception types are not public
        log.warning("Ignoring unreadable ONNX file %s (%s); exporting again.", path, exc)
        return None


def frozen_split(network):
    """(features, head) when `network` is head(features(x)) with a frozen `features` model, else None."""
    names = {layer.name: layer for layer in network.layers}
    features, head = names.get("features"), names.get("head")
    if features is None or head is None or features.trainable_weights:
        return None
    return features, head


class FeatureDataModule:
    """An image data module's splits as backbone features, computed once (or read from `cache_dir`).

    Validation and test are the features of their images. Training without augmentation is the features
    of the training images, shuffled and batched exactly as the image pipeline does; with augmentation
    it is `views` augmented passes over the training images, and each epoch draws one epoch's worth of
    samples from that pool. `runtime`: who computes the features, Keras' predict or ONNX Runtime
    (`onnx_predict`); auto picks ONNX Runtime on TensorFlow and JAX, and Keras on other backends.
    """

    def __init__(self, images, features, augment=None, views=4, batch_size=64, cache_dir=None, max_images=None,
                 runtime="auto"):
        if runtime == "auto":
            runtime = "onnxruntime" if keras.backend.backend() in ("tensorflow", "jax") else "keras"
        self.images, self.features, self.augment, self.runtime = images, features, augment, runtime
        self.max_images = max_images or {}  # {split: n}: only the first n images (a fast_dev_run)
        self.views = views if augment is not None else 1
        self.predict_batch_size, self.cache_dir = batch_size, cache_dir
        self.batch_size, self.seed = images.batch_size, images.seed
        self.arrays, self._onnx_predict = {}, None

    def setup(self) -> None:
        for split in ("train", "val", "test"):
            views, augment = (self.views, self.augment) if split == "train" else (1, None)
            self.arrays[split] = self._features(split, views, augment)

    def _model_key(self) -> str:
        """The features model: its weights and its layers' configs."""
        h = hashlib.sha256()
        for w in self.features.weights:
            h.update(np.asarray(w.numpy()).tobytes())
        h.update(json.dumps(layer_configs(leaf_layers(self.features)), default=str, sort_keys=True).encode())
        return h.hexdigest()[:24]

    def _key(self, split, views, augment) -> str:
        h = hashlib.sha256(self._split(split)[0].tobytes())
        h.update(self._model_key().encode())
        augment_layers = list(augment.layers) if augment is not None else []
        for variable in (v for layer in augment_layers for v in layer.non_trainable_variables):
            h.update(np.asarray(variable.numpy()).tobytes())  # the seed generators' states: which draws
        configs = layer_configs(augment_layers)
        # augmented views depend on whose kernels augment: tf.data's TensorFlow, or NumPy batches' backend
        engine = None if augment is None else "tf_data" if self.images.loader == "tf_data" else keras.backend.backend()
        batch = None if augment is None else self.predict_batch_size  # augmentation draws per batch
        h.update(json.dumps([views, self.seed, configs, engine, batch, self.runtime], default=str,
                            sort_keys=True).encode())
        return h.hexdigest()[:24]

    def _features(self, split, views, augment):
        images, labels = self._split(split)
        if not len(labels):
            return np.zeros((0, *self.features.output_shape[1:]), "float32"), labels

        def compute():
            loader = array_loader(images, labels, self.predict_batch_size, loader=self.images.loader, augment=augment)
            passes = [self._predict(loader) for _ in range(views)]
            return {"features": np.concatenate(passes).astype("float32")}

        if self.cache_dir:
            feats = cached_arrays(self.cache_dir, f"features-{split}", self._key(split, views, augment), compute)
        else:
            feats = compute()
        return feats["features"], np.tile(labels, views)

    def _predict(self, loader):
        if self.runtime == "keras":
            return self.features.predict(loader, verbose=0)
        if self._onnx_predict is None:  # one export per features model, and none when every split is cached
            cache = Path(self.cache_dir).expanduser() if self.cache_dir else None
            self._onnx_predict = onnx_predict(self.features, cache and cache / f"features-{self._model_key()}.onnx")
        return self._onnx_predict(loader)

    def _split(self, split):
        images, labels = self.images.arrays[split]
        n = self.max_images.get(split)
        return (images[:n], labels[:n]) if n else (images, labels)

    def num_images(self, split: str) -> int:
        return len(self._split(split)[1])

    def steps_per_epoch(self, limit_batches=None):
        """With augmented views the pool is repeated, so an epoch is one pass's worth of batches."""
        if self.views == 1:
            return None
        steps = math.ceil(self.num_images("train") / self.batch_size)
        return min(steps, limit_batches) if limit_batches else steps

    def train_dataloader(self, augment=None, limit_batches=None):
        feats, labels = self.arrays["train"]
        if self.views == 1:
            return self._loader(feats, labels, seed=self.seed, limit_batches=limit_batches)
        return self._loader(feats, labels, seed=self.seed, repeat=True)

    def val_dataloader(self, limit_batches=None):
        return self._loader(*self.arrays["val"], limit_batches=limit_batches)

    def test_dataloader(self, limit_batches=None):
        return self._loader(*self.arrays["test"], limit_batches=limit_batches)

    def _loader(self, x, y, **options):
        return array_loader(x, y, self.batch_size, loader=self.images.loader, **options)


if __name__ == "__main__":  # export_onnx's TensorFlow child: python -m catdog.features MODEL.keras OUT.onnx
    import catdog.models  # noqa: F401  (registers catdog's layers for loading)

    network = keras.saving.load_model(sys.argv[1])
    network(np.zeros((1, *network.input_shape[1:]), "float32"))  # Keras exports only models that were called
    network.export(sys.argv[2], format="onnx", verbose=False)
