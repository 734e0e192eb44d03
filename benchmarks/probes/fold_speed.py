"""Images per second of model4's frozen features (MobileNetV2 at 160x160, max pooling), as the feature cache
computes them (`predict`, batch 64), with and without BatchNormalization folded into the convolutions;
plain and folded alternate in one process per backend: `python benchmarks/probes/fold_speed.py` ->
results/fold/report.md. Run it alone on the machine (a few minutes).

In inference mode BatchNormalization is a per-channel scale and shift, so after a linear convolution it can
live in that convolution's kernel and bias. Measured here it did not pay (docs/performance.md), so catdog
does not fold; the folding below is kept with the measurement."""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from fresh_process import measure_in_fresh_process, report

ROOT = Path(__file__).resolve().parents[2]


def fold_batch_norm(model):
    """A frozen copy of functional `model` (nested models included), each BatchNormalization that alone reads
    a linear convolution's output folded into that convolution; the same outputs up to rounding."""
    import keras

    class FoldedAway(keras.layers.Layer):
        def call(self, inputs, training=None, mask=None):
            return inputs

    convolutions = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    pairs = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.axis in (-1, 3):
            conv = layer.input._keras_history.operation
            if (isinstance(conv, convolutions) and len(conv._outbound_nodes) == 1
                    and conv.get_config()["activation"] == "linear"):
                pairs[conv.name] = layer
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
            continue
        weights = layer.get_weights()
        if layer.name in pairs:
            norm = pairs[layer.name]
            variance = np.asarray(norm.moving_variance, "float64")
            scale = np.asarray(norm.gamma, "float64") / np.sqrt(variance + norm.epsilon)
            kernel = np.asarray(layer.kernel, "float64")
            depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
            kernel = kernel * (scale.reshape(kernel.shape[2:]) if depthwise else scale)
            bias = np.asarray(layer.bias, "float64") if layer.use_bias else 0.0
            shift = np.asarray(norm.beta, "float64") - np.asarray(norm.moving_mean, "float64") * scale
            weights = [kernel.astype("float32"), (bias * scale + shift).astype("float32")]
        copy.get_layer(layer.name).set_weights(weights)
    copy.trainable = False
    return copy


def measure(images=512, rounds=5):
    import keras

    from catdog.models import build_model

    rng = np.random.default_rng(0)
    features = build_model("mobilenet", (160, 160), 2, ["model.backbone.weights=null"]).features
    for layer in features._flatten_layers():  # inference statistics away from 0 and 1, as trained ones are
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, w.shape) if i in (0, 3) else rng.normal(0, 0.5, w.shape)
                               for i, w in enumerate(layer.get_weights())])
    folded = fold_batch_norm(features)
    models = {"plain": features, "folded": folded}
    x = rng.integers(0, 256, (images, 160, 160, 3)).astype("float32")
    outputs = {name: model.predict(x[:64], batch_size=64, verbose=0) for name, model in models.items()}  # warm-up
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.predict(x, batch_size=64, verbose=0)
            times[name].append(time.perf_counter() - start)
    diff = np.abs(outputs["folded"] - outputs["plain"]).max() / np.abs(outputs["plain"]).max()
    return {**{f"{name}_images_per_second": images / float(np.median(t)) for name, t in times.items()},
            "max_relative_difference": float(diff), "rounds": rounds, "images": images}


def main():
    if len(sys.argv) == 2:
        report("FOLD", {"backend": os.environ["KERAS_BACKEND"], **measure()})
        return
    rows = [measure_in_fresh_process(__file__, backend, "FOLD") for backend in ("tensorflow", "jax")]
    out = ROOT / "results" / "fold"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fold.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| backend | plain img/s | folded img/s | speed-up | max relative difference |", "|---|---|---|---|---|"]
    for r in rows:
        plain, folded = r["plain_images_per_second"], r["folded_images_per_second"]
        lines.append(f"| {r['backend']} | {plain:.1f} | {folded:.1f} | {folded / plain:.2f}× "
                     f"| {r['max_relative_difference']:.1e} |")
    title = (f"# model4's frozen features, images/s (median of {rows[0]['rounds']} predict passes over "
             f"{rows[0]['images']} images, batch 64), BatchNormalization plain and folded")
    (out / "report.md").write_text(title + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
