"""The tutorial's small convolutional backbones (the bodies of its model1, model2 and model3)."""

import keras
from keras import layers


def conv_blocks(input_shape, dropout_after_first=None, name="conv_blocks"):
    """Conv2D(32)-MaxPool, [Dropout], Conv2D(32)-MaxPool, Conv2D(64)-MaxPool: images to feature maps."""
    blocks = [layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D()]
    if dropout_after_first:
        blocks.append(layers.Dropout(dropout_after_first))
    blocks += [layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
               layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D()]
    return keras.Sequential([keras.Input(tuple(input_shape)), *blocks], name=name)
