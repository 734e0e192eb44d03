"""Images per second of model4's frozen features (MobileNetV2 at 160x160, max pooling, ImageNet weights from
CATDOG_WEIGHTS) computed by Keras' predict, by ONNX Runtime on an ONNX export, and by OpenVINO's CPU plugin
on that ONNX file with a float32 and a bfloat16 inference precision (measured, not used by catdog), all
alternating in one process per row, batch 64 as the feature cache runs them. The exports: Keras' own on
each backend (tf2onnx on TensorFlow, jax2onnx on JAX), and on JAX also catdog's (`catdog.training.feature_cache.export_onnx`:
tf2onnx in a TensorFlow child process):
`python benchmarks/probes/feature_runtime.py [OUT_DIR=results/feature_runtime]` -> OUT_DIR/report.md.
Run it alone (a few minutes)."""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from catdog.utils.run_info import describe_cpu
from fresh_process import measure_in_fresh_process, report

ROOT = Path(__file__).resolve().parents[2]
BATCH = 64
OPENVINO_PRECISIONS = ("f32", "bf16")
EXPORTS = {("tensorflow", "keras"): "tf2onnx, Keras' export and catdog's",
           ("jax", "keras"): "jax2onnx, Keras' export", ("jax", "catdog"): "tf2onnx in a TensorFlow child, catdog's"}


def measure(exporter, images=512, rounds=5):
    import keras
    import onnxruntime
    import openvino

    from catdog.training.feature_cache import export_onnx
    from catdog.models import build_model
    from catdog.utils.run_info import cpu_info

    weights = os.environ["CATDOG_WEIGHTS"]
    features = build_model("mobilenet", (160, 160), 2, [f"model.backbone.weights={weights}"]).features
    x = np.random.default_rng(0).integers(0, 256, (images, 160, 160, 3)).astype("float32")
    keras_out = features.predict(x[:BATCH], batch_size=BATCH, verbose=0)  # warm-up, and the reference
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if exporter == "catdog":
            export_onnx(features, f"{tmp}/features.onnx")
        else:
            features.export(f"{tmp}/features.onnx", format="onnx", verbose=False)
        export_seconds = time.perf_counter() - start
        session = onnxruntime.InferenceSession(f"{tmp}/features.onnx", providers=["CPUExecutionProvider"])
        onnx_model = openvino.convert_model(f"{tmp}/features.onnx")
    name = session.get_inputs()[0].name
    batch_fns = {"onnxruntime": lambda b: session.run(None, {name: b})[0]}
    for precision in OPENVINO_PRECISIONS:
        compiled = openvino.Core().compile_model(onnx_model, "CPU", {"INFERENCE_PRECISION_HINT": precision})
        batch_fns[f"openvino_{precision}"] = lambda b, compiled=compiled: compiled(b)[0]
    passes = {"keras": lambda: features.predict(x, batch_size=BATCH, verbose=0),  # one call, as the cache makes
              **{k: lambda fn=fn: np.concatenate([fn(x[i:i + BATCH]) for i in range(0, images, BATCH)])
                 for k, fn in batch_fns.items()}}
    times = {k: [] for k in passes}
    for _ in range(rounds):
        for k, run in passes.items():
            start = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - start)
    diffs = {k: float(np.abs(fn(x[:BATCH]) - keras_out).max() / np.abs(keras_out).max())
             for k, fn in batch_fns.items()}
    return {"backend": keras.backend.backend(), "exporter": exporter, "cpu": cpu_info(),
            **{f"{k}_images_per_second": images / float(np.median(t)) for k, t in times.items()},
            **{f"{k}_max_relative_difference": d for k, d in diffs.items()},
            "export_seconds": export_seconds, "rounds": rounds, "images": images}


def main():
    if sys.argv[1:2] == ["measure"]:
        report("RUNTIME", measure(sys.argv[2]))
        return
    rows = [measure_in_fresh_process(__file__, backend, "RUNTIME", exporter)
            for backend, exporter in (("tensorflow", "keras"), ("jax", "keras"), ("jax", "catdog"))]
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results" / "feature_runtime"
    out.mkdir(parents=True, exist_ok=True)
    (out / "runtimes.json").write_text(json.dumps(rows, indent=1) + "\n")
    others = ("onnxruntime", *(f"openvino_{p}" for p in OPENVINO_PRECISIONS))
    names = {"onnxruntime": "ONNX Runtime", **{f"openvino_{p}": f"OpenVINO {p}" for p in OPENVINO_PRECISIONS}}
    lines = ["| backend (ONNX export) | export s | Keras predict img/s | "
             + " | ".join(f"{names[k]} img/s (× Keras; max relative difference)" for k in others) + " |",
             "|---|---|---|" + "---|" * len(others)]
    for r in rows:
        plain = r["keras_images_per_second"]
        cells = [f"{r[f'{k}_images_per_second']:.1f} ({r[f'{k}_images_per_second'] / plain:.2f}×; "
                 f"{r[f'{k}_max_relative_difference']:.1e})" for k in others]
        export = EXPORTS[r["backend"], r["exporter"]]
        lines.append(f"| {r['backend']} ({export}) | {r['export_seconds']:.1f} | {plain:.1f} | "
                     + " | ".join(cells) + " |")
    title = (f"# model4's frozen features, images/s (median of {rows[0]['rounds']} passes over "
             f"{rows[0]['images']} images, batch {BATCH}), the runtimes alternating\n\n"
             f"On {describe_cpu(rows[0]['cpu'])}. Max relative difference: the largest difference from Keras' "
             "features over Keras' largest feature.")
    (out / "report.md").write_text(title + "\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
