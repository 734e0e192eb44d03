"""The feature cache: a training stage whose task has a frozen backbone computes the task's `features` once
(or reads them from the cache folder) and trains the head on them, through `task.feature_task()`."""

import hashlib
import json
import logging
import math
from pathlib import Path

import keras
import numpy as np

from catdog.data.base import DataModule
from catdog.data.cache import cached_rows
from catdog.data.loaders import array_loader
from catdog.errors import CatdogError
from catdog.models.layers import leaf_layers
from catdog.training.onnx_runtime import numpy_batches, onnx_predict, session_predict
from catdog.utils.progress import Progress

log = logging.getLogger(__name__)


def layer_configs(layers) -> list:
    """Each layer's class and config, less its name (names count up per process)."""
    return [[type(layer).__name__, {k: v for k, v in layer.get_config().items() if k != "name"}] for layer in layers]


class FeatureDataModule(DataModule):
    """An image data module's splits as backbone features, computed once (or read from `cache_dir`).

    Validation and test are the features of their images. Training without augmentation is the features
    of the training images, shuffled and batched exactly as the image pipeline does; with augmentation
    it is `views` augmented passes over the training images, and each epoch draws one epoch's worth of
    samples from that pool. `runtime`: who computes the features, Keras' predict or ONNX Runtime
    (`onnx_predict`) in float32 or int8 (`catdog.training.int8`). auto picks ONNX Runtime on TensorFlow and JAX
    (features already cached, by either; else int8 where its check passes on this machine, else float32), and
    Keras on other backends; `runtime_reason` says why.
    """

    def __init__(self, images, features, views=4, batch_size=64, cache_dir=None, max_images=None, runtime="auto"):
        self.images, self.features, self.augment = images, features, images.augment
        self.runtime = resolve_runtime(runtime)
        self.runtime_reason = "trainer.feature_cache.runtime" if runtime != "auto" else "this backend"
        self.max_images = max_images or {}  # {split: n}: only the first n images (a fast_dev_run)
        self.views = views if self.augment is not None else 1
        self.predict_batch_size, self.cache_dir = batch_size, cache_dir
        self.batch_size, self.seed = images.batch_size, images.seed
        self.arrays, self._onnx_predict, self._int8 = {}, None, None

    def setup(self, stage=None) -> None:
        if self.runtime == "auto":
            self.runtime, self.runtime_reason = self._choose_runtime()
        for split in SPLITS:
            self.arrays[split] = self._features(split, *self._views(split))

    def _views(self, split):
        return (self.views, self.augment) if split == "train" else (1, None)

    def _choose_runtime(self) -> tuple[str, str]:
        """ONNX Runtime in int8 or float32: the one whose features are cached, else int8 where its check
        passes (`catdog.training.int8`)."""
        if self.cache_dir:
            folder = Path(self.cache_dir).expanduser()
            for runtime in ("onnxruntime_int8", "onnxruntime"):
                keys = {split: self._key(split, *self._views(split), runtime) for split in SPLITS}
                if all(not self.num_images(s) or (folder / f"features-{s}-{keys[s]}.json").is_file() for s in SPLITS):
                    return runtime, "its features are in the cache"
        session, result = self._int8_session()
        return ("onnxruntime_int8" if session else result.get("runtime", "onnxruntime")), result["reason"]

    def _int8_session(self):
        """(session or None, the int8 check's result), made once."""
        if self._int8 is None:
            from catdog.training import int8

            images = self.images.arrays["train"][0]
            # 16 calibration images (ONNX Runtime keeps every activation of every one: about 30 MB an image for
            # MobileNetV2 at 160 px), then up to 128 others to check on
            n = min(len(images) // 2, int8.CALIBRATION_IMAGES)
            if not self.cache_dir:
                self._int8 = None, {"reason": "no cache folder to keep an int8 model in"}
            elif n < 8:
                self._int8 = None, {"reason": "too few training images to check int8 features on"}
            else:
                calibration = np.asarray(images[:n], "float32")
                sample = np.asarray(images[n:n + int8.CHECK_IMAGES], "float32")
                fp32 = Path(self.cache_dir).expanduser() / f"features-{self._model_key()}.onnx"
                try:
                    self._onnx_predict = self._onnx_predict or onnx_predict(self.features, fp32)
                except Exception as exc:  # tf2onnx and ONNX Runtime raise many types (e.g. ConvNeXt's grouped convs)
                    self._int8 = None, {"runtime": "keras", "reason": "ONNX Runtime cannot run this features model "
                                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"}
                    return self._int8
                key = hashlib.sha256(self._model_key().encode() + calibration.tobytes()).hexdigest()[:24]
                self._int8 = int8.int8_session(fp32, calibration, sample, fp32.parent, key) if fp32.is_file() else (
                    None, {"reason": "the float32 ONNX export could not be kept to quantize"})
        return self._int8

    def _model_key(self) -> str:
        """The features model: its weights and its layers' configs."""
        h = hashlib.sha256()
        for w in self.features.weights:
            h.update(np.asarray(w.numpy()).tobytes())
        h.update(json.dumps(layer_configs(leaf_layers(self.features)), default=str, sort_keys=True).encode())
        return h.hexdigest()[:24]

    def _key(self, split, views, augment, runtime=None) -> str:
        images = self._split(split)[0]
        h = hashlib.sha256(images.fingerprint().encode() if hasattr(images, "fingerprint") else images.tobytes())
        h.update(self._model_key().encode())
        augment_layers = list(augment.layers) if augment is not None else []
        for variable in (v for layer in augment_layers for v in layer.non_trainable_variables):
            h.update(np.asarray(variable.numpy()).tobytes())  # the seed generators' states: which draws
        configs = layer_configs(augment_layers)
        # augmented views depend on whose kernels augment: tf.data's TensorFlow, or NumPy batches' backend
        engine = None if augment is None else "tf_data" if self.images.loader == "tf_data" else keras.backend.backend()
        batch = None if augment is None else self.predict_batch_size  # augmentation draws per batch
        h.update(json.dumps([views, self.seed, configs, engine, batch, runtime or self.runtime], default=str,
                            sort_keys=True).encode())
        return h.hexdigest()[:24]

    def _features(self, split, views, augment):
        """`views` passes of features over the split's images, written batch by batch to rows on disk (in
        memory without a cache folder)."""
        images, labels = self._split(split)
        shape = (views * len(labels), *self.features.output_shape[1:])
        if not len(labels):
            return np.zeros(shape, "float32"), labels

        def fill(store):
            loader = array_loader(images, labels, self.predict_batch_size, loader=self.images.loader, augment=augment)
            row = 0
            progress = Progress(f"Features of the {split} images" + (f" ({views} augmented views)" if views > 1 else ""),
                                shape[0])
            for _ in range(views):
                for batch in self._predict(loader):
                    store.write(row, batch)
                    row += len(batch)
                    progress.advance(len(batch))
            progress.close()
            return {"rows": row}

        key = self._key(split, views, augment) if self.cache_dir else ""
        feats, _ = cached_rows(self.cache_dir, f"features-{split}", key, shape, "float32", fill)
        return feats, np.tile(labels, views)

    def _predict(self, loader):
        """The features of each batch of `loader`, a generator."""
        if self.runtime == "keras":
            return (np.asarray(self.features.predict_on_batch(x)) for x, _ in numpy_batches(loader))
        if self.runtime == "onnxruntime_int8":
            session, result = self._int8_session()
            if session is None:
                raise CatdogError(f"trainer.feature_cache.runtime=onnxruntime_int8: {result['reason']}. "
                                  "Use runtime=auto or onnxruntime.")
            return session_predict(session)(loader)
        if self._onnx_predict is None:  # one export per features model, and none when every split is cached
            cache = Path(self.cache_dir).expanduser() if self.cache_dir else None
            try:
                self._onnx_predict = onnx_predict(self.features, cache and cache / f"features-{self._model_key()}.onnx")
            except Exception as exc:  # tf2onnx and ONNX Runtime raise many types (e.g. ConvNeXt's grouped convs)
                log.warning("ONNX Runtime cannot run this features model (%s: %s); computing the features with "
                            "Keras (trainer.feature_cache.runtime=keras skips the attempt).", type(exc).__name__,
                            str(exc).splitlines()[0][:300] if str(exc) else "")
                self.runtime = "keras"
                return self._predict(loader)
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

    def train_dataloader(self, limit_batches=None, first_epoch=0):
        feats, labels = self.arrays["train"]
        if self.views == 1:
            return self._loader(feats, labels, seed=self.seed, limit_batches=limit_batches, first_epoch=first_epoch)
        return self._loader(feats, labels, seed=self.seed, repeat=True, first_epoch=first_epoch)

    def val_dataloader(self, limit_batches=None):
        return self._loader(*self.arrays["val"], limit_batches=limit_batches)

    def test_dataloader(self, limit_batches=None):
        return self._loader(*self.arrays["test"], limit_batches=limit_batches)

    def _loader(self, x, y, **options):
        return array_loader(x, y, self.batch_size, loader=self.images.loader, **options)


RUNTIMES = ("auto", "keras", "onnxruntime", "onnxruntime_int8")
SPLITS = ("train", "val", "test")


def resolve_runtime(runtime: str) -> str:
    """auto stays auto on TensorFlow and JAX (ONNX Runtime, its precision chosen at setup), else Keras' predict."""
    if runtime not in RUNTIMES:
        raise CatdogError(f"trainer.feature_cache.runtime={runtime!r}: must be one of {', '.join(RUNTIMES)}.")
    if runtime == "auto" and keras.backend.backend() not in ("tensorflow", "jax"):
        return "keras"
    return runtime


class FeatureCache:
    """The Trainer's strategy for a stage whose task has a frozen backbone: train `task.feature_task()` on the
    task's features, computed once per features model (`views` augmented passes over the training images)
    and kept in `cache_dir` (default: the data module's) for later runs."""

    def __init__(self, enabled=True, views=4, batch_size=64, runtime="auto", cache_dir=None):
        for key, value in {"views": views, "batch_size": batch_size}.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CatdogError(f"trainer.feature_cache.{key}={value!r}: must be a positive integer.")
        if runtime not in RUNTIMES:
            raise CatdogError(f"trainer.feature_cache.runtime={runtime!r}: must be one of {', '.join(RUNTIMES)}.")
        self.enabled, self.views, self.batch_size, self.cache_dir = enabled, views, batch_size, cache_dir
        self.runtime = runtime
        self.resolved_runtime = self.runtime_reason = None
        self._data = {}

    def applies(self, task, datamodule) -> bool:
        """A frozen backbone over an image folder's decoded arrays (a data module of your own trains on images)."""
        return bool(self.enabled) and task.backbone_frozen and hasattr(datamodule, "arrays")

    def data(self, task, datamodule, max_images=None):
        """The feature data module of `task`'s current features model, set up once."""
        data = FeatureDataModule(datamodule, task.features, self.views, self.batch_size,
                                 self.cache_dir or datamodule.cache_dir, max_images, self.runtime)
        key = (data._model_key(), id(datamodule), tuple(sorted((max_images or {}).items())))
        if key not in self._data:
            data.setup()
            self._data[key] = data
            self.resolved_runtime, self.runtime_reason = data.runtime, data.runtime_reason
            log.info("Training the head on cached features (%s; computed by %s: %s)",
                     f"{data.views} augmented views" if data.augment is not None else "no augmentation", data.runtime,
                     data.runtime_reason)
        return self._data[key]
