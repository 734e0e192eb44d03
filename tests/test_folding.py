import keras
import numpy as np
import pytest

from catdog.models import build_model
from catdog.models.folding import FoldedAway, fold_batch_norm
from catdog.models.layers import DepthwiseConv2D


def randomise_batch_norm(model, rng):
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = (np.asarray(w) for w in layer.get_weights())
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 1, beta.shape),
                               rng.normal(0, 1, mean.shape), rng.uniform(0.1, 3, variance.shape)])


def toy_model():
    """Foldable: conv -> BN, biased depthwise (multiplier 2) -> BN. Not: conv with relu -> BN, a conv read twice."""
    inner_in = keras.Input((12, 12, 4))
    x = keras.layers.Conv2D(6, 3, use_bias=False)(inner_in)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=True)(x)
    x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(x))
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(5, 1, activation="relu")(x))
    shared = keras.layers.Conv2D(5, 1)(x)
    x = keras.layers.Add()([keras.layers.BatchNormalization()(shared), shared])
    inner = keras.Model(inner_in, x, name="inner")
    outer_in = keras.Input((12, 12, 4))
    return keras.Model(outer_in, keras.layers.GlobalMaxPooling2D()(inner(keras.layers.Rescaling(0.5)(outer_in))),
                       name="outer")


def test_folding_gives_the_same_outputs_and_folds_only_what_it_may():
    rng = np.random.default_rng(0)
    model = toy_model()
    randomise_batch_norm(model, rng)
    folded = fold_batch_norm(model)
    x = rng.uniform(0, 255, (3, 12, 12, 4)).astype("float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    inner = folded.get_layer("inner")
    kinds = [type(layer) for layer in inner.layers]
    assert kinds.count(FoldedAway) == 2 and kinds.count(keras.layers.BatchNormalization) == 2
    assert DepthwiseConv2D in kinds  # catdog's layer class survives the copy
    assert folded.name == "outer" and not folded.trainable_weights
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.get_layer("inner").layers) == 4


@pytest.mark.parametrize("fast_layers", [True, False])
def test_folded_mobilenet_features_match(fast_layers):
    rng = np.random.default_rng(1)
    features = build_model("mobilenet", (32, 32, 3), 2, weights=None, fast_layers=fast_layers).get_layer("features")
    randomise_batch_norm(features, rng)
    folded = fold_batch_norm(features)
    assert sum(isinstance(layer, FoldedAway) for layer in folded._flatten_layers()) == 52  # every BN in MobileNetV2
    x = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    expected = features.predict(x, verbose=0)
    np.testing.assert_allclose(folded.predict(x, verbose=0), expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
