"""Keras' MaxPooling2D and DepthwiseConv2D as subclasses with faster calls on XLA:CPU, chosen when a model is
built (`with_xla_cpu_layers`).

On JAX with a CPU, XLA lowers the gradient of max pooling to select-and-scatter and depthwise convolutions to
grouped convolutions, several times slower than equivalent reshapes, slices and multiply-adds
(docs/performance.md). The subclasses keep Keras' configs, weights and class names (so a checkpoint's weights
load into either), are registered with Keras as `catdog>MaxPooling2D` and `catdog>DepthwiseConv2D`, and run
Keras' own call wherever the backend is not XLA:CPU.
"""

import functools
import random

import keras
from keras import ops


@functools.cache
def on_xla_cpu() -> bool:
    """Whether Keras runs on JAX with a CPU as its default device."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


@keras.saving.register_keras_serializable("catdog")
class MaxPooling2D(keras.layers.MaxPooling2D):
    """Non-overlapping max pooling as a reshape and a max on XLA:CPU."""

    def call(self, inputs):
        if not on_xla_cpu():
            return super().call(inputs)
        size = tuple(self.pool_size)
        _, height, width, channels = inputs.shape
        rows, cols = height // size[0], width // size[1]
        x = inputs[:, : rows * size[0], : cols * size[1], :]
        x = ops.reshape(x, (-1, rows, size[0], cols, size[1], channels))
        return ops.max(x, axis=(2, 4))


@keras.saving.register_keras_serializable("catdog")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """A depthwise convolution as a sum of shifted, strided slices times the per-channel kernel on XLA:CPU."""

    def call(self, inputs):
        if not on_xla_cpu():
            return super().call(inputs)
        kh, kw = self.kernel_size
        sh, sw = self.strides
        x = inputs
        _, height, width, _ = x.shape
        if self.padding == "same":
            out_h, out_w = -(-height // sh), -(-width // sw)
            pad_h, pad_w = max((out_h - 1) * sh + kh - height, 0), max((out_w - 1) * sw + kw - width, 0)
            x = ops.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
        else:
            out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
        kernel = ops.cast(self.kernel, x.dtype)
        outputs = 0
        for i in range(kh):
            for j in range(kw):
                window = x[:, i : i + (out_h - 1) * sh + 1 : sh, j : j + (out_w - 1) * sw + 1 : sw, :]
                outputs = outputs + window * kernel[i, j, :, 0]
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, x.dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


def fast_class(layer):
    """catdog's subclass for `layer`, or None where its call would not compute what Keras' does."""
    if getattr(layer, "data_format", None) != "channels_last":
        return None
    spatial = tuple(layer.input.shape[1:3]) if getattr(layer, "_inbound_nodes", None) else None
    if spatial is None or None in spatial:
        return None
    if type(layer) is keras.layers.MaxPooling2D:
        if tuple(layer.pool_size) == tuple(layer.strides) and layer.padding == "valid":
            return MaxPooling2D
    if type(layer) is keras.layers.DepthwiseConv2D:
        if layer.depth_multiplier == 1 and tuple(layer.dilation_rate) == (1, 1):
            return DepthwiseConv2D
    return None


def leaf_layers(model):
    """Every non-model layer inside `model`, nested models flattened, in order."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def with_xla_cpu_layers(model):
    """`model`, or on XLA:CPU a copy of it (`keras.models.clone_model`) whose eligible MaxPooling2D and
    DepthwiseConv2D layers are catdog's subclasses, with their weights. The other layers are shared with
    `model`, not copied, and the new layers draw no seeds: the rest of the build draws what it would have."""
    if not on_xla_cpu() or not any(fast_class(layer) for layer in leaf_layers(model)):
        return model
    swapped = {}

    def clone(layer):
        cls = fast_class(layer)
        if cls is None:
            return layer
        swapped[layer] = cls.from_config(layer.get_config())
        return swapped[layer]

    state = random.getstate()  # Keras' initializers take their default seeds from Python's random
    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    finally:
        random.setstate(state)
    for original, fast in swapped.items():
        fast.set_weights(original.get_weights())
    copy.trainable = model.trainable
    return copy
