"""`python tests/fast_layers_check.py`: catdog's fast layers vs Keras' own, in this process's backend.

Prints one line per case, `CASE <name> <max abs (MobileNetV2: relative) difference>`; the test runs it on
JAX in a subprocess.
"""

import keras
import numpy as np

from catdog.models.layers import DepthwiseConv2D, MaxPooling2D, with_fast_layers


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


def compare(name, fast, plain, x):
    plain.build(x.shape)
    fast.build(x.shape)
    fast.set_weights(plain.get_weights())
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(value_and_grads(fast, x), value_and_grads(plain, x)))
    print(f"CASE {name} {diff:.3g}", flush=True)


def main():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 11, 13, 6)).astype("float32")
    for size in (2, 3):
        compare(f"maxpool{size}", MaxPooling2D(size), keras.layers.MaxPooling2D(size), x)
    for strides in (1, 2):
        for padding in ("same", "valid"):
            kw = dict(kernel_size=3, strides=strides, padding=padding, activation="relu",
                      bias_initializer="random_normal")
            compare(f"depthwise_s{strides}_{padding}", DepthwiseConv2D(**kw), keras.layers.DepthwiseConv2D(**kw), x)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    fast = with_fast_layers(base)
    swapped = sum(type(layer) is DepthwiseConv2D for layer in fast.layers)
    expected = np.asarray(base.predict_on_batch(images))
    diff = float(np.max(np.abs(np.asarray(fast.predict_on_batch(images)) - expected)) / np.max(np.abs(expected)))
    print(f"CASE mobilenetv2_{swapped}_depthwise_swapped {diff:.3g}", flush=True)


if __name__ == "__main__":
    main()
