"""The image classification task: what a checkpoint holds, and where custom training logic goes."""

import re

import keras
from keras import layers

from catdog.errors import CatdogError
from catdog.models.layers import leaf_layers, with_xla_cpu_layers

POOLING = {"flatten": layers.Flatten, "max": layers.GlobalMaxPooling2D, "avg": layers.GlobalAveragePooling2D}


def _check_learning_rate(optimizer):
    """A learning rate that is not a positive number trains to nonsense: refuse it, naming the key."""
    if isinstance(optimizer, keras.optimizers.Optimizer):
        rate = optimizer.get_config().get("learning_rate")
    else:
        rate = getattr(optimizer, "keywords", {}).get("learning_rate")
    if isinstance(rate, bool) or (rate is not None and not isinstance(rate, (int, float, dict))) or (
            isinstance(rate, (int, float)) and not 0 < rate < float("inf")):
        raise CatdogError(f"model.optimizer.learning_rate={rate!r}: must be a positive number.")


def _serialize(obj):
    return None if obj is None else keras.saving.serialize_keras_object(obj)


def _deserialize(obj):
    return keras.saving.deserialize_keras_object(obj) if isinstance(obj, dict) else obj


@keras.saving.register_keras_serializable("catdog")
class ImageClassifier(keras.Model):
    """Images in, class logits out: preprocessor -> backbone -> pooling (the `features` sub-model), then a head
    of Dropout, an optional Dense(hidden_units, relu) and Dense(len(class_names)).

    A Functional `keras.Model` (the shape of keras-hub's ImageClassifier): it saves and loads whole with
    `keras.saving.load_model` once `catdog` is imported, and keeps its `class_names`. Customise training as
    in Keras, by overriding `compute_loss` or `train_step` in a subclass: the Trainer fits the task itself,
    or, when the backbone is frozen and its features are cached, `feature_task()`, an instance of the same
    class over the features, so an override runs on every path.

    backbone: a keras Model (images to feature maps), or a function of the input shape that builds one.
    freeze_backbone: not trainable, and run in inference mode (BatchNormalization included) even when a
        later training stage unfreezes some of its layers (`set_trainable_backbone_layers`).
    optimizer, loss, metrics, jit_compile, steps_per_execution: `compile()`'s defaults, as in keras-hub
        ("auto": Adam(1e-3), sparse categorical cross-entropy on logits, accuracy).
    xla_cpu_layers: on JAX with a CPU, build the backbone's pooling and depthwise layers as catdog's subclasses
        with faster calls that compute the same (`catdog.models.layers`).
    head: a Keras model from the features to the class logits, instead of Dropout and Dense layers; saved with
        the task.
    """

    def __init__(self, backbone, class_names, image_size=None, preprocessor=None, pooling="avg", dropout=0.0,
                 hidden_units=None, freeze_backbone=False, optimizer="auto", loss="auto", metrics="auto",
                 jit_compile="auto", steps_per_execution=1, xla_cpu_layers=True, head=None, **kwargs):
        unknown = sorted(set(kwargs) - {"name", "trainable", "dtype"})
        if unknown:
            raise CatdogError(f"model: unknown option(s) {', '.join(unknown)} for {type(self).__name__}.")
        class_names = [str(c) for c in class_names]
        if len(class_names) < 2 or len(set(class_names)) != len(class_names):
            raise CatdogError(f"class_names={class_names!r}: a classifier needs at least two distinct class names.")
        if pooling is not None and pooling not in POOLING:
            raise CatdogError(f"model.pooling={pooling!r}: choose one of {', '.join(POOLING)} (or null).")
        if not 0 <= dropout < 1:
            raise CatdogError(f"model.dropout={dropout!r}: must be in [0, 1).")
        if hidden_units is not None and (not isinstance(hidden_units, int) or hidden_units < 1):
            raise CatdogError(f"model.hidden_units={hidden_units!r}: must be a positive integer or null.")
        _check_learning_rate(optimizer)
        if image_size is not None:
            image_size = [int(s) for s in image_size]
        if callable(backbone) and not isinstance(backbone, keras.layers.Layer):
            if image_size is None:
                raise CatdogError("ImageClassifier: a backbone factory needs image_size.")
            try:
                backbone = backbone((*image_size[:2], 3))
            except ValueError as exc:  # e.g. an image too small for the backbone's convolutions and poolings
                reason = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split("Arguments received")[0].split())
                raise CatdogError(f"model.backbone cannot be built for images of {image_size[0]}x{image_size[1]} "
                                  f"(dataset.image_size): {reason}") from exc
        input_shape = tuple(image_size) if image_size is not None and len(image_size) != 2 else None
        if input_shape is None:
            input_shape = (*image_size, 3) if image_size is not None else tuple(backbone.input_shape[1:])
        if backbone is not None and xla_cpu_layers:
            backbone = with_xla_cpu_layers(backbone)
        if backbone is not None and freeze_backbone:
            backbone.trainable = False

        # === Layers ===
        self.backbone, self.preprocessor = backbone, preprocessor
        inputs = keras.Input(input_shape, name="images")
        x = preprocessor(inputs) if preprocessor is not None else inputs
        if backbone is not None:
            x = backbone(x, training=False) if freeze_backbone else backbone(x)
        if pooling is not None:
            x = POOLING[pooling](name=f"{pooling}_pool")(x)
        self.features = keras.Model(inputs, x, name="features")
        if head is None:
            stack = [keras.Input(self.features.output_shape[1:])]
            stack += [layers.Dropout(dropout)] if dropout else []
            stack += [layers.Dense(hidden_units, activation="relu")] if hidden_units else []
            head = keras.Sequential([*stack, layers.Dense(len(class_names), dtype="float32")], name="head")
        self.head = head

        # === Functional model ===
        images = keras.Input(input_shape, name="images")
        super().__init__(images, self.head(self.features(images)), **kwargs)

        # === Config ===
        self.class_names = class_names
        self.image_size = list(input_shape)
        self.pooling, self.dropout, self.hidden_units = pooling, dropout, hidden_units
        self.freeze_backbone, self.xla_cpu_layers = freeze_backbone, xla_cpu_layers
        self.compile_defaults = {"optimizer": optimizer, "loss": loss, "metrics": metrics, "jit_compile": jit_compile,
                                 "steps_per_execution": steps_per_execution}

    # --- Keras' task defaults, as keras-hub's compile(optimizer="auto", ...) ---
    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        defaults = self.compile_defaults
        if optimizer == "auto":
            optimizer = defaults["optimizer"] if isinstance(defaults["optimizer"], (str, keras.optimizers.Optimizer)) \
                else self.configure_optimizer()
        loss = defaults["loss"] if loss == "auto" else loss
        metrics = defaults["metrics"] if metrics == "auto" else metrics
        kwargs.setdefault("jit_compile", defaults["jit_compile"])
        kwargs.setdefault("steps_per_execution", defaults["steps_per_execution"])
        super().compile(
            optimizer=keras.optimizers.Adam(1e-3) if optimizer == "auto" else optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True) if loss == "auto" else loss,
            metrics=["accuracy"] if metrics == "auto" else list(metrics), **kwargs)

    def configure_optimizer(self, learning_rate=None):
        """A fresh optimizer like the configured one (an optimizer, or a function that makes one, as
        `_partial_: true` in config gives; Adam(1e-3) by default), at `learning_rate` (a rate or a Keras
        schedule) when given."""
        configured = self.compile_defaults["optimizer"]
        if configured == "auto":
            configured = keras.optimizers.Adam(1e-3)
        elif isinstance(configured, str):
            configured = keras.optimizers.get(configured)
        if not isinstance(configured, keras.optimizers.Optimizer):
            rate = learning_rate if learning_rate is not None else getattr(configured, "keywords", {}).get(
                "learning_rate")
            if rate is not None and not isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
                rate = float(rate)
            return configured() if rate is None else configured(learning_rate=rate)
        config = configured.get_config()
        if learning_rate is not None:
            config["learning_rate"] = learning_rate
        return type(configured).from_config(config)

    # --- the backbone, for training stages and the feature cache ---
    @property
    def backbone_frozen(self) -> bool:
        """True when nothing before the head trains: the features can be computed once and cached."""
        return not self.features.trainable_weights

    def set_trainable_backbone_layers(self, count=None, fraction=None) -> int:
        """Freeze the backbone (0), or make its last `count` layers trainable (-1: all), or its top `fraction` of
        them, BatchNormalization excepted; returns how many layers with weights now train."""
        if self.backbone is None:
            raise CatdogError(f"{self.name} has no backbone to unfreeze.")
        leaves = list(leaf_layers(self.backbone))
        count = round(fraction * len(leaves)) if fraction is not None else count
        count = len(leaves) if count < 0 else count
        self.backbone.trainable = count > 0
        for i, layer in enumerate(leaves):
            layer.trainable = i >= len(leaves) - count and not isinstance(layer, keras.layers.BatchNormalization)
        return sum(layer.trainable and bool(layer.weights) for layer in leaves)

    def feature_task(self):
        """This task's class over its features: the same head (shared weights) with no preprocessor or backbone,
        to train on cached features with this class's `compute_loss` and `train_step`."""
        config = {**self.get_config(), "backbone": None, "preprocessor": None, "pooling": None,
                  "image_size": list(self.features.output_shape[1:]), "head": self.head,
                  "name": f"{self.name}_on_features", "xla_cpu_layers": False}
        task = type(self).from_config(config)
        task.compile_defaults = self.compile_defaults
        return task

    # --- saving ---
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "backbone": _serialize(self.backbone),
                "class_names": self.class_names, "image_size": self.image_size,
                "preprocessor": _serialize(self.preprocessor), "pooling": self.pooling, "dropout": self.dropout,
                "hidden_units": self.hidden_units, "freeze_backbone": self.freeze_backbone,
                "xla_cpu_layers": self.xla_cpu_layers, "head": _serialize(self.head)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "preprocessor", "head"):
            config[key] = _deserialize(config.get(key))
        backbone = config["backbone"]
        saved = None if backbone is None else [layer.trainable for layer in [backbone, *leaf_layers(backbone)]]
        task = cls(**config)
        if saved is not None:  # a fine-tuning stage's trainable layers, as they were saved
            for layer, trainable in zip([task.backbone, *leaf_layers(task.backbone)], saved):
                layer.trainable = trainable
        return task
