"""The task model: a checkpoint is self-describing, and custom training logic runs on every path."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from catdog.errors import CatdogError
from catdog.models import build_model
from catdog.tasks import ImageClassifier
from catdog.tasks.focal import FocalLossClassifier
from catdog.train import train

from helpers import make_image_folders, run_cli, run_python

TESTS = Path(__file__).parent


@pytest.mark.slow
def test_a_checkpoint_loads_in_plain_keras_after_import_catdog_and_predicts_as_the_live_task(tmp_path):
    from catdog import ImageFolderDataModule, Trainer
    from catdog.callbacks import ModelCheckpoint
    from catdog.training.feature_cache import FeatureCache

    data = ImageFolderDataModule(root=str(make_image_folders(tmp_path / "data", train=4, val=4)),
                                 image_size=(32, 32), batch_size=4)
    data.setup()
    trainer = Trainer(max_epochs=1, callbacks=[ModelCheckpoint(tmp_path / "checkpoints")],
                      feature_cache=FeatureCache(runtime="keras"), verbose=0)
    task = build_model("mobilenet", (32, 32), 2, ["model.backbone.weights=null", "model.backbone.alpha=0.35"])
    task = type(task).from_config({**task.get_config(), "class_names": data.class_names})  # the data's names
    trainer.fit(task, data)  # the head trains on cached features; the checkpoint is the whole task
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    live = task.predict(images, verbose=0)
    script = f"""
import json, numpy as np
import catdog
import keras
task = keras.saving.load_model(r"{tmp_path}/checkpoints/best.keras")
kinds = sorted({{type(l).__module__.split(".")[0] for l in catdog.models.layers.leaf_layers(task)}})
print(json.dumps({{"type": type(task).__name__, "classes": task.class_names, "kinds": kinds,
                  "logits": np.asarray(task.predict(np.load(r"{tmp_path}/images.npy"), verbose=0)).tolist()}}))
"""
    for backend, kinds in (("tensorflow", ["keras"]), ("jax", ["catdog", "keras"])):  # JAX's CPU: catdog's layers
        found = json.loads(run_python(script, backend=backend).splitlines()[-1])
        assert found["type"] == "ImageClassifier" and found["classes"] == ["cats", "dogs"]
        assert found["kinds"] == kinds
        np.testing.assert_allclose(found["logits"], live, rtol=1e-4, atol=1e-4, err_msg=backend)


def test_a_custom_head_is_in_the_checkpoint_and_loads_with_plain_keras_after_import_catdog(tmp_path):
    from catdog.models.cnn import conv_blocks

    head = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                             keras.layers.Dense(2, name="logits")], name="my_head")
    task = ImageClassifier(conv_blocks, ["cats", "dogs"], image_size=(32, 32), head=head)
    task.save(tmp_path / "custom.keras")
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    script = f"""
import json, numpy as np
import catdog
import keras
task = keras.saving.load_model(r"{tmp_path}/custom.keras")
print(json.dumps({{"head": [layer.name for layer in task.head.layers], "classes": task.class_names,
                  "logits": np.asarray(task.predict(np.load(r"{tmp_path}/images.npy"), verbose=0)).tolist()}}))
