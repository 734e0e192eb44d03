"""Where model1's training step goes on TensorFlow, layer by layer, in float32 and mixed_bfloat16.

    python benchmarks/probes/tf_layer_costs.py [OUT_DIR=results/tf_levers]   -> OUT_DIR/layers.{jsonl,md}

Each row is one piece of model1 (batch 32 at 160x160) under `tf.function`, median of 15 calls: its forward
pass, and its forward pass plus the gradients a training step needs (the weights', and the input's except
for the first layer). GFLOP/s counts the convolutions' multiply-adds (2 per MAC), to set against the
first row of each precision: a 4096x4096 matmul in that precision, this CPU's peak as TensorFlow reaches
it. Rewrites of the same function are timed too: NCHW (channels_first) layers, the first block with its
bias and ReLU after the pooling (max commutes with adding a per-channel constant and with ReLU, so the
outputs are equal), and the first convolution computed four other ways (`FirstConv`).
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from catdog.utils.run_info import cpu_info, describe_cpu  # noqa: E402

BATCH, CALLS = 32, 15


def median_ms(fn, x):
    for _ in range(2):
        tf.nest.flatten(fn(x))[0].numpy()
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        tf.nest.flatten(fn(x))[0].numpy()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def model1(data_format="channels_last"):
    conv = lambda n: layers.Conv2D(n, 3, activation="relu", data_format=data_format)  # noqa: E731
    pool = lambda: layers.MaxPooling2D(data_format=data_format)  # noqa: E731
    return [conv(32), pool(), conv(32), pool(), conv(64), pool(), layers.Dropout(0.2), layers.Flatten(),
            layers.Dense(2, dtype="float32")]


def cost(name, pieces, shape, dtype, input_grad=True, gflop=None):
    model = keras.Sequential([keras.Input(shape[1:]), *pieces])
    x = tf.cast(tf.random.uniform((BATCH, *shape[1:]), 0, 255, seed=0), dtype)

    @tf.function
    def forward(x):
        return model(x, training=True)

    @tf.function
    def train(x):
        with tf.GradientTape() as tape:
            if input_grad:
                tape.watch(x)
            loss = tf.reduce_sum(tf.cast(model(x, training=True), tf.float32) ** 2)
        return tape.gradient(loss, model.trainable_weights + ([x] if input_grad else []))

    row = {"piece": name, "input": list(shape), "forward_ms": round(median_ms(forward, x), 1),
           "train_ms": round(median_ms(train, x), 1)}
    if gflop:
        row["gflop_forward"] = round(gflop, 2)
        row["forward_gflops"] = round(gflop / row["forward_ms"] * 1000)
        row["train_gflops"] = round(gflop * (3 if input_grad else 2) / row["train_ms"] * 1000)
    return row


def matmul_peak(dtype, n=4096):
    @tf.function
    def matmul(a):
        return tf.matmul(a, a)

    ms = median_ms(matmul, tf.cast(tf.random.uniform((n, n), seed=0), dtype))
    gflop = 2 * n**3 / 1e9
    return {"piece": f"matmul {n}x{n} (the peak)", "input": [1, n, n], "forward_ms": round(ms, 1), "train_ms": None,
            "gflop_forward": round(gflop, 1), "forward_gflops": round(gflop / ms * 1000)}


def conv_gflop(out_hw, cin, cout):
    return 2 * BATCH * out_hw * out_hw * cout * 9 * cin / 1e9


class PoolThenBiasRelu(layers.Layer):
    """Conv2D without bias, MaxPooling2D, then the bias and the ReLU: the same values as conv-relu-pool."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.conv, self.pool = layers.Conv2D(filters, 3, use_bias=False), layers.MaxPooling2D()
        self.bias = self.add_weight(shape=(filters,), initializer="zeros")

    def call(self, x):
        return keras.ops.relu(self.pool(self.conv(x)) + keras.ops.cast(self.bias, self.compute_dtype))


