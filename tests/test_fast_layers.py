"""catdog's XLA:CPU layer subclasses compute what Keras' layers compute, are built on JAX's CPU only, and their
checkpoints load on either backend."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from catdog.backend import merge_flags
from catdog.models import build_model
from catdog.models.layers import leaf_layers

from helpers import run_python


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
def test_jax_cpu_builds_catdogs_layer_subclasses_and_their_checkpoints_load_anywhere(tmp_path):
    model = build_model("cnn_small", (32, 32), 2)  # this process runs TensorFlow: Keras' own layers
    assert {type(layer).__module__.split(".")[0] for layer in leaf_layers(model)} == {"keras"}
    tf_file = tmp_path / "tf.keras"
    model.save(tf_file)
    script = f"""
import catdog, keras
from catdog.models import build_model
from catdog.models.layers import leaf_layers
for name, options in (("cnn_small", []), ("mobilenet", ["model.backbone.weights=null", "model.backbone.alpha=0.35"])):
    task = build_model(name, (32, 32), 2, options)
    fast = sorted({{type(l).__name__ for l in leaf_layers(task) if type(l).__module__.startswith("catdog")}})
    count = sum(type(l).__module__.startswith("catdog") for l in leaf_layers(task))
    task.save(r"{tmp_path}/" + name + ".keras")
    print("FAST", name, count, fast)
loaded = keras.saving.load_model(r"{tf_file}")  # saved on TensorFlow with Keras' layers: rebuilt with catdog's
print("LOADED", sum(type(l).__module__.startswith("catdog") for l in leaf_layers(loaded)))
"""
    out = run_python(script, backend="jax")
    assert "FAST cnn_small 3 ['MaxPooling2D']" in out, out
    assert "FAST mobilenet 17 ['DepthwiseConv2D']" in out, out
    assert "LOADED 3" in out, out
    loaded = keras.saving.load_model(tmp_path / "mobilenet.keras")  # here, on TensorFlow: Keras' own call runs
    fast = [layer for layer in leaf_layers(loaded) if type(layer).__module__.startswith("catdog")]
    assert len(fast) == 17 and all(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in fast)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    rebuilt = type(loaded).from_config(loaded.get_config())
    rebuilt.set_weights(loaded.get_weights())
    np.testing.assert_allclose(loaded.predict(images, verbose=0), rebuilt.predict(images, verbose=0), atol=1e-5)


def test_xla_flags_from_config_never_override_the_users():
    assert merge_flags("", "--a= --b=1") == "--a= --b=1"
    assert merge_flags("--b=2 --c", "--a= --b=1") == "--b=2 --c --a="
