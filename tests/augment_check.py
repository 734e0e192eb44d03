"""`python tests/augment_check.py`: RandomFlipRotation against Keras' RandomFlip + RandomRotation, in this
process's backend. Prints `CASE <name> <max abs difference, pixels 0-255>` per case; the test runs it on each
backend in a subprocess."""

import itertools

import keras
import numpy as np

from catdog.data.augment import RandomFlipRotation

images = np.random.default_rng(0).uniform(0, 255, (8, 24, 20, 3)).astype("float32")  # not square
flips = np.arange(8) % 3 == 0


def max_diff(a, b):
    return float(np.abs(keras.ops.convert_to_numpy(a) - keras.ops.convert_to_numpy(b)).max())


# The pair, given the same draws: Keras' rotation angles for this batch, and a flip for every third image.
flip, rotate = keras.layers.RandomFlip("horizontal_and_vertical"), keras.layers.RandomRotation(0.2)
rotation = rotate.get_random_transformation(images)
pair = rotate.transform_images(flip.transform_images(images, {"flips": flips[:, None, None, None]}), rotation)
fused = RandomFlipRotation(0.2)
one = fused.transform_images(images, fused.transformation(rotation["angle"], flips, 24, 20))
print("CASE flip_then_rotate", max_diff(pair, one))

# Every fill mode and interpolation: the same pixels as Keras' own affine_transform for the same matrix.
modes = ("reflect", "constant", "nearest", "wrap")
for fill_mode, interpolation in itertools.product(modes, ("bilinear", "nearest")):
    options = {"fill_mode": fill_mode, "interpolation": interpolation, "fill_value": 7.0}
    layer, keras_layer = RandomFlipRotation(0.2, **options), keras.layers.RandomRotation(0.2, **options)
    transformation = layer.get_random_transformation(images)
    ours, keras_own = (each.transform_images(images, transformation) for each in (layer, keras_layer))
    print(f"CASE {fill_mode}_{interpolation}", max_diff(ours, keras_own))

# One unbatched image goes through as its batch of one would.
single = RandomFlipRotation(0.2, seed=3)(images[0], training=True)
print("CASE unbatched", max_diff(single, RandomFlipRotation(0.2, seed=3)(images[:1], training=True)[0]))
