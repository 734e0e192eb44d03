"""Does each backend flush float32 denormals to zero inside compiled code? (Plain PyTorch here ran 3x slower
per step until flush-to-zero was set; FACTS.md.) Multiplies two denormals by 1.5 in NumPy, a jitted JAX
function, a JAX convolution and a TensorFlow graph, each in its own process.

    python benchmarks/probes/denormals.py results/jax_levers/denormals.json
"""

import json
import os
import subprocess
import sys
from pathlib import Path

CASES = {
    "numpy": "import numpy as np; x = np.array([1e-40, 3e-39], np.float32); print((x * 1.5).tolist())",
    "jax_jit": ("import numpy as np, jax; x = np.array([1e-40, 3e-39], np.float32); "
                "print(np.asarray(jax.jit(lambda v: v * 1.5)(x)).tolist())"),
    "jax_conv": ("import numpy as np, jax, jax.numpy as jnp; x = np.array([1e-40, 3e-39], np.float32); "
                 "print(np.asarray(jax.jit(lambda v: jnp.convolve(v, jnp.array([1.5], jnp.float32)))(x)).tolist())"),
    "tensorflow_graph": ("import numpy as np, tensorflow as tf; x = np.array([1e-40, 3e-39], np.float32); "
                         "print(tf.function(lambda v: v * 1.5)(tf.constant(x)).numpy().tolist())"),
}


def main(out):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    results = {}
    for name, code in CASES.items():
        printed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout
        values = json.loads(printed.strip().splitlines()[-1])
        results[name] = {"values": values, "flushed_to_zero": all(v == 0 for v in values)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
