"""Images per second of model4's frozen features (MobileNetV2 at 160x160, max pooling, ImageNet weights from
CATDOG_WEIGHTS) computed by Keras' predict and by ONNX Runtime on the backend's own ONNX export (tf2onnx on
TensorFlow, jax2onnx on JAX), the two alternating in one process per backend, batch 64 as the feature cache
runs them: `python scripts/feature_runtime.py` -> results/feature_runtime/report.md. Run it alone (a few
minutes)."""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fresh_process import measure_in_fresh_process, report

ROOT = Path(__file__).resolve().parents[1]
BATCH = 64


def measure(images=512, rounds=5):
    import keras
    import onnxruntime

    from catdog.models import build_model

    features = build_model("mobilenet", (160, 160, 3), 2, weights=os.environ["CATDOG_WEIGHTS"]).get_layer("features")
    x = np.random.default_rng(0).integers(0, 256, (images, 160, 160, 3)).astype("float32")
    keras_out = features.predict(x[:BATCH], batch_size=BATCH, verbose=0)  # warm-up, and the reference
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        features.export(f"{tmp}/features.onnx", format="onnx", verbose=False)
        export_seconds = time.perf_counter() - start
        session = onnxruntime.InferenceSession(f"{tmp}/features.onnx", providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    runtimes = {
        "keras": lambda: features.predict(x, batch_size=BATCH, verbose=0),
        "onnxruntime": lambda: [session.run(None, {name: x[i:i + BATCH]}) for i in range(0, images, BATCH)],
    }
    ort_out = session.run(None, {name: x[:BATCH]})[0]
    times = {k: [] for k in runtimes}
    for _ in range(rounds):
        for k, run in runtimes.items():
            start = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - start)
    diff = np.abs(ort_out - keras_out).max() / np.abs(keras_out).max()
    return {"backend": keras.backend.backend(),
            **{f"{k}_images_per_second": images / float(np.median(t)) for k, t in times.items()},
            "export_seconds": export_seconds, "max_relative_difference": float(diff), "rounds": rounds,
            "images": images}


def main():
    if len(sys.argv) == 2:
        report("RUNTIME", measure())
        return
    rows = [measure_in_fresh_process(__file__, backend, "RUNTIME") for backend in ("tensorflow", "jax")]
    out = ROOT / "results" / "feature_runtime"
    out.mkdir(parents=True, exist_ok=True)
    (out / "runtimes.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| backend (ONNX export) | Keras predict img/s | ONNX Runtime img/s | ONNX Runtime / Keras "
             "| export s | max relative difference |", "|---|---|---|---|---|---|"]
    for r in rows:
        plain, ort = r["keras_images_per_second"], r["onnxruntime_images_per_second"]
        export = "tf2onnx" if r["backend"] == "tensorflow" else "jax2onnx"
        lines.append(f"| {r['backend']} ({export}) | {plain:.1f} | {ort:.1f} | {ort / plain:.2f}× "
                     f"| {r['export_seconds']:.1f} | {r['max_relative_difference']:.1e} |")
    title = (f"# model4's frozen features, images/s (median of {rows[0]['rounds']} passes over "
             f"{rows[0]['images']} images, batch {BATCH}): Keras' predict and ONNX Runtime, alternating")
    (out / "report.md").write_text(title + "\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
