"""model=transfer: each listed keras.applications backbone builds from config, trains a fast_dev_run (head on cached
features, then fine-tuning), saves and reloads; its preprocessing is Keras' own; imagenet is Keras' own file, here
from a local server."""

import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from catdog.utils.config import build
from catdog.errors import CatdogError
from catdog.models import build_model, transfer
from catdog.models.layers import leaf_layers

from helpers import make_image_folders
from catdog.train import train

from test_download import CountingHandler, closed_port_url, server  # noqa: F401 (server: a fixture)

LISTED = ["MobileNetV2", "MobileNetV3Small", "MobileNetV3Large", "EfficientNetV2B0", "ResNet50V2", "ConvNeXtTiny"]
RUN = ["dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.verbose=0", "backend=tensorflow",
       "model=transfer", "model.weights=null", "trainer.fast_dev_run=1"]
STAGES = ("trainer.stages=[{name:head,epochs:1},"
          "{name:finetune,epochs:1,unfreeze_backbone_layers:4,learning_rate:1.0e-5}]")
IMAGES = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")


def fit(compose, data, *overrides):
    """The task and trainer of a fast_dev_run of `model=transfer`, fit in this process as catdog.train does."""
    cfg = compose([f"dataset.root={data}", *RUN, *overrides])
    trainer = build(cfg.trainer, "trainer")
    datamodule = build(cfg.dataset, "dataset")
    datamodule.setup()
    task = build(cfg.model, "model", class_names=datamodule.class_names, image_size=datamodule.image_size)
    trainer.fit(task, datamodule)
    trainer.finalize()
    return task, trainer


@pytest.mark.parametrize("name", [LISTED[0], *(pytest.param(name, marks=pytest.mark.slow) for name in LISTED[1:])])
def test_each_listed_backbone_trains_a_fast_dev_run_then_saves_and_reloads(compose, tiny_data, tmp_path, name):
    task, trainer = fit(compose, tiny_data, f"model.backbone={name}", "trainer.feature_cache.runtime=keras")
    assert task.name == name and len(trainer.history) == 1
    assert trainer.feature_cache.resolved_runtime == "keras"  # the frozen backbone's features were cached
    assert task.set_trainable_backbone_layers(4) > 0 and not task.backbone_frozen  # as a fine-tuning stage does
    path = tmp_path / f"{name}.keras"
    task.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(task) and loaded.class_names == ["cats", "dogs"]
    assert len(loaded.trainable_weights) == len(task.trainable_weights)
    np.testing.assert_allclose(loaded(IMAGES), task(IMAGES), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_the_train_entry_caches_features_through_onnx_runtime_then_fine_tunes(compose, tiny_data, tmp_path):
    cfg = compose([f"dataset.root={tiny_data}", *RUN, "model.backbone=MobileNetV3Small", STAGES])
    train(cfg)
    assert list((tmp_path / "cache").rglob("features-*.onnx"))  # trainer.feature_cache.runtime: auto
    run = Path(cfg.paths.output_dir)
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["model"], metrics["stages"], metrics["epochs"]) == ("MobileNetV3Small", ["head", "finetune"], 2)
    loaded = keras.saving.load_model(run / "checkpoints" / "last.keras")
    assert not loaded.backbone_frozen and loaded(IMAGES).shape == (4, 2)


def test_the_default_backbone_is_the_tutorials_model4():
    task = build_model("transfer", (160, 160), 2, ["model.weights=null"])
    trainable = sum(int(np.prod(w.shape)) for w in task.trainable_weights)
    assert (task.backbone.name, task.count_params(), trainable) == ("mobilenetv2_1.00_160", 2_340_098, 82_114)
    assert type(task.features.layers[-1]).__name__ == "GlobalMaxPooling2D" and task.head.layers[0].rate == 0.2


KERAS_MODULES = {"MobileNet": "mobilenet", "MobileNetV2": "mobilenet_v2", "MobileNetV3Small": "mobilenet_v3",
                 "MobileNetV3Large": "mobilenet_v3", "ResNet50V2": "resnet_v2", "DenseNet121": "densenet",
                 "Xception": "xception", "InceptionV3": "inception_v3", "InceptionResNetV2": "inception_resnet_v2",
                 "EfficientNetV2S": "efficientnet_v2"}


@pytest.mark.parametrize("name,module", KERAS_MODULES.items())
def test_preprocessing_is_the_familys_preprocess_input(name, module):
    layer = transfer.preprocessing(name)
    ours = IMAGES if layer is None else keras.ops.convert_to_numpy(layer(IMAGES))
    expected = getattr(keras.applications, module).preprocess_input(IMAGES.copy())
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_a_weights_file_of_keras_own_application_loads_with_its_normalization_in_front(tmp_path):
    """ConvNeXt's (and EfficientNetV2B0-B3's) Normalization would be an input of the feature cache's ONNX graph."""
    own = keras.applications.ConvNeXtTiny(include_top=False, weights=None, input_shape=(32, 32, 3))
    own.save_weights(tmp_path / "convnext_tiny.weights.h5")
    ours = build_model("transfer", (32, 32), 2, ["model.backbone=ConvNeXtTiny",
                                                 f"model.weights={tmp_path / 'convnext_tiny.weights.h5'}"])
    assert not [layer for layer in leaf_layers(ours) if isinstance(layer, keras.layers.Normalization)]
    np.testing.assert_allclose(ours.backbone(ours.preprocessor(IMAGES)), own(IMAGES), rtol=1e-4, atol=1e-4)


