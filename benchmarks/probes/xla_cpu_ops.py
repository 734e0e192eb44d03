"""Time the ops behind the JAX-on-CPU gap, in pure JAX, with XLA's YNNPACK fusions on and off.

    python benchmarks/probes/xla_cpu_ops.py [OUT_DIR=results/jax_levers]   -> OUT_DIR/ops.{jsonl,md}

Each setting runs in its own process (XLA_FLAGS is read once, when JAX starts). Median of 7 jitted calls.
"""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="


def median_ms(fn, *args):
    """Milliseconds per call of a jitted `fn`: the median of 7 calls after a warm-up call."""
    import jax

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(7):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run_settings(script, settings: dict) -> dict:
    """{setting: rows}: `script`'s measure() in a fresh process per XLA_FLAGS value (read once, when JAX starts)."""
    results = {}
    for setting, flags in settings.items():
        env = {**os.environ, "CATDOG_OPS_CHILD": "1", "XLA_FLAGS": flags}
        done = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, check=True)
        results[setting] = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("OPS "))[4:])
    return results


def child_or_out_dir(measure) -> Path | None:
    """In a child process, print measure()'s rows and return None; otherwise the output folder (argv[1])."""
    if os.environ.get("CATDOG_OPS_CHILD"):
        print("OPS " + json.dumps(measure()))
        return None
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "results/jax_levers")
    out.mkdir(parents=True, exist_ok=True)
    return out


def measure():
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def pool_window(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    def pool_reshape(x):
        b, h, w, c = x.shape
        return x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

    def depthwise_grouped(x, w, s):
        return lax.conv_general_dilated(x, w[:, :, None, :], (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=x.shape[-1])

    def depthwise_shifted(x, w, s):
        h = x.shape[1]
        out_h = -(-h // s)
        pad = max((out_h - 1) * s + 3 - h, 0)
        xp = jnp.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0)))
        end = (out_h - 1) * s + 1
        return sum(xp[:, i:i + end:s, j:j + end:s] * w[i, j] for i in range(3) for j in range(3))

    rng = np.random.default_rng(0)
    rows = []

    def row(op, shape, variant, value):
        rows.append({"op": op, "shape": shape, "variant": variant, "ms": round(value, 2)})

    a = jnp.asarray(rng.normal(size=(2048, 2048)), jnp.float32)
    row("matmul 2048^3", "GFLOP/s", "xla", 2 * 2048 ** 3 / median_ms(jax.jit(lambda a: a @ a), a) / 1e6)
    for b, h, c, f in [(32, 160, 3, 32), (32, 79, 32, 32), (32, 38, 32, 64)]:
        x = jnp.asarray(rng.normal(size=(b, h, h, c)), jnp.float32)
        w = jnp.asarray(rng.normal(size=(3, 3, c, f)), jnp.float32)
        g = jnp.asarray(rng.normal(size=conv(x, w).shape), jnp.float32)
        shape = f"{b}x{h}x{h}x{c} -> {f}"
        row("conv3x3 forward", shape, "xla", median_ms(jax.jit(conv), x, w))
        weight_grad = jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
        input_grad = jax.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
        row("conv3x3 weight grad", shape, "xla", median_ms(weight_grad, x, w, g))
        row("conv3x3 input grad", shape, "xla", median_ms(input_grad, x, w, g))
    x = jnp.asarray(rng.normal(size=(32, 158, 158, 32)), jnp.float32)
    for name, pool in (("reduce_window", pool_window), ("reshape+max", pool_reshape)):
        pool_grad = jax.jit(jax.grad(lambda x: (pool(x) ** 2).sum()))
        row("maxpool2 forward+grad", "32x158x158x32", name, median_ms(pool_grad, x))
    for b, h, c, s in [(32, 80, 96, 2), (32, 40, 144, 1), (32, 20, 192, 1), (32, 5, 960, 1)]:
        x = jnp.asarray(rng.normal(size=(b, h, h, c)), jnp.float32)
        w = jnp.asarray(rng.normal(size=(3, 3, c)), jnp.float32)
        for name, fn in (("grouped conv", depthwise_grouped), ("shifted slices", depthwise_shifted)):
            shape = f"{b}x{h}x{h}x{c} stride {s}"
            row("depthwise3x3 forward", shape, name, median_ms(jax.jit(fn, static_argnums=2), x, w, s))
            grad = jax.jit(jax.grad(lambda x, w: (fn(x, w, s) ** 2).sum(), argnums=(0, 1)))
            row("depthwise3x3 forward+grad", shape, name, median_ms(grad, x, w))
    return rows


def main():
    out = child_or_out_dir(measure)
    if out is None:
        return
    results = run_settings(__file__, {"on (default)": "", "off": YNN_OFF})
    with open(out / "ops.jsonl", "w") as f:
        for setting, rows in results.items():
            for r in rows:
                f.write(json.dumps({"ynnpack": setting, **r}) + "\n")
    lines = ["# XLA:CPU ops (benchmarks/probes/xla_cpu_ops.py; pure JAX, jitted, median of 7 calls, ms unless "
             "noted)", "",
             "| op | shape | variant | YNNPACK on (default) | YNNPACK off |", "|---|---|---|---|---|"]
    for on, off in zip(results["on (default)"], results["off"]):
        lines.append(f"| {on['op']} | {on['shape']} | {on['variant']} | {on['ms']} | {off['ms']} |")
    (out / "ops.md").write_text("\n".join(lines) + "\n")
    print(out / "ops.md")


if __name__ == "__main__":
    main()
