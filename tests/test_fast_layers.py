"""catdog's XLA:CPU-friendly layers compute what Keras' layers compute, and survive saving."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from catdog.backend import merge_flags
from catdog.models import build_model
from catdog.models.layers import DepthwiseConv2D, MaxPooling2D


def test_fast_layers_match_keras_on_jax_outputs_and_gradients():
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


def test_models_use_fast_layers_only_when_asked_and_reload_from_keras_files(tmp_path):
    fast = build_model("cnn_small", (32, 32, 3), 2)
    plain = build_model("cnn_small", (32, 32, 3), 2, fast_layers=False)
    assert {type(layer) for layer in fast.layers} >= {MaxPooling2D}
    assert MaxPooling2D not in {type(layer) for layer in plain.layers}
    fast.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in fast.layers]
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict_on_batch(x), fast.predict_on_batch(x), rtol=1e-6)


def test_mobilenet_base_gets_catdog_depthwise_layers():
    network = build_model("mobilenet", (32, 32, 3), 2, weights=None, alpha=0.35)
    base = network.get_layer("features").get_layer("mobilenetv2_base")
    kinds = [type(layer) for layer in base.layers]
    assert kinds.count(DepthwiseConv2D) == 17 and keras.layers.DepthwiseConv2D not in kinds


def test_xla_flags_from_config_never_override_the_users():
    assert merge_flags("", "--a= --b=1") == "--a= --b=1"
    assert merge_flags("--b=2 --c", "--a= --b=1") == "--b=2 --c --a="
