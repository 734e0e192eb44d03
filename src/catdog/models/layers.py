"""Faster calls for Keras' own pooling and depthwise layers on XLA:CPU, swapped in at run time.

On JAX with a CPU, XLA lowers the gradient of max pooling to select-and-scatter and depthwise
convolutions to grouped convolutions, several times slower than equivalent reshapes, slices and
multiply-adds (docs/performance.md). `use_xla_cpu_layers` gives the matching Keras layers of a model
these calls, per instance: the layers stay Keras' own classes with Keras' configs and weights, so a saved
model holds nothing of catdog's, and the swap applies only where it computes the same result.
"""

import functools

import keras
from keras import ops


@functools.cache
def on_xla_cpu() -> bool:
    """Whether Keras runs on JAX with a CPU as its default device."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


def max_pooling_call(layer, inputs):
    """Non-overlapping max pooling as a reshape and a max."""
    size = tuple(layer.pool_size)
    _, height, width, channels = inputs.shape
    rows, cols = height // size[0], width // size[1]
    x = inputs[:, : rows * size[0], : cols * size[1], :]
    x = ops.reshape(x, (-1, rows, size[0], cols, size[1], channels))
    return ops.max(x, axis=(2, 4))


def depthwise_call(layer, inputs):
    """A depthwise convolution as a sum of shifted, strided slices times the per-channel kernel."""
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    x = inputs
    _, height, width, _ = x.shape
    if layer.padding == "same":
        out_h, out_w = -(-height // sh), -(-width // sw)
        pad_h, pad_w = max((out_h - 1) * sh + kh - height, 0), max((out_w - 1) * sw + kw - width, 0)
        x = ops.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    else:
        out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    kernel = ops.cast(layer.kernel, x.dtype)
    outputs = 0
    for i in range(kh):
        for j in range(kw):
            window = x[:, i : i + (out_h - 1) * sh + 1 : sh, j : j + (out_w - 1) * sw + 1 : sw, :]
            outputs = outputs + window * kernel[i, j, :, 0]
    if layer.use_bias:
        outputs = outputs + ops.cast(layer.bias, x.dtype)
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return outputs


def _fast_call(layer):
    """The faster call for `layer`, or None where it would not compute what Keras' does."""
    if getattr(layer, "data_format", None) != "channels_last":
        return None
    shape = getattr(layer, "input", None)
    spatial = None if shape is None else tuple(shape.shape[1:3])
    if spatial is None or None in spatial:
        return None
    if type(layer) is keras.layers.MaxPooling2D:
        if tuple(layer.pool_size) == tuple(layer.strides) and layer.padding == "valid":
            return max_pooling_call
    if type(layer) is keras.layers.DepthwiseConv2D:
        if layer.depth_multiplier == 1 and tuple(layer.dilation_rate) == (1, 1):
            return depthwise_call
    return None


def leaf_layers(model):
    """Every non-model layer inside `model`, nested models flattened, in order."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def use_xla_cpu_layers(model) -> int:
    """Give `model`'s eligible MaxPooling2D and DepthwiseConv2D layers their XLA:CPU calls (on XLA:CPU only);
    returns how many layers were swapped."""
    if not on_xla_cpu():
        return 0
    swapped = 0
    for layer in leaf_layers(model):
        fast = _fast_call(layer)
        if fast is not None and "call" not in vars(layer):
            layer.call = functools.partial(fast, layer)
            swapped += 1
    return swapped
