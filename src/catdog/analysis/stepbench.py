"""One step-time measurement in this process: `python -m catdog.analysis.stepbench --model M --backend B` prints JSON.

catdog.bench runs it once per model x backend, each in a fresh process.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np
import yaml

from catdog.backend import use_backend


def _median_seconds(fn, steps):
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(model, backend, steps=20, warmup=3, batch_size=32, image_size=160, jit_compile="auto",
            precision="float32", xla_flags=None, options=None, import_tensorflow=True) -> dict:
    use_backend(backend, xla_flags, import_tensorflow=import_tensorflow)
    import keras

    from catdog.backend import active_backend, tensorflow_imported
    from catdog.models import build_model
    from catdog.utils.run_info import cpu_info, peak_rss_mb

    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy(precision)
    start = time.perf_counter()
    options = {**({"backbone.weights": None} if model == "mobilenet" else {}), **(options or {})}
    overrides = [f"model.{key}={json.dumps(value)}" for key, value in options.items()]
    task = build_model(model, (image_size, image_size), 2, overrides)
    task.compile(jit_compile=jit_compile)
    build_seconds = time.perf_counter() - start

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch_size, image_size, image_size, 3)).astype("float32")
    y = rng.integers(0, 2, batch_size).astype("int32")
    start = time.perf_counter()
    task.train_on_batch(x, y)
    first_step = time.perf_counter() - start
    for _ in range(max(warmup - 1, 0)):
        task.train_on_batch(x, y)
    step = _median_seconds(lambda: task.train_on_batch(x, y), steps)
    task.predict_on_batch(x)
    infer = _median_seconds(lambda: task.predict_on_batch(x), steps)
    return {
        "model": model, "backend": active_backend(), "jit_compile": bool(task.jit_compile), "precision": precision,
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "options": options,
        "batch_size": batch_size, "image_size": image_size, "steps": steps,
        "build_compile_seconds": build_seconds, "first_step_seconds": first_step,
        "median_step_seconds": step, "train_images_per_second": batch_size / step,
        "inference_images_per_second": batch_size / infer, "peak_rss_mb": peak_rss_mb(),
        "tensorflow_imported": tensorflow_imported(), "cpu": cpu_info(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m catdog.analysis.stepbench", description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--jit-compile", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--xla-flags", default=None, help="appended to XLA_FLAGS (conf/backend/<backend>.yaml)")
    parser.add_argument("--import-tensorflow", default="true", choices=["true", "false"],
                        help="false keeps TensorFlow out of a JAX process (conf/backend/jax.yaml)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a model option (a model.KEY override), e.g. xla_cpu_layers=false (value parsed as YAML)")
    args = parser.parse_args(argv)
    options = {key: yaml.safe_load(value) for key, value in (o.split("=", 1) for o in args.option)}
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    print("STEPBENCH " + json.dumps(measure(args.model, args.backend, args.steps, args.warmup, args.batch_size,
                                           args.image_size, jit, args.precision, args.xla_flags, options,
                                           args.import_tensorflow == "true")))


if __name__ == "__main__":
    main()
