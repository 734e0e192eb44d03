"""Time per 32-image batch (160x160, float32) of each augment option, and of Keras' RandomFlip + RandomRotation
as they come (`keras_layers`), called eagerly as the NumPy loader calls them, on each backend in a fresh
process: `python benchmarks/probes/augment_speed.py` -> results/augment/report.md. Run it alone (about a minute)."""

import json
import os
import sys
import time
from pathlib import Path

from fresh_process import measure_in_fresh_process, report

OPTIONS = ("keras_layers", "flip_rotate_keras", "flip_rotate")
ROOT = Path(__file__).resolve().parents[2]


def measure(option, repeats=40):
    import keras
    import numpy as np
    import yaml
    from hydra.utils import instantiate

    keras.utils.set_random_seed(0)
    if option == "keras_layers":
        layers = [keras.layers.RandomFlip("horizontal_and_vertical"), keras.layers.RandomRotation(0.2)]
    else:
        specs = yaml.safe_load((ROOT / "conf" / "augment" / f"{option}.yaml").read_text())["layers"]
        layers = [instantiate(spec) for spec in specs.values()]
    augment = keras.layers.Pipeline(layers)
    images = np.random.default_rng(0).integers(0, 256, (32, 160, 160, 3)).astype("float32")
    times = []
    for _ in range(repeats + 3):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(augment(images, training=True))
        times.append(time.perf_counter() - start)
    return float(np.median(times[3:]))


def main():
    if len(sys.argv) == 3:
        report("AUGMENT", {"option": sys.argv[2], "backend": os.environ["KERAS_BACKEND"],
                           "median_batch_seconds": measure(sys.argv[2])})
        return
    rows = [measure_in_fresh_process(__file__, backend, "AUGMENT", option)
            for backend in ("tensorflow", "jax") for option in OPTIONS]
    out = ROOT / "results" / "augment"
    out.mkdir(parents=True, exist_ok=True)
    (out / "augment.json").write_text(json.dumps(rows, indent=1) + "\n")
    header = ("| backend | " + " | ".join(f"`{o}` ms/batch" for o in OPTIONS) + " | "
              + " | ".join(f"`{OPTIONS[0]}` / `{o}`" for o in OPTIONS[1:]) + " |")
    lines = [header, "|---" * (2 * len(OPTIONS)) + "|"]
    for backend in ("tensorflow", "jax"):
        ms = [1000 * next(r["median_batch_seconds"] for r in rows if r["backend"] == backend and r["option"] == o)
              for o in OPTIONS]
        lines.append(f"| {backend} | " + " | ".join(f"{m:.1f}" for m in ms) + " | "
                     + " | ".join(f"{ms[0] / m:.2f}×" for m in ms[1:]) + " |")
    title = "# augment options, median milliseconds per 32-image batch of 160² (eager calls)"
    (out / "report.md").write_text(title + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
