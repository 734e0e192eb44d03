"""catdog's XLA:CPU calls compute what Keras' layers compute, and never reach a saved file."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from catdog.backend import merge_flags
from catdog.models import build_model
from catdog.models.layers import leaf_layers, use_xla_cpu_layers

from conftest import run_python


@pytest.mark.slow
def test_fast_calls_match_keras_on_jax_outputs_and_gradients():
    tests = Path(__file__).parent
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",  # the fast path is XLA:CPU's
           "PYTHONPATH": str(tests.parent / "src"), "XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}
    result = subprocess.run([sys.executable, str(tests / "fast_layers_check.py")], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    cases = dict(line.split()[1:] for line in result.stdout.splitlines() if line.startswith("CASE "))
    assert set(cases) == {"maxpool2", "maxpool3", "depthwise_s1_same", "depthwise_s1_valid", "depthwise_s2_same",
                          "depthwise_s2_valid", "mobilenetv2_17_depthwise_swapped"}, result.stdout
    assert all(float(diff) < 1e-4 for diff in cases.values()), cases


@pytest.mark.slow
def test_the_swap_happens_on_jax_cpu_only_and_saved_files_hold_keras_layers(tmp_path):
    model = build_model("cnn_small", (32, 32), 2)  # this process runs TensorFlow: nothing to swap
    assert use_xla_cpu_layers(model) == 0 and not any("call" in vars(layer) for layer in leaf_layers(model))
    script = f"""
import catdog, keras
from catdog.models import build_model
from catdog.models.layers import leaf_layers
for name, options in (("cnn_small", []), ("mobilenet", ["model.backbone.weights=null", "model.backbone.alpha=0.35"])):
    task = build_model(name, (32, 32), 2, options)
    swapped = [type(l).__name__ for l in leaf_layers(task) if "call" in vars(l)]
    task.save(r"{tmp_path}/" + name + ".keras")
    classes = sorted({{type(l).__module__.split(".")[0] for l in leaf_layers(task)}})
    print("SWAPPED", name, len(swapped), sorted(set(swapped)), classes)
"""
    out = run_python(script, backend="jax")
    assert "SWAPPED cnn_small 3 ['MaxPooling2D'] ['keras']" in out, out
    assert "SWAPPED mobilenet 17 ['DepthwiseConv2D'] ['keras']" in out, out
    loaded = keras.saving.load_model(tmp_path / "mobilenet.keras")  # here, on TensorFlow
    assert not any("call" in vars(layer) for layer in leaf_layers(loaded))


def test_xla_flags_from_config_never_override_the_users():
    assert merge_flags("", "--a= --b=1") == "--a= --b=1"
    assert merge_flags("--b=2 --c", "--a= --b=1") == "--b=2 --c --a="
