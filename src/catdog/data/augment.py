"""Augmentation layers that draw what Keras' own do, in fewer passes over the pixels."""

import functools

import keras

_ORDERS = {"nearest": 0, "bilinear": 1}


@keras.saving.register_keras_serializable("catdog")
class RandomRotation(keras.layers.RandomRotation):
    """Keras' `RandomRotation`, same draws and pixels; on JAX it samples each channel in 2-D
    (`jax_affine_transform`), several times faster (README "Performance")."""

    def _transform_images(self, images, transformation, interpolation):
        if self.backend.name != "jax" or self.data_format != "channels_last":
            return super()._transform_images(images, transformation, interpolation)
        batched = len(images.shape) == 4
        out = jax_affine_transform()(images if batched else images[None], transformation["rotation_matrix"],
                                     float(self.fill_value), _ORDERS[interpolation], self.fill_mode)
        return out if batched else out[0]


@keras.saving.register_keras_serializable("catdog")
class RandomFlipRotation(RandomRotation):
    """Keras' `RandomFlip("horizontal_and_vertical")` followed by `RandomRotation(factor)`, in one resampling.

    That flip mirrors an image both ways on one draw per image, which is a half turn about the image centre,
    the point RandomRotation turns about. So the pair is one rotation by the drawn angle plus 180° for each
    flipped image: one affine transform instead of two flips and a transform, with the two layers'
    distribution and, for the same draws, their output (tests/test_augment.py). README "Performance" has
    the times.
    """

    def get_random_transformation(self, data, training=True, seed=None):
        rotation = super().get_random_transformation(data, training, seed)
        if rotation is None:
            return None
        ops = self.backend
        seed = self._get_seed_generator(ops._backend) if seed is None else seed
        flips = ops.numpy.less_equal(ops.random.uniform(shape=(rotation["batch_size"],), seed=seed), 0.5)
        images = data["images"] if isinstance(data, dict) else data
        return self.transformation(rotation["angle"], flips, rotation["image_height"], rotation["image_width"],
                                   unbatched=len(ops.core.shape(images)) == 3)

    def transformation(self, angle, flips, height, width, unbatched=False):
        """The transformation that turns images by `angle` degrees, and a half turn more where `flips`."""
        ops = self.backend
        angle = angle + 180.0 * ops.cast(flips, angle.dtype)
        batch_size = ops.core.shape(angle)[0]
        zeros, ones = ops.numpy.zeros([batch_size]), ops.numpy.ones([batch_size])
        matrix = self._compute_affine_matrix(center_x=0.5, center_y=0.5, angle=angle, translate_x=zeros,
                                             translate_y=zeros, scale=ones, shear_x=zeros, shear_y=zeros,
                                             height=height, width=width)
        return {"angle": angle, "flips": flips, "batch_size": batch_size, "image_height": height, "image_width": width,
                "rotation_matrix": ops.numpy.squeeze(matrix, 0) if unbatched else matrix}


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
