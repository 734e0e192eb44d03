"""The tutorial's small convolutional networks (its model1, model2 and model3)."""

import keras
from keras import layers

from catdog.models.layers import MaxPooling2D
from catdog.models.registry import register_model


def _conv_blocks(dropout_after_first=None, fast_layers=True):
    pool = MaxPooling2D if fast_layers else layers.MaxPooling2D
    blocks = [layers.Conv2D(32, 3, activation="relu"), pool()]
    if dropout_after_first:
        blocks.append(layers.Dropout(dropout_after_first))
    return blocks + [
        layers.Conv2D(32, 3, activation="relu"), pool(),
        layers.Conv2D(64, 3, activation="relu"), pool(),
    ]


@register_model("cnn_small")
def cnn_small(input_shape, num_classes, dropout=0.2, fast_layers=True):
    """model1: three conv blocks on raw 0-255 pixels, Dropout, Flatten, a linear head (70,114 parameters).

    `fast_layers` uses catdog's MaxPooling2D (models/layers.py), which is Keras' except on XLA:CPU.
    """
    return keras.Sequential(
        [keras.Input(input_shape), *_conv_blocks(fast_layers=fast_layers), layers.Dropout(dropout), layers.Flatten(),
         layers.Dense(num_classes, dtype="float32")],
        name="cnn_small",
    )


@register_model("cnn")
def cnn(input_shape, num_classes, dropout=0.2, hidden_units=64, rescale=False, name="cnn", fast_layers=True):
    """model2 (and model3 with `rescale`): conv blocks with Dropout after the first, Dense(64), Dense(classes)."""
    scaling = [layers.Rescaling(1 / 127.5, offset=-1, name="preprocess")] if rescale else []
    return keras.Sequential(
        [keras.Input(input_shape), *scaling, *_conv_blocks(dropout, fast_layers), layers.Flatten(),
         layers.Dense(hidden_units, activation="relu"), layers.Dense(num_classes, dtype="float32")],
        name=name,
    )


@register_model("cnn_scaled")
def cnn_scaled(input_shape, num_classes, dropout=0.2, hidden_units=64, fast_layers=True):
    """model3: model2 behind mobilenet_v2.preprocess_input's scaling, x / 127.5 - 1."""
    return cnn(input_shape, num_classes, dropout, hidden_units, rescale=True, name="cnn_scaled",
               fast_layers=fast_layers)
