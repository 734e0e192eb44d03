"""Every `catdog.export` format, run by its own runtime, predicts what the live Keras model predicts."""

import numpy as np
import pytest

from helpers import run_cli, run_main

CASES = [  # (format, backend, model): ONNX from JAX also covers catdog's layers through jax2onnx
    ("onnx", "tensorflow", "cnn_scaled"),
    pytest.param("onnx", "jax", "cnn_scaled", marks=pytest.mark.slow),  # another backend: another process
    pytest.param("onnx", "jax", "mobilenet", marks=pytest.mark.slow),
    ("openvino", "tensorflow", "cnn_scaled"),
    ("litert", "tensorflow", "cnn_scaled"),
]
RUNTIME = {"onnx": "onnxruntime", "openvino": "openvino", "litert": "ai_edge_litert"}


def run_artifact(fmt, path, x):
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path))
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    if fmt == "openvino":
        import openvino

        # OpenVINO runs in bf16 by default on CPUs that have it; f32 to compare like with like
        return openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(x)[0]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path))
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def save_model(name, path):
    import keras

    from catdog.models import build_model

    options = ["model.backbone.weights=null", "model.backbone.alpha=0.35"] if name == "mobilenet" else []
    keras.utils.set_random_seed(0)
    build_model(name, (32, 32), 2, options).save(path)
    return keras.models.load_model(path, compile=False)


@pytest.mark.parametrize("fmt,backend,model", CASES)
def test_exported_artifact_predicts_like_the_live_model(tmp_path, fmt, backend, model):
    pytest.importorskip(RUNTIME[fmt])
    live = save_model(model, tmp_path / "model.keras")
    out = tmp_path / "export"
    run = run_cli if backend == "jax" else run_main  # this process runs TensorFlow
    result = run("catdog.export", f"ckpt_path={tmp_path / 'model.keras'}", f"format={fmt}", f"backend={backend}",
                 f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    artifact = next(p for p in out.iterdir() if p.name.startswith(f"{model}_{fmt}") and p.suffix != ".data")
    x = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3)).astype("float32")
    expected = live.predict(x, verbose=0)
    scale = float(np.abs(expected).max())
    assert scale > 0
    np.testing.assert_allclose(run_artifact(fmt, artifact, x), expected, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("fmt", ["litert", "openvino"])
def test_tensorflow_only_formats_on_jax_name_the_backend_to_use(tmp_path, fmt):
    result = run_main("catdog.export", f"ckpt_path={tmp_path / 'missing.keras'}", f"format={fmt}", "backend=jax",
                      f"hydra.run.dir={tmp_path / 'out'}")
    assert result.returncode == 1 and f"format={fmt} needs backend=tensorflow" in result.stdout + result.stderr
