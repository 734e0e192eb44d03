"""The tutorial's transfer-learning backbone (its model4's base): MobileNetV2 from keras.applications."""

from pathlib import Path

import keras

from catdog.errors import CatdogError

WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"


def imagenet_weights_file(input_shape, alpha, weights_url) -> str:
    """Download (once, into ~/.keras/models) the no-top ImageNet file Keras itself would use."""
    size = input_shape[0] if input_shape[0] in (96, 128, 160, 192, 224) else 224
    fname = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{size}_no_top.h5"
    try:
        return keras.utils.get_file(fname, weights_url.rstrip("/") + "/" + fname, cache_subdir="models")
    except Exception as exc:
        raise CatdogError(
            f"Could not download the MobileNetV2 ImageNet weights ({exc}). If this machine is offline, set "
            "model.backbone.weights to a local .h5/.weights.h5 file of MobileNetV2's no-top weights."
        ) from exc


def mobilenet_v2(input_shape, weights="imagenet", alpha=1.0, weights_url=WEIGHTS_URL, name="mobilenetv2_base"):
    """MobileNetV2 without its top, weights from ImageNet (Keras' download), a file, or none (null)."""
    input_shape = tuple(input_shape)
    if weights == "imagenet":
        weights = imagenet_weights_file(input_shape, alpha, weights_url)
    elif weights is not None and not Path(weights).expanduser().is_file():
        raise CatdogError(
            f"model.backbone.weights={weights}: no such file. Use imagenet (download), a path to a MobileNetV2 "
            "no-top .h5/.weights.h5 file, or null for random initialisation."
        )
    base = keras.applications.MobileNetV2(input_shape=input_shape, alpha=alpha, include_top=False, weights=None)
    if weights is not None:
        try:
            base.load_weights(str(Path(weights).expanduser()))
        except Exception as exc:
            raise CatdogError(f"model.backbone.weights={weights} does not fit MobileNetV2(alpha={alpha}): "
                              f"{exc}") from exc
    base.name = name
    return base
