"""`python tests/fast_layers_check.py`: catdog's XLA:CPU layer subclasses vs Keras' own layers, in this
process's backend.

Prints one line per case, `CASE <name> <max abs (MobileNetV2: relative) difference>`; the test runs it on
JAX in a subprocess.
"""

import keras
import numpy as np

from catdog.models import layers as fast_layers
from catdog.models.layers import leaf_layers, with_xla_cpu_layers


def value_and_grads(layer, x):
    """The layer's output and the gradients of a fixed random projection of it wrt input and weights."""
    import jax

    weights = [v.value for v in layer.trainable_variables]
    probe = np.random.default_rng(1).normal(size=layer.compute_output_shape(x.shape)).astype("float32")

    def loss(x, weights):
        out, _ = layer.stateless_call(weights, [], x)
        return (out * probe).sum(), out

    (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(x, weights)
    return [np.asarray(out), np.asarray(grads[0]), *map(np.asarray, grads[1])]


def compare(name, layer_class, x, **options):
    plain = layer_class(**options)
    model = with_xla_cpu_layers(keras.Sequential([keras.Input(x.shape[1:]), plain]))
    fast = model.layers[0]
    assert type(fast) is getattr(fast_layers, layer_class.__name__)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(value_and_grads(fast, x), value_and_grads(plain, x)))
    print(f"CASE {name} {diff:.3g}", flush=True)


def main():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 11, 13, 6)).astype("float32")
    for size in (2, 3):
        compare(f"maxpool{size}", keras.layers.MaxPooling2D, x, pool_size=size)
    for strides in (1, 2):
        for padding in ("same", "valid"):
            kw = dict(kernel_size=3, strides=strides, padding=padding, activation="relu",
                      bias_initializer="random_normal")
            compare(f"depthwise_s{strides}_{padding}", keras.layers.DepthwiseConv2D, x, **kw)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    expected = np.asarray(base.predict_on_batch(images))
    fast = with_xla_cpu_layers(base)
    swapped = sum(type(layer) is fast_layers.DepthwiseConv2D for layer in leaf_layers(fast))
    diff = float(np.max(np.abs(np.asarray(fast.predict_on_batch(images)) - expected)) / np.max(np.abs(expected)))
    print(f"CASE mobilenetv2_{swapped}_depthwise_swapped {diff:.3g}", flush=True)


if __name__ == "__main__":
    main()
