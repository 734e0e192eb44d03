import os
import subprocess
import sys

import pytest

KEPT_OUT = """
from catdog.backend import use_backend
use_backend("jax", compilation_cache_dir=sys.argv[1], import_tensorflow=False)
import importlib.util, keras
import jax.numpy as jnp
keras.utils.set_random_seed(0)
assert keras.layers.RandomRotation(0.2, seed=1)(jnp.ones((2, 8, 8, 3))).shape == (2, 8, 8, 3)
task = keras.Sequential([keras.Input((4,)), keras.layers.Rescaling(0.5), keras.layers.Dense(2)])
task.save(sys.argv[1] + "-model.keras")  # Keras' saving asks whether TensorFlow is there
from catdog.backend import require_tensorflow
from catdog.errors import CatdogError
try:
    require_tensorflow("logger=tensorboard")
except CatdogError as error:
    print(error)
assert importlib.util.find_spec("tensorflow") is not None and "tensorflow" not in sys.modules
"""


@pytest.mark.slow
def test_a_jax_process_can_keep_tensorflow_out(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}  # use_backend chooses
    result = subprocess.run([sys.executable, "-c", "import sys\n" + KEPT_OUT, str(tmp_path / "jax-cache")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "set backend.import_tensorflow=true" in result.stdout
    assert "Error reading persistent compilation cache" not in result.stderr
    assert any((tmp_path / "jax-cache").iterdir())


def test_entry_points_leave_the_backend_to_be_chosen():
    """Without KERAS_BACKEND, importing catdog or an entry point imports no Keras: `backend=` still chooses."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    code = ("import sys, catdog, catdog.training, catdog.train, catdog.evaluate, catdog.predict, catdog.export, "
            "catdog.explore, catdog.report, catdog.bench; print('keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_import_catdog_registers_its_classes_once_the_backend_is_chosen():
    code = "import sys, catdog, keras; print(keras.saving.get_registered_object('catdog>ImageClassifier').__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert result.stdout.strip() == "ImageClassifier", result.stderr[-2000:]
