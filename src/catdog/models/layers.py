"""Keras layers that compute what Keras' own do, through ops that are fast on XLA:CPU.

On JAX with a CPU, XLA lowers the gradient of max pooling to select-and-scatter and depthwise
convolutions to grouped convolutions, several times slower than equivalent reshapes, slices and
multiply-adds (results/jax_levers/ops.md). The layers below take that route on JAX's CPU backend
and defer to Keras everywhere else; weights, configs and outputs are Keras' own.
"""

import functools

import keras
from keras import ops


@functools.cache
def _on_xla_cpu() -> bool:
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


@keras.saving.register_keras_serializable("catdog")
class MaxPooling2D(keras.layers.MaxPooling2D):
    """MaxPooling2D; non-overlapping windows become a reshape and a max on XLA:CPU."""

    def call(self, inputs):
        size, strides = tuple(self.pool_size), tuple(self.strides)
        if not (_on_xla_cpu() and size == strides and self.padding == "valid"
                and self.data_format == "channels_last"):
            return super().call(inputs)
        _, height, width, channels = inputs.shape
        if height is None or width is None:
            return super().call(inputs)
        rows, cols = height // size[0], width // size[1]
        x = inputs[:, : rows * size[0], : cols * size[1], :]
        x = ops.reshape(x, (-1, rows, size[0], cols, size[1], channels))
        return ops.max(x, axis=(2, 4))


@keras.saving.register_keras_serializable("catdog")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """DepthwiseConv2D; on XLA:CPU a sum of shifted, strided slices times the per-channel kernel."""

    def call(self, inputs):
        if not (_on_xla_cpu() and self.depth_multiplier == 1 and tuple(self.dilation_rate) == (1, 1)
                and self.data_format == "channels_last"):
            return super().call(inputs)
        kh, kw = self.kernel_size
        sh, sw = self.strides
        x = inputs
        _, height, width, _ = x.shape
        if height is None or width is None:
            return super().call(inputs)
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


def with_fast_layers(model: keras.Model) -> keras.Model:
    """A copy of `model` (weights included) whose pooling and depthwise layers are the ones above."""
    swaps = {keras.layers.MaxPooling2D: MaxPooling2D, keras.layers.DepthwiseConv2D: DepthwiseConv2D}

    def clone(layer):
        cls = swaps.get(type(layer), type(layer))
        return cls.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
