"""RandomFlipRotation (Keras' flip + rotation pair in one resampling), on both backends."""

import contextlib
import io
import os
import runpy
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from catdog.data.augment import RandomFlipRotation


@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=pytest.mark.slow)])
def test_augment_layers_give_keras_pixels_for_keras_draws(backend):
    check = Path(__file__).parent / "augment_check.py"
    if backend == keras.backend.backend():  # this process's
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            runpy.run_path(str(check))
        output = printed.getvalue()
    else:
        env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
               "PYTHONPATH": str(check.parents[1] / "src")}
        result = subprocess.run([sys.executable, str(check)], capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        output = result.stdout
    cases = dict(line.split()[1:] for line in output.splitlines() if line.startswith("CASE "))
    assert len(cases) == 10, output
    assert all(float(diff) < 0.01 for diff in cases.values()), cases


def test_flip_rotation_draws_flips_and_angles_independently_and_reproducibly():
    images = np.zeros((200, 8, 8, 3), "float32")

    def draws():
        transformation = RandomFlipRotation(0.2, seed=0).get_random_transformation(images)
        return np.asarray(transformation["flips"]), np.asarray(transformation["angle"])

    (flips, angles), again = draws(), draws()
    assert np.array_equal(flips, again[0]) and np.array_equal(angles, again[1])
    assert 0.35 < flips.mean() < 0.65
    turned = np.where(flips, angles - 180, angles)  # the rotation's own draw, within ±0.2 turns
    assert np.all(np.abs(turned) <= 72)
    assert 0.3 < (turned[flips] > 0).mean() < 0.7  # a flipped image turns either way


def test_flip_rotation_saves_and_loads_as_itself():
    layer = RandomFlipRotation(0.3, fill_mode="nearest")
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is RandomFlipRotation
    assert restored.get_config() == layer.get_config()
