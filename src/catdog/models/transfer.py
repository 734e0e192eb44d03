"""Transfer learning on keras.applications backbones (`model=transfer model.backbone=NAME`, docs/backbones.md).

A backbone is Keras' own class built without its top and with weights=None, then given ImageNet weights from the
very file Keras itself downloads (same name, same URL unless `weights_url` says otherwise), a file, or none. Its
input preprocessing is its family's `preprocess_input` as a Rescaling layer, or none where the application keeps
its own. Applications whose own is a Normalization layer (EfficientNetV2B0-B3, ConvNeXt) are built without it
and given the same arithmetic as a Rescaling in front: a Normalization's constants become inputs of the ONNX
export that computes the feature cache, and the layer has no weights, so Keras' weight files load all the same.
"""

import functools
import inspect
import os
from pathlib import Path

import keras

from catdog.errors import CatdogError

KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications/"
TF_KERNELS = "{name}_weights_tf_dim_ordering_tf_kernels_notop.h5"  # {name}: the application's default name
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _rows(shape, sizes):
    """The input size Keras picks the weights of: square and one it has, else 224."""
    return shape[0] if shape[0] == shape[1] and shape[0] in sizes else 224


def _mobilenet_file(shape, alpha=1.0, **_):
    text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0"}.get(float(alpha), "2_5")
    return f"mobilenet_{text}_{_rows(shape, (128, 160, 192, 224))}_tf_no_top.h5"


def _mobilenet_v2_file(shape, alpha=1.0, **_):
    rows = _rows(shape, (96, 128, 160, 192, 224))
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"


def _mobilenet_v3_file(kind, shape, alpha=1.0, minimalistic=False, **_):
    return f"weights_mobilenet_v3_{kind}{'_minimalistic' * bool(minimalistic)}_224_{float(alpha)}_float_no_top_v2.h5"


# name: (Keras' weights folder, its no-top file name, the input preprocessing: "tf" is x / 127.5 - 1, "torch"
# x / 255 less ImageNet's mean, over its std; None: the application's own, inside it)
BACKBONES = {
    "MobileNet": ("mobilenet", _mobilenet_file, "tf"),
    "MobileNetV2": ("mobilenet_v2", _mobilenet_v2_file, "tf"),
    "MobileNetV3Small": ("mobilenet_v3", functools.partial(_mobilenet_v3_file, "small"), None),
    "MobileNetV3Large": ("mobilenet_v3", functools.partial(_mobilenet_v3_file, "large"), None),
    **{f"EfficientNetV2{v}": ("efficientnet_v2", "{name}_notop.h5", "torch") for v in ("B0", "B1", "B2", "B3")},
    **{f"EfficientNetV2{v}": ("efficientnet_v2", "{name}_notop.h5", None) for v in ("S", "M", "L")},
    **{f"ConvNeXt{v}": ("convnext", "{name}_notop.h5", "torch") for v in ("Tiny", "Small", "Base", "Large", "XLarge")},
    **{f"ResNet{d}V2": ("resnet", TF_KERNELS, "tf") for d in (50, 101, 152)},
    **{f"DenseNet{d}": ("densenet", TF_KERNELS, "torch") for d in (121, 169, 201)},
    "Xception": ("xception", TF_KERNELS, "tf"),
    "InceptionV3": ("inception_v3", TF_KERNELS, "tf"),
    "InceptionResNetV2": ("inception_resnet_v2", TF_KERNELS, "tf"),
}
REFUSED = {
    **dict.fromkeys(("ResNet50", "ResNet101", "ResNet152", "VGG16", "VGG19"),
                    "its caffe preprocessing (RGB to BGR, less ImageNet's mean) is no Keras layer; ResNet50V2 takes "
                    "x / 127.5 - 1"),
    **dict.fromkeys([f"EfficientNetB{i}" for i in range(8)],
                    "Keras adds the last step of its preprocessing only when it loads the ImageNet weights itself; "
                    "EfficientNetV2B0-B3 take the same inputs"),
}


def family(name) -> tuple:
    """`name`'s (weights folder, file name, preprocessing mode); a CatdogError for an unsupported name."""
    if name in BACKBONES:
        return BACKBONES[name]
    reason = REFUSED.get(name, "not a keras.applications class catdog supports")
    raise CatdogError(f"model.backbone={name}: {reason}. Supported: {', '.join(BACKBONES)}.")