"""
    for backend in ("tensorflow", "jax"):
        found = json.loads(run_python(script, backend=backend).splitlines()[-1])
        assert found["head"] == ["hidden", "logits"] and found["classes"] == ["cats", "dogs"], backend
        np.testing.assert_allclose(found["logits"], task.predict(images, verbose=0), rtol=1e-4, atol=1e-4,
                                   err_msg=backend)


@pytest.mark.backends
def test_the_task_saves_whole_with_its_classes_and_trainable_layers(tmp_path):
    task = build_model("mobilenet", (32, 32), 3, ["model.backbone.weights=null", "model.backbone.alpha=0.35"])
    assert task.backbone_frozen and not task.features.trainable_weights
    assert task.set_trainable_backbone_layers(5) > 0 and not task.backbone_frozen
    task.save(tmp_path / "t.keras")
    loaded = keras.saving.load_model(tmp_path / "t.keras")
    assert loaded.class_names == ["0", "1", "2"] and len(loaded.trainable_weights) == len(task.trainable_weights)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict_on_batch(x), task.predict_on_batch(x), atol=1e-5)


def test_compile_has_task_defaults_and_bad_options_name_their_key():
    task = ImageClassifier(lambda shape: keras.Sequential([keras.Input(shape), keras.layers.Conv2D(2, 3)]),
                           ["a", "b"], image_size=[8, 8])
    task.compile()
    assert type(task.optimizer).__name__ == "Adam" and task.compiled
    from catdog.errors import CatdogError
    for options, key in (({"pooling": "min"}, "model.pooling"), ({"dropout": 1.5}, "model.dropout"),
                         ({"hidden_units": 0}, "model.hidden_units")):
        with pytest.raises(CatdogError, match=key):
            ImageClassifier(None, ["a", "b"], image_size=[4], **options)
    with pytest.raises(CatdogError, match="two distinct"):
        ImageClassifier(None, ["a", "a"], image_size=[4])


def test_focal_loss_is_the_formula_and_gamma_zero_is_cross_entropy():
    logits = np.array([[2.0, -1.0], [0.3, 0.1]], "float32")
    labels = np.array([0, 1])
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p_true = p[np.arange(2), labels]
    for gamma in (0.0, 2.0):
        task = FocalLossClassifier(None, ["a", "b"], image_size=[2], pooling=None, gamma=gamma)
        loss = float(task.compute_loss(y=labels, y_pred=logits))
        assert loss == pytest.approx(np.mean(-((1 - p_true) ** gamma) * np.log(p_true)), rel=1e-5)
    assert FocalLossClassifier.from_config(task.get_config()).gamma == 2.0


def loss_column(run):
    import csv

    with open(run / "history.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("cached", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_a_custom_compute_loss_runs_with_and_without_the_feature_cache(compose, tmp_path, cached):
    data = make_image_folders(tmp_path / "data", train=4, val=10)  # 5 validation batches: one is the test
    cfg = compose([f"dataset.root={data}", "experiment=model4", "model.backbone.weights=null",
                   "model.backbone.alpha=0.35", "dataset.image_size=[32,32]", "dataset.batch_size=4",
                   "trainer.max_epochs=1", "trainer.verbose=0", "augment=none",
                   f"trainer.feature_cache.enabled={cached}", "trainer.feature_cache.runtime=keras",
                   "model._target_=helpers.OffsetLossClassifier", "+model.offset=100.0"])
    metrics = train(cfg)
    assert loss_column(Path(cfg.paths.output_dir))[0] > 100  # cross-entropy alone is about log(2)
    assert metrics["stages"] == ["fit"] and metrics["test_loss"] > 100


@pytest.mark.slow
def test_a_custom_compute_loss_runs_on_jax_with_and_without_the_feature_cache(tmp_path):
    data = make_image_folders(tmp_path / "data", train=4, val=8)
    for cached in (True, False):
        run = tmp_path / f"run-{cached}"
        result = run_cli("catdog.train", "experiment=model4", "backend=jax", "model.backbone.weights=null",
                         "model.backbone.alpha=0.35", f"dataset.root={data}", "dataset.image_size=[32,32]",
                         "dataset.batch_size=4", "trainer.max_epochs=1", "trainer.verbose=0", "augment=none",
                         f"trainer.feature_cache.enabled={cached}", "trainer.feature_cache.runtime=keras",
                         "model._target_=helpers.OffsetLossClassifier", "+model.offset=100.0",
                         f"hydra.run.dir={run}", f"paths.cache_dir={tmp_path / 'cache'}",
                         env={"PYTHONPATH": str(TESTS)})
        assert result.returncode == 0, result.stderr[-2000:]
        assert loss_column(run)[0] > 100, cached


def test_label_smoothing_on_integer_labels_is_keras_one_hot_smoothing():
    import numpy as np

    from catdog.tasks.losses import SparseCategoricalCrossentropy

    labels, logits = np.array([0, 2, 1]), np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0]], "float32")
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(SparseCategoricalCrossentropy(from_logits=True)(labels, logits)) == pytest.approx(float(plain))
    smoothed = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(np.eye(3)[labels], logits)
    mine = SparseCategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    assert float(mine(labels, logits)) == pytest.approx(float(smoothed)) and float(smoothed) > float(plain)
    assert float(mine(labels[:, None], logits)) == pytest.approx(float(smoothed))  # (batch, 1) labels too
    again = keras.losses.deserialize(keras.losses.serialize(mine))
    assert again.label_smoothing == 0.1
    with pytest.raises(CatdogError, match="label_smoothing=1.0"):
        SparseCategoricalCrossentropy(label_smoothing=1.0)
