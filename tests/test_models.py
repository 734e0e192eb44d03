import keras
import numpy as np
import pytest

from catdog.errors import CatdogError
from catdog.models import available_models, build_model
from catdog.models.layers import leaf_layers

from helpers import REAL_WEIGHTS

EXPECTED = {  # the tutorial's parameter counts: (total, trainable)
    "cnn_small": (70_114, 70_114),
    "cnn": (1_355_938, 1_355_938),
    "cnn_scaled": (1_355_938, 1_355_938),
    "mobilenet": (2_340_098, 82_114),
    "transfer": (2_340_098, 82_114),  # its default backbone is model4's MobileNetV2
}
NO_WEIGHTS = {"mobilenet": ["model.backbone.weights=null"], "transfer": ["model.weights=null"]}


def trainable(model):
    return sum(int(w.numpy().size) for w in model.trainable_weights)


@pytest.mark.backends
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameter_counts_match_the_tutorial(name):
    model = build_model(name, (160, 160), 2, NO_WEIGHTS.get(name, ()))
    assert (model.count_params(), trainable(model)) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_logits_stay_float32_under_mixed_precision(name):
    import keras

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_model(name, (32, 32), 2, NO_WEIGHTS.get(name, ()))
        assert model.backbone.compute_dtype == "bfloat16"
        assert keras.backend.standardize_dtype(model(keras.ops.zeros((1, 32, 32, 3))).dtype) == "float32"
    finally:
        keras.config.set_dtype_policy("float32")


def test_every_model_option_is_covered():
    assert sorted(EXPECTED) == available_models()


def test_unknown_model_and_bad_option_are_clear_errors():
    with pytest.raises(CatdogError, match="not a model option"):
        build_model("nope", (32, 32), 2)
    with pytest.raises(CatdogError, match="model: .*no_such_option"):
        build_model("cnn", (32, 32), 2, ["+model.no_such_option=1"])


def test_missing_weights_file_names_the_setting(tmp_path):
    with pytest.raises(CatdogError, match="model.backbone.weights"):
        build_model("mobilenet", (96, 96), 2, [f"model.backbone.weights={tmp_path / 'absent.h5'}"])


@pytest.mark.skipif(not REAL_WEIGHTS.is_file(),
                    reason="MobileNetV2 weights absent: set CATDOG_WEIGHTS (or provide ../shared/weights)")
def test_shared_imagenet_weights_load():
    import numpy as np

    model = build_model("mobilenet", (96, 96), 2, [f"model.backbone.weights={REAL_WEIGHTS}"])
    assert not model.backbone.trainable and model.backbone_frozen
    assert np.abs(model.backbone.get_layer("Conv1").kernel.numpy()).sum() > 0


@pytest.mark.backends
def test_mobilenet_pooling_is_average_or_max():
    import numpy as np

    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    options = ["model.backbone.weights=null", "model.backbone.alpha=0.35"]
    pooled = {p: build_model("mobilenet", (32, 32), 2, [*options, f"model.pooling={p}"]) for p in ("max", "avg")}
    task = pooled["avg"]
    maps = task.backbone(task.preprocessor(x), training=False)
    np.testing.assert_allclose(task.features(x), np.mean(maps, axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert type(pooled["max"].features.layers[-1]).__name__ == "GlobalMaxPooling2D"
    with pytest.raises(CatdogError, match="model.pooling"):
        build_model("mobilenet", (32, 32), 2, [*options, "model.pooling=min"])


@pytest.mark.backends
@pytest.mark.parametrize("name", ["cnn", "mobilenet"])
def test_xla_cpu_layers_change_no_weight_and_no_random_draw(name):
    options = NO_WEIGHTS.get(name, [])
    built = {}
    for fast in (True, False):
        keras.utils.set_random_seed(0)
        built[fast] = build_model(name, (32, 32), 2, [*options, f"model.xla_cpu_layers={fast}"])
    for a, b in zip(built[True].weights, built[False].weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    catdogs = {type(layer).__name__ for layer in leaf_layers(built[True]) if type(layer).__module__.startswith("catdog")}
    assert catdogs == ({"MaxPooling2D" if name == "cnn" else "DepthwiseConv2D"} if keras.backend.backend() == "jax"
                       else set())