def weights_file(name, input_shape, **kwargs) -> str:
    """The name of the no-top ImageNet file Keras itself downloads for `name` at `input_shape` (and `kwargs`)."""
    file = family(name)[1]
    if callable(file):
        return file(tuple(input_shape), **kwargs)
    return file.format(name=inspect.signature(getattr(keras.applications, name)).parameters["name"].default)


def imagenet_url(name, input_shape, weights_url=None, **kwargs) -> str:
    """Where Keras' own no-top ImageNet file for `name` at `input_shape` is (or `weights_url`, a mirror)."""
    return (weights_url or KERAS_WEIGHTS + family(name)[0]).rstrip("/") + "/" + weights_file(name, input_shape,
                                                                                            **kwargs)


def preprocessing(backbone):
    """`backbone`'s input preprocessing as a Rescaling layer; None where the application keeps its own."""
    mode = family(backbone)[2]
    if mode == "tf":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")
    if mode == "torch":
        return keras.layers.Rescaling([1 / (255 * s) for s in IMAGENET_STD],
                                      offset=[-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)], name="preprocess")
    return None


def application(input_shape, name="MobileNetV2", weights="imagenet", weights_url=None, download_dir=None,
                setting="model.weights", **kwargs):
    """keras.applications' `name` without its top for `input_shape` (`kwargs`: more of its arguments). weights:
    imagenet (Keras' own no-top file, downloaded once from `weights_url`, by default Keras' URL, into
    `download_dir`/models, by default Keras' cache), a .h5/.weights.h5 file, or None (random). `setting`: the
    config key of `weights`, for messages."""
    mode = family(name)[2]
    input_shape = tuple(input_shape)
    if weights == "imagenet":
        fname, url = weights_file(name, input_shape, **kwargs), imagenet_url(name, input_shape, weights_url, **kwargs)
        if download_dir:  # Keras falls back to /tmp/.keras for a folder that does not exist yet
            Path(download_dir).expanduser().mkdir(parents=True, exist_ok=True)
        cache = Path(download_dir or os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "models"
        try:
            weights = keras.utils.get_file(fname, url, cache_dir=download_dir, cache_subdir="models")
        except Exception as exc:
            raise CatdogError(f"Could not download the {name} ImageNet weights from {url} ({exc}). If this machine "
                              f"is offline, fetch that file elsewhere and either put it in {cache}/ (where Keras "
                              f"keeps its downloads) or set {setting} to a local copy of {fname}.") from exc
    elif weights is not None and not Path(weights).expanduser().is_file():
        raise CatdogError(f"{setting}={weights}: no such file. Use imagenet (download), a {name} no-top "
                          ".h5/.weights.h5 file, or null for random initialisation.")
    build = getattr(keras.applications, name)
    options = dict(kwargs)
    if mode and "include_preprocessing" in inspect.signature(build).parameters:
        options["include_preprocessing"] = False  # `preprocessing(name)` does it, in front
    try:
        base = build(include_top=False, weights=None, input_shape=input_shape, **options)
    except TypeError as exc:
        raise CatdogError(f"model.backbone_options: {exc}") from exc
    if weights is not None:
        try:
            base.load_weights(str(Path(weights).expanduser()))
        except Exception as exc:
            raise CatdogError(f"{setting}={weights} does not fit {name}{kwargs or ''}: {exc}") from exc
    return base


def classifier(backbone="MobileNetV2", weights="imagenet", weights_url=None, download_dir=None, backbone_options=None,
               preprocessor="auto", task="catdog.tasks.ImageClassifier", **kwargs):
    """What `model=transfer` builds: `task` (ImageClassifier, a subclass, or its import path) on the
    keras.applications `backbone` (`application`), after `preprocessor` (auto: `preprocessing(backbone)`);
    `kwargs` are the task's."""
    from hydra.utils import get_class

    if preprocessor == "auto":
        preprocessor = preprocessing(backbone)
    factory = functools.partial(application, name=backbone, weights=weights, weights_url=weights_url,
                                download_dir=download_dir, **(backbone_options or {}))
    task = get_class(task) if isinstance(task, str) else task
    return task(backbone=factory, preprocessor=preprocessor, **kwargs)
