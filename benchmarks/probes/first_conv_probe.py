"""Ways to compute model1's first convolution (3 input channels) on XLA:CPU, forward and weight gradient.

    python benchmarks/probes/first_conv_probe.py [OUT_DIR=results/jax_levers]   -> OUT_DIR/first_conv.{jsonl,md}

The first layer is the largest single gap between JAX and TensorFlow on the CNNs (results/jax_levers/ops.md).
Every variant computes the same output; each XLA setting runs in its own process (XLA_FLAGS is read once,
when JAX starts). Median of 7 jitted calls, batch 32 at 160x160, 3 -> 32 channels.
"""

import json

from xla_cpu_ops import YNN_OFF, child_or_out_dir, median_ms, run_settings

SETTINGS = {
    "YNNPACK off (catdog's default)": YNN_OFF,
    "YNNPACK off + oneDNN dot fusions": f"{YNN_OFF} --xla_cpu_experimental_onednn_fusion_type=dot",
}


def measure():
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    def conv(x, w, layout="NHWC"):
        if layout == "NCHW":
            y = lax.conv_general_dilated(x.transpose(0, 3, 1, 2), w, (1, 1), "VALID",
                                         dimension_numbers=("NCHW", "HWIO", "NCHW"))
            return y.transpose(0, 2, 3, 1)
        return lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def padded(channels):
        def fn(x, w):
            extra = channels - x.shape[-1]
            return conv(jnp.pad(x, ((0, 0),) * 3 + ((0, extra),)), jnp.pad(w, ((0, 0),) * 2 + ((0, extra), (0, 0))))
        return fn

    def im2col(x, w):
        b, h, _, c = x.shape
        out = h - 2
        patches = jnp.concatenate([x[:, i:i + out, j:j + out] for i in range(3) for j in range(3)], axis=-1)
        return (patches.reshape(-1, 9 * c) @ w.reshape(9 * c, -1)).reshape(b, out, out, -1)

    variants = {"conv NHWC (Keras' Conv2D)": conv, "conv NCHW": lambda x, w: conv(x, w, "NCHW"),
                "channels zero-padded to 4": padded(4), "channels zero-padded to 8": padded(8),
                "im2col + matmul": im2col}
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(0, 255, size=(32, 160, 160, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 3, 32)) * 0.1, jnp.float32)
    reference = conv(x, w)
    rows = []
    for name, fn in variants.items():
        out = jax.jit(fn)(x, w)
        weight_grad = jax.jit(jax.grad(lambda w: (jax.nn.relu(fn(x, w)) ** 2).sum()))
        rows.append({"variant": name, "forward_ms": round(median_ms(jax.jit(fn), x, w), 1),
                     "forward_and_weight_grad_ms": round(median_ms(weight_grad, w), 1),
                     "max_rel_diff": float(jnp.abs(out - reference).max() / jnp.abs(reference).max())})
    return rows


def main():
    out = child_or_out_dir(measure)
    if out is None:
        return
    lines = ["# model1's first convolution on XLA:CPU (benchmarks/probes/first_conv_probe.py; pure JAX, jitted, "
             "median of 7 calls, 32x160x160x3 -> 32, ms)", "",
             "| XLA flags | variant | forward | forward + weight gradient | max relative difference |",
             "|---|---|---|---|---|"]
    with open(out / "first_conv.jsonl", "w") as f:
        for setting, rows in run_settings(__file__, SETTINGS).items():
            for r in rows:
                f.write(json.dumps({"xla_flags": SETTINGS[setting], **r}) + "\n")
                lines.append(f"| {setting} | {r['variant']} | {r['forward_ms']} | {r['forward_and_weight_grad_ms']} "
                             f"| {r['max_rel_diff']:.1e} |")
    (out / "first_conv.md").write_text("\n".join(lines) + "\n")
    print(out / "first_conv.md")


if __name__ == "__main__":
    main()
