"""An inference copy of a frozen model with each BatchNormalization folded into the convolution before it.

In inference mode BatchNormalization is a per-channel scale and shift, so after a linear convolution it can
live in that convolution's kernel and bias, and the pass over the activations that applied it is gone
(`scripts/fold_speed.py` measures the frozen MobileNetV2 features with and without).
"""

import keras
import numpy as np

CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


class FoldedAway(keras.layers.Layer):
    """Stands where a folded BatchNormalization was, passing its input on."""

    def call(self, inputs, training=None, mask=None):
        return inputs


def _foldable_pairs(model) -> dict:
    """{convolution name: the BatchNormalization that alone reads its linear, channels-last output}."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or layer.axis not in (-1, 3):
            continue
        conv = layer.input._keras_history.operation
        if (isinstance(conv, CONVOLUTIONS) and len(conv._outbound_nodes) == 1 and conv.data_format == "channels_last"
                and conv.get_config()["activation"] == "linear"):
            pairs[conv.name] = layer
    return pairs


def _folded_weights(conv, norm) -> list:
    """The kernel and bias of conv followed by norm in inference mode: (conv(x) - mean) / std * gamma + beta."""
    mean, variance = (np.asarray(v, "float64") for v in (norm.moving_mean, norm.moving_variance))
    scale = 1 / np.sqrt(variance + norm.epsilon)
    if norm.scale:
        scale = scale * np.asarray(norm.gamma, "float64")
    shift = np.asarray(norm.beta, "float64") if norm.center else 0.0
    kernel = np.asarray(conv.kernel, "float64")
    bias = np.asarray(conv.bias, "float64") if conv.use_bias else 0.0
    if isinstance(conv, keras.layers.DepthwiseConv2D):  # output channel c * multiplier + m
        kernel = kernel * scale.reshape(kernel.shape[2:])
    else:
        kernel = kernel * scale
    return [kernel.astype("float32"), ((bias - mean) * scale + shift).astype("float32")]


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """A frozen copy of functional `model` (nested models included) for inference, each foldable
    BatchNormalization folded into its convolution; the same outputs up to rounding. `model` is unchanged."""
    pairs = _foldable_pairs(model)
    folded = {norm.name for norm in pairs.values()}

    def clone(layer):
        if isinstance(layer, keras.Model):
            return fold_batch_norm(layer)
        if layer.name in folded:
            return FoldedAway(name=layer.name)
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        return type(layer).from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if isinstance(layer, keras.Model) or layer.name in folded or not layer.weights:
            continue  # a nested model's copy came with its weights
        weights = _folded_weights(layer, pairs[layer.name]) if layer.name in pairs else layer.get_weights()
        copy.get_layer(layer.name).set_weights(weights)
    copy.trainable = False
    return copy
