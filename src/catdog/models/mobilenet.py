"""The tutorial's transfer-learning model (its model4): a frozen ImageNet MobileNetV2 and a small head."""

from pathlib import Path

import keras
from keras import layers

from catdog.errors import CatdogError
from catdog.models.layers import with_fast_layers
from catdog.models.registry import register_model

BASE_NAME = "mobilenetv2_base"


def imagenet_weights_file(input_shape, alpha, weights_url) -> str:
    """Download (once, into ~/.keras/models) the no-top ImageNet file Keras itself would use."""
    size = input_shape[0] if input_shape[0] in (96, 128, 160, 192, 224) else 224
    fname = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{size}_no_top.h5"
    try:
        return keras.utils.get_file(fname, weights_url.rstrip("/") + "/" + fname, cache_subdir="models")
    except Exception as exc:
        raise CatdogError(
            f"Could not download the MobileNetV2 ImageNet weights ({exc}). If this machine is offline, set "
            "model.weights to a local file, e.g. "
            "model.weights=../shared/weights/mobilenet_v2_1.0_224_imagenet_no_top.weights.h5."
        ) from exc


def mobilenet_base(input_shape, weights="imagenet", alpha=1.0, weights_url=None, fast_layers=True):
    """MobileNetV2 without its top, weights loaded from ImageNet, a file, or none; `fast_layers` swaps in
    catdog's DepthwiseConv2D (models/layers.py), which is Keras' except on XLA:CPU."""
    if weights == "imagenet":
        weights = imagenet_weights_file(input_shape, alpha, weights_url)
    elif weights is not None and not Path(weights).expanduser().is_file():
        raise CatdogError(
            f"model.weights={weights}: no such file. Use imagenet (download), a path to a MobileNetV2 "
            "no-top .h5/.weights.h5 file, or null for random initialisation."
        )
    base = keras.applications.MobileNetV2(input_shape=input_shape, alpha=alpha, include_top=False, weights=None)
    if weights is not None:
        try:
            base.load_weights(str(Path(weights).expanduser()))
        except Exception as exc:
            raise CatdogError(f"model.weights={weights} does not fit MobileNetV2(alpha={alpha}): {exc}") from exc
    if fast_layers:
        base = with_fast_layers(base)
    base.name = BASE_NAME
    return base


POOLING = {"max": layers.GlobalMaxPooling2D, "avg": layers.GlobalAveragePooling2D}


@register_model("mobilenet")
def mobilenet(input_shape, num_classes, weights="imagenet", alpha=1.0, dropout=0.2, hidden_units=64,
              weights_url="https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/",
              fast_layers=True, pooling="max"):
    """model4 as head(features(x)): a frozen `features` model (preprocess_input scaling, the base in
    inference mode, global `pooling` max or avg) and a trainable `head` (Dropout, Dense(64, relu),
    Dense(classes)).

    A frozen `features` sub-model lets catdog train the head on cached features (`catdog.features`).
    """
    if pooling not in POOLING:  # before the base is built and its weights loaded
        raise CatdogError(f"model.pooling={pooling!r}: choose one of {', '.join(POOLING)}.")
    base = mobilenet_base(input_shape, weights, alpha, weights_url, fast_layers)
    inputs = keras.Input(input_shape)
    x = layers.Rescaling(1 / 127.5, offset=-1, name="preprocess")(inputs)
    x = base(x, training=False)
    features = keras.Model(inputs, POOLING[pooling]()(x), name="features")
    features.trainable = False
    head = keras.Sequential([keras.Input(features.output_shape[1:]), layers.Dropout(dropout),
                             layers.Dense(hidden_units, activation="relu"),
                             layers.Dense(num_classes, dtype="float32")], name="head")
    return keras.Model(inputs, head(features(inputs)), name="mobilenet")