class FirstConv(layers.Layer):
    """model1's first Conv2D (3 -> 32, 3x3, bias, ReLU) computed another way; the same values.

    `pad4`/`pad8`: the input's channels zero-padded (by concatenation: TensorFlow's oneDNN Pad+Conv2D
    fusion rejects channel padding); `im2col`: 3x3 patches times the kernel as one matmul; `shifted`: a sum
    of nine shifted matmuls.
    """

    def __init__(self, way, **kwargs):
        super().__init__(**kwargs)
        self.way = way
        self.kernel = self.add_weight(shape=(3, 3, 3, 32), initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(32,), initializer="zeros")

    def call(self, x):
        kernel = tf.cast(self.kernel, x.dtype)
        batch, size = tf.shape(x)[0], x.shape[1] - 2
        if self.way.startswith("pad"):
            extra = int(self.way[3:]) - 3
            zeros = tf.zeros_like(x[..., :1])
            y = tf.nn.conv2d(tf.concat([x, *[zeros] * extra], -1),
                             tf.concat([kernel, tf.zeros((3, 3, extra, 32), x.dtype)], 2), 1, "VALID")
        elif self.way == "im2col":
            patches = tf.image.extract_patches(x, [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")
            y = tf.reshape(tf.reshape(patches, (-1, 27)) @ tf.reshape(kernel, (27, 32)), (batch, size, size, 32))
        else:
            y = sum(tf.reshape(tf.reshape(x[:, i:i + size, j:j + size], (-1, 3)) @ kernel[i, j],
                               (batch, size, size, 32)) for i in range(3) for j in range(3))
        return tf.nn.relu(y + tf.cast(self.bias, x.dtype))


def first_conv_differences():
    """Largest difference of each FirstConv way from Keras' Conv2D with the same weights, in float32."""
    x = tf.random.uniform((2, 20, 20, 3), 0, 255, seed=1)
    conv = layers.Conv2D(32, 3, activation="relu", bias_initializer="glorot_uniform")
    reference = conv(x)
    differences = {}
    for way in ("pad4", "pad8", "im2col", "shifted"):
        layer = FirstConv(way)
        layer.build(x.shape)
        layer.set_weights(conv.get_weights())
        differences[way] = float(tf.reduce_max(tf.abs(layer(x) - reference)) / tf.reduce_max(reference))
    return differences


def measure(precision):
    keras.mixed_precision.set_global_policy(precision)
    dtype = tf.bfloat16 if precision == "mixed_bfloat16" else tf.float32
    conv1, conv2, conv3 = conv_gflop(158, 3, 32), conv_gflop(77, 32, 32), conv_gflop(36, 32, 64)
    rows = [
        matmul_peak(dtype),
        cost("model1, whole", model1(), (BATCH, 160, 160, 3), dtype, input_grad=False),
        cost("model1, whole, NCHW layers", [layers.Permute((3, 1, 2)), *model1("channels_first")],
             (BATCH, 160, 160, 3), dtype, input_grad=False),
        cost("conv1 (3->32) + ReLU", [layers.Conv2D(32, 3, activation="relu")], (BATCH, 160, 160, 3), dtype,
             input_grad=False, gflop=conv1),
        cost("pool1", [layers.MaxPooling2D()], (BATCH, 158, 158, 32), dtype),
        cost("conv1 + pool1", [layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D()],
             (BATCH, 160, 160, 3), dtype, input_grad=False),
        cost("conv1 + pool1, bias and ReLU after pooling", [PoolThenBiasRelu(32)], (BATCH, 160, 160, 3), dtype,
             input_grad=False),
        *(cost(f"conv1 + pool1, conv1 as {way}", [FirstConv(way), layers.MaxPooling2D()], (BATCH, 160, 160, 3),
               dtype, input_grad=False) for way in ("pad4", "pad8", "im2col", "shifted")),
        cost("conv2 (32->32) + ReLU", [layers.Conv2D(32, 3, activation="relu")], (BATCH, 79, 79, 32), dtype,
             gflop=conv2),
        cost("pool2", [layers.MaxPooling2D()], (BATCH, 77, 77, 32), dtype),
        cost("conv3 (32->64) + ReLU", [layers.Conv2D(64, 3, activation="relu")], (BATCH, 38, 38, 32), dtype,
             gflop=conv3),
        cost("pool3 + Dropout + Flatten + Dense", model1()[5:], (BATCH, 36, 36, 64), dtype),
        cost("Dropout(0.2) on 79x79x32 (model2's)", [layers.Dropout(0.2)], (BATCH, 79, 79, 32), dtype),
    ]
    for row in rows:
        row["precision"] = precision
    whole = next(r for r in rows if r["piece"] == "model1, whole")
    whole["gflop_forward"] = round(conv1 + conv2 + conv3, 2)  # the first layer needs no input gradient
    whole["train_gflops"] = round((2 * conv1 + 3 * (conv2 + conv3)) / whole["train_ms"] * 1000)
    return rows


def write(rows, differences, out):
    out.mkdir(parents=True, exist_ok=True)
    (out / "layers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = ["# model1's training step on TensorFlow, piece by piece", "",
             f"On {describe_cpu(cpu_info())}.", "",
             f"`python benchmarks/probes/tf_layer_costs.py` (batch {BATCH}, median of {CALLS} calls under "
             "`tf.function`; train = forward + the gradients a training step needs; GFLOP/s counts the convolutions' "
             "multiply-adds, and the matmul's for its row).", "",
             "| precision | piece | input | forward ms | train ms | forward GFLOP | forward GFLOP/s | train GFLOP/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['precision']} | {r['piece']} | {'x'.join(map(str, r['input'][1:]))} | {r['forward_ms']} "
                     f"| {r['train_ms'] or ''} | {r.get('gflop_forward', '')} | {r.get('forward_gflops', '')} "
                     f"| {r.get('train_gflops', '')} |")
    lines += ["", "Largest difference of each other way of computing conv1 from Keras' Conv2D, relative to its "
              "largest output (float32): " + ", ".join(f"{way} {d:.1g}" for way, d in differences.items())]
    (out / "layers.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "results/tf_levers")
    differences = first_conv_differences()
    rows = measure("float32") + measure("mixed_bfloat16")
    write(rows, differences, out)
    print((out / "layers.md").read_text())