def test_imagenet_weights_are_keras_own_file_downloaded_once(server, tmp_path):  # noqa: F811
    www, base = server
    own = keras.applications.EfficientNetV2B0(include_top=False, weights=None, input_shape=(32, 32, 3))
    own.save(www / "efficientnetv2-b0_notop.h5")  # Keras' file name, in its (legacy HDF5) format
    options = ["model.backbone=EfficientNetV2B0", "model.weights=imagenet", f"model.weights_url={base}/",
               f"model.download_dir={tmp_path / 'keras'}"]
    for _ in range(2):
        task = build_model("transfer", (32, 32), 2, options)
    assert CountingHandler.requests == 1 and (tmp_path / "keras" / "models" / "efficientnetv2-b0_notop.h5").is_file()
    np.testing.assert_allclose(task.backbone(task.preprocessor(IMAGES)), own(IMAGES), rtol=1e-4, atol=1e-4)


def test_weights_that_cannot_be_had_name_model_weights(tmp_path):
    offline = ["model.backbone=MobileNetV3Small", "model.weights=imagenet", f"model.weights_url={closed_port_url()}",
               f"model.download_dir={tmp_path}"]
    with pytest.raises(CatdogError, match=f"put it in {re.escape(str(tmp_path))}/models/ .*or set model.weights to a "
                                          "local copy of weights_mobilenet_v3_small"):
        build_model("transfer", (32, 32), 2, offline)
    with pytest.raises(CatdogError, match="model.weights=.*absent.h5: no such file"):
        build_model("transfer", (32, 32), 2, ["model.backbone=ResNet50V2", f"model.weights={tmp_path / 'absent.h5'}"])


@pytest.mark.parametrize("name,message", [("ResNet50", "caffe"), ("EfficientNetB0", "EfficientNetV2B0-B3"),
                                          ("NoSuchNet", "not a keras.applications class")])
def test_an_unsupported_backbone_is_refused_with_the_supported_names(name, message):
    with pytest.raises(CatdogError, match=f"model.backbone={name}: .*{message}.*Supported: MobileNet, MobileNetV2"):
        build_model("transfer", (32, 32), 2, [f"model.backbone={name}"])


def test_the_finetune_preset_trains_any_backbone_in_its_two_stages(compose, tmp_path):
    from catdog.train import train

    data = make_image_folders(tmp_path / "data", train=4, val=4)
    cfg = compose(["experiment=finetune", "model.backbone=EfficientNetV2B0", "model.weights=null",
                   f"dataset.root={data}", "dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.verbose=0",
                   "trainer.feature_cache.runtime=keras", "trainer.fast_dev_run=1"])
    metrics = train(cfg)  # one epoch a stage: the head on cached features, then the top fifth on images
    assert metrics["stages"] == ["head", "finetune"] and metrics["epochs"] == 2
    assert metrics["params_trainable"] > 1_000_000  # the head has 82,114: the backbone's top trains too


def test_a_stage_can_unfreeze_a_fraction_and_follow_a_cosine_with_warm_up():
    import pytest

    from catdog.errors import CatdogError
    from catdog.training.stages import Stage, as_stages

    stage = as_stages([{"name": "s", "epochs": 4, "unfreeze_backbone_fraction": 0.25, "schedule": "cosine",
                        "warmup_epochs": 1}], 1)[0]
    rate = stage.learning_rate_at(1e-3, steps_per_epoch=10)  # 10 warm-up steps, then 30 decaying ones
    assert [round(float(rate(step)), 6) for step in (0, 10, 40)] == [0.0, 0.001, 0.0]
    assert 0 < float(rate(25)) < 1e-3 and Stage("c", 2).learning_rate_at(1e-3, 10) == 1e-3
    with pytest.raises(CatdogError, match="unfreeze_backbone_fraction"):
        Stage("both", 2, unfreeze_backbone_layers=3, unfreeze_backbone_fraction=0.5)
    with pytest.raises(CatdogError, match="warmup_epochs"):
        Stage("warm", 2, schedule="cosine", warmup_epochs=2)


def test_the_offline_table_names_keras_own_file_and_url_for_every_backbone():
    from catdog.models.transfer import BACKBONES, imagenet_url

    text = (Path(__file__).parents[1] / "docs" / "backbones.md").read_text()
    for name in BACKBONES:
        assert f"| `{name}` | {imagenet_url(name, (160, 160, 3))} |" in text, name
