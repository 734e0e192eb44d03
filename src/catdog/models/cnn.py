"""The tutorial's small convolutional networks (its model1, model2 and model3)."""

import keras
from keras import layers

from catdog.models.registry import register_model


def _conv_blocks(dropout_after_first=None):
    blocks = [layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D()]
    if dropout_after_first:
        blocks.append(layers.Dropout(dropout_after_first))
    return blocks + [
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
    ]


@register_model("cnn_small")
def cnn_small(input_shape, num_classes, dropout=0.2):
    """model1: three conv blocks on raw 0-255 pixels, Dropout, Flatten, a linear head (70,114 parameters)."""
    return keras.Sequential(
        [keras.Input(input_shape), *_conv_blocks(), layers.Dropout(dropout), layers.Flatten(),
         layers.Dense(num_classes)],
        name="cnn_small",
    )


@register_model("cnn")
def cnn(input_shape, num_classes, dropout=0.2, hidden_units=64, rescale=False, name="cnn"):
    """model2 (and model3 with `rescale`): conv blocks with Dropout after the first, Dense(64), Dense(classes)."""
    scaling = [layers.Rescaling(1 / 127.5, offset=-1, name="preprocess")] if rescale else []
    return keras.Sequential(
        [keras.Input(input_shape), *scaling, *_conv_blocks(dropout_after_first=dropout), layers.Flatten(),
         layers.Dense(hidden_units, activation="relu"), layers.Dense(num_classes)],
        name=name,
    )


@register_model("cnn_scaled")
def cnn_scaled(input_shape, num_classes, dropout=0.2, hidden_units=64):
    """model3: model2 behind mobilenet_v2.preprocess_input's scaling, x / 127.5 - 1."""
    return cnn(input_shape, num_classes, dropout, hidden_units, rescale=True, name="cnn_scaled")
