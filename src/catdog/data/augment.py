"""Augmentation layers that draw what Keras' own do, in fewer passes over the pixels."""

import functools

import keras

from catdog.errors import CatdogError

_ORDERS = {"nearest": 0, "bilinear": 1}


@keras.saving.register_keras_serializable("catdog")
class RandomFlipRotation(keras.layers.RandomRotation):
    """Keras' `RandomFlip("horizontal_and_vertical")` followed by `RandomRotation(factor)`, in one resampling.

    That flip mirrors an image both ways on one draw per image, which is a half turn about the image centre,
    the point RandomRotation turns about. So the pair is one rotation by an angle drawn as RandomRotation
    draws it, plus 180 degrees for each flipped image: one affine transform instead of two flips and a
    transform, with the two layers' distribution (tests/test_augment.py). On JAX the resampling runs
    through `jax_affine_transform`. Only the public hooks of Keras' image preprocessing layers are
    overridden (`get_random_transformation`, `transform_images`); draws come from this layer's own seed.
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(factor, fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value,
                         **kwargs)
        self.flip_rotate_seed = keras.random.SeedGenerator(seed)

    def get_random_transformation(self, data, training=True, seed=None):
        ops = self.backend
        if not training:
            return None
        if ops.name != keras.backend.backend():
            raise CatdogError(f"augment=flip_rotate runs on the {keras.backend.backend()} backend, not inside a tf.data "
                              "pipeline of another backend; use dataset.loader=numpy.")
        images = data["images"] if isinstance(data, dict) else data
        shape = ops.core.shape(images)
        batched = len(shape) == 4
        height, width = (shape[1], shape[2]) if batched else (shape[0], shape[1])
        batch_size = shape[0] if batched else 1
        seed = self.flip_rotate_seed if seed is None else seed
        angle = ops.random.uniform((batch_size,), minval=self.factor[0] * 360.0, maxval=self.factor[1] * 360.0,
                                   seed=seed)
        flips = ops.numpy.less_equal(ops.random.uniform((batch_size,), seed=seed), 0.5)
        return self.transformation(angle, flips, height, width, unbatched=not batched)

    def transformation(self, angle, flips, height, width, unbatched=False):
        """The transformation that turns images by `angle` degrees, and a half turn more where `flips`."""
        ops = self.backend
        angle = angle + 180.0 * ops.cast(flips, angle.dtype)
        matrix = rotation_matrix(ops, angle, height, width)
        return {"angle": angle, "flips": flips, "image_height": height, "image_width": width,
                "rotation_matrix": ops.numpy.squeeze(matrix, 0) if unbatched else matrix}

    def transform_images(self, images, transformation, training=True):
        if not training or transformation is None:
            return images
        ops = self.backend
        batched = len(images.shape) == 4
        x = images if batched else ops.numpy.expand_dims(images, 0)
        matrix = transformation["rotation_matrix"]
        matrix = matrix if len(matrix.shape) == 2 else ops.numpy.expand_dims(matrix, 0)
        x = ops.cast(x, self.compute_dtype)
        if ops.name == "jax" and self.data_format == "channels_last":
            out = jax_affine_transform()(x, matrix, float(self.fill_value), _ORDERS[self.interpolation], self.fill_mode)
        else:
            out = ops.image.affine_transform(x, matrix, interpolation=self.interpolation, fill_mode=self.fill_mode,
                                             fill_value=self.fill_value, data_format=self.data_format)
        return out if batched else out[0]


def rotation_matrix(ops, degrees, height, width):
    """Keras' projective transforms ([a0, a1, a2, b0, b1, b2, 0, 0] per image, output to input pixel) that
    turn images by `degrees` about their centre, ((width - 1) / 2, (height - 1) / 2)."""
    theta = degrees * (3.141592653589793 / 180.0)
    cos, sin = ops.numpy.cos(theta), ops.numpy.sin(theta)
    cx, cy = (ops.cast(width, theta.dtype) - 1) / 2, (ops.cast(height, theta.dtype) - 1) / 2
    zeros = ops.numpy.zeros_like(theta)
    return ops.numpy.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zeros, zeros],
                           axis=1)


@functools.cache
def jax_affine_transform():
    """`keras.ops.image.affine_transform` (channels last) for JAX, jitted, one 2-D sampling per channel: Keras'
    interpolates over the channel axis as well, reading 8 corners per value where 4 suffice
    (results/augment/report.md has the layer's time per batch with each)."""
    import jax
    import jax.numpy as jnp

    @functools.partial(jax.jit, static_argnums=(2, 3, 4))
    def transform_images(images, transforms, fill_value, order, fill_mode):
        _, height, width, _ = images.shape
        transforms = jnp.reshape(transforms, (-1, 8)).astype("float32")
        y, x = jnp.meshgrid(jnp.arange(height, dtype="float32"), jnp.arange(width, dtype="float32"), indexing="ij")
        a0, a1, a2, b0, b1, b2, c0, c1 = (transforms[:, i, None, None] for i in range(8))
        k = c0 * x + c1 * y + 1
        rows, cols = (b0 * x + b1 * y + b2) / k, (a0 * x + a1 * y + a2) / k

        def sample(channel, rows, cols):
            return jax.scipy.ndimage.map_coordinates(channel, [rows, cols], order=order, mode=fill_mode,
                                                     cval=fill_value)

        per_channel = jax.vmap(sample, in_axes=(2, None, None), out_axes=2)
        return jax.vmap(per_channel)(images, rows, cols).astype(images.dtype)

    return transform_images


def flip_horizontally(images, training=None):
    """Images mirrored left to right (NHWC): test-time augmentation's second view."""
    return images[:, :, ::-1]
