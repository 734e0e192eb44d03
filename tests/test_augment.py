"""RandomFlipRotation (Keras' flip + rotation pair in one resampling), on both backends."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from catdog.data.augment import RandomFlipRotation


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_augment_layers_give_keras_pixels_for_keras_draws(backend):
    tests = Path(__file__).parent
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(tests.parent / "src")}
    result = subprocess.run([sys.executable, str(tests / "augment_check.py")], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    cases = dict(line.split()[1:] for line in result.stdout.splitlines() if line.startswith("CASE "))
    assert len(cases) == 10, result.stdout
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
