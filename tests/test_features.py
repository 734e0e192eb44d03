import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from catdog.data.loaders import array_loader
from catdog.errors import CatdogError
from catdog.training.feature_cache import FeatureDataModule, onnx_predict
from catdog.tasks.loading import load_task
from catdog.training import Trainer
from catdog.models import build_model
from catdog.train import train

from helpers import make_image_folders, run_cli


NO_WEIGHTS = ["model.backbone.weights=null", "model.backbone.alpha=0.35"]


def small_features(*overrides):
    return build_model("mobilenet", (32, 32), 2, [*NO_WEIGHTS, *overrides]).features


def images_of(n, loader="numpy", augment=None):
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    return SimpleNamespace(arrays={"train": (rng.integers(0, 256, (n, 32, 32, 3), "uint8"), np.zeros(n, "int32"))},
                           loader=loader, batch_size=4, seed=0, augment=augment)


def test_only_a_frozen_backbone_is_cached():
    assert not build_model("cnn", (32, 32), 2).backbone_frozen
    task = build_model("mobilenet", (32, 32), 2, NO_WEIGHTS)
    assert task.backbone_frozen and task.head.trainable_weights
    assert type(task.feature_task()) is type(task) and task.feature_task().head is task.head


def losses(run):
    with open(run / "history.csv", newline="") as f:
        return [(float(r["loss"]), float(r["val_loss"])) for r in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["keras", "onnxruntime"])
def test_feature_cache_matches_the_plain_path_without_augmentation(compose, tmp_path, runtime):
    data = make_image_folders(tmp_path / "data", train=16, val=10)
    runs = {}
    for enabled in (False, True):
        cfg = compose([f"dataset.root={data}", "experiment=model4", "backend=tensorflow", "augment=none",
                       *NO_WEIGHTS, "dataset.image_size=[32,32]", "dataset.batch_size=4",
                       "trainer.max_epochs=2", "trainer.verbose=0", f"trainer.feature_cache.enabled={enabled}",
                       f"trainer.feature_cache.runtime={runtime}", f"paths.output_dir={tmp_path / str(enabled)}"])
        train(cfg)
        runs[enabled] = Path(cfg.paths.output_dir)
        provenance = json.loads((runs[enabled] / "provenance.json").read_text())
        assert provenance["feature_runtime"] == (runtime if enabled else None)
    np.testing.assert_allclose(losses(runs[True]), losses(runs[False]), rtol=1e-3)
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3)).astype("uint8")
    plain, cached = (Trainer().predict(load_task(runs[k] / "checkpoints" / "best.keras")[0], images)
                     for k in (False, True))
    np.testing.assert_allclose(cached, plain, atol=1e-4)


def test_onnxruntime_computes_the_features_keras_does_and_its_export_is_kept_reused_and_redone(tmp_path, monkeypatch,
                                                                                             caplog):
    features, images = small_features(), images_of(10)
    computed = {}
    for runtime in ("keras", "onnxruntime"):
        data = FeatureDataModule(images, features, batch_size=4, runtime=runtime, cache_dir=tmp_path / "cache")
        computed[runtime] = data._features("train", 1, None)[0]
    assert computed["keras"].shape == (10, 1280)
    np.testing.assert_allclose(computed["onnxruntime"], computed["keras"], atol=1e-4 * np.abs(computed["keras"]).max())
    assert FeatureDataModule(images, features).runtime == "auto"  # on TensorFlow: ONNX Runtime, int8 or not

    (onnx_file,) = (tmp_path / "cache").glob("features-*.onnx")  # the export, kept
    loader = array_loader(images.arrays["train"][0].astype("float32"), np.zeros(10, "int32"), 4)
    exports = []
    original = keras.Model.export
    monkeypatch.setattr(keras.Model, "export", lambda *a, **k: exports.append(1) or original(*a, **k))
    first = np.concatenate(list(onnx_predict(features, onnx_file)(loader)))
    np.testing.assert_allclose(first, computed["onnxruntime"], rtol=1e-6)
    assert not exports  # read back from the file

    onnx_file.write_bytes(b"cut short")
    np.testing.assert_array_equal(np.concatenate(list(onnx_predict(features, onnx_file)(loader))), first)
    assert exports == [1] and "unreadable ONNX file" in caplog.text
    assert onnx_file.stat().st_size > 1000  # the file is whole again


def test_int8_features_are_used_only_after_their_check_passed_here_and_the_check_is_kept(tmp_path, monkeypatch):
    import catdog.training.int8 as int8

    features, images = small_features(), images_of(40)
    images.arrays.update(val=images.arrays["train"], test=(images.arrays["train"][0][:0], np.zeros(0, "int32")))

    def data(cache, runtime="auto"):
        return FeatureDataModule(images, features, batch_size=4, runtime=runtime, cache_dir=tmp_path / cache)

    real = data("real")  # the check as it runs on this machine, whatever it decides
    runtime, reason = real._choose_runtime()
    (record,) = (tmp_path / "real").glob("features-int8-*.json")
    checked = json.loads(record.read_text())
    assert checked["images"] == 24 and -1 <= checked["cosine_min"] <= checked["cosine_mean"] <= 1
    assert runtime == ("onnxruntime_int8" if checked["passed"] else "onnxruntime") and reason == checked["reason"]

    original_check = int8.check
    for passed in (True, False):
        monkeypatch.setattr(int8, "check", lambda *a, passed=passed: {**original_check(*a), "passed": passed,
                                                                      "reason": f"forced {passed}"})
        chosen = data(f"forced-{passed}")
        assert chosen._choose_runtime() == ("onnxruntime_int8" if passed else "onnxruntime", f"forced {passed}")
    monkeypatch.setattr(int8, "check", original_check)
    with pytest.raises(CatdogError, match="onnxruntime_int8: forced False"):
        data("forced-False", runtime="onnxruntime_int8")._features("train", 1, None)

    monkeypatch.setattr(int8, "quantize", lambda *a, **k: pytest.fail("quantized again"))  # kept: model and check
    kept = data("forced-True")
    assert kept._choose_runtime() == ("onnxruntime_int8", "forced True")
    kept.runtime = "onnxruntime_int8"
    quantized = kept._features("train", 1, None)[0]
    full = data("forced-True", runtime="onnxruntime")._features("train", 1, None)[0]
    assert quantized.shape == full.shape and not np.array_equal(quantized, full)
    (model,) = (tmp_path / "forced-True").glob("features-int8-*.onnx")
    model.write_bytes(b"cut short")  # a damaged int8 model is made again, its check kept
    monkeypatch.undo()
    monkeypatch.setattr(int8, "check", lambda *a: pytest.fail("checked again"))
    again = data("forced-True")
    assert again._choose_runtime() == ("onnxruntime_int8", "forced True") and model.stat().st_size > 1000
    kept.setup()  # every split cached now, in int8: auto takes them without a check
    assert data("forced-True")._choose_runtime() == ("onnxruntime_int8", "its features are in the cache")


def test_a_model_onnx_runtime_cannot_run_falls_back_to_keras(monkeypatch, caplog, tmp_path):
    import catdog.training.feature_cache

    def unconvertible(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 10 : INVALID_GRAPH : Erfc is not a registered function")

    monkeypatch.setattr(catdog.training.feature_cache, "onnx_predict", unconvertible)
    features, images = small_features(), images_of(6)
    data = FeatureDataModule(images, features, batch_size=4, runtime="onnxruntime")
    computed = data._features("train", 1, None)[0]
    keras_data = FeatureDataModule(images, features, batch_size=4, runtime="keras")
    np.testing.assert_allclose(computed, keras_data._features("train", 1, None)[0], rtol=1e-6)
    assert data.runtime == "keras" and "computing the features with Keras" in caplog.text
    more = images_of(20)
    more.arrays.update(val=more.arrays["train"], test=more.arrays["train"])
    chosen = FeatureDataModule(more, features, batch_size=4, runtime="auto", cache_dir=tmp_path / "cache")
    runtime, reason = chosen._choose_runtime()  # auto: no int8 either, and Keras at once
    assert runtime == "keras" and "ONNX Runtime cannot run this features model (RuntimeError" in reason


@pytest.mark.slow
def test_augmented_views_are_cached_and_reused(compose, tmp_path, monkeypatch):
    data = make_image_folders(tmp_path / "data", train=8, val=10)
    overrides = [f"dataset.root={data}", "experiment=model4", "backend=tensorflow", *NO_WEIGHTS,
                 "dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.max_epochs=1", "trainer.verbose=0",
                 "trainer.feature_cache.views=3"]
    runs = iter(range(10))

    def run(*extra):  # each run in a directory of its own
        return train(compose([*overrides, *extra, f"paths.output_dir={tmp_path / 'runs' / str(next(runs))}"]))

    metrics = run()
    assert metrics["epochs"] == 1
    train_cache = list((tmp_path / "cache").glob("features-train-*.npy"))
    assert len(train_cache) == 1
    assert np.load(train_cache[0]).shape == (3 * 16, 1280)
    def exported():
        return [p for p in (tmp_path / "cache").glob("features-*.onnx") if not p.name.startswith("features-int8")]

    assert len(exported()) == 1  # TensorFlow: the ONNX Runtime pass, its float32 export kept once
    assert len(list((tmp_path / "cache").glob("features-int8-*.json"))) == 1  # auto's int8 check, kept

    calls = []
    original = FeatureDataModule._predict
    monkeypatch.setattr(FeatureDataModule, "_predict", lambda self, loader: calls.append(1) or original(self, loader))
    run()
    assert not calls  # the second run read every split from the cache

    exports = []
    original_export = keras.Model.export
    monkeypatch.setattr(keras.Model, "export", lambda *a, **k: exports.append(1) or original_export(*a, **k))
    run("augment.layers.flip_rotate.factor=0.1")  # other views, the same ONNX file
    assert calls and not exports and len(list((tmp_path / "cache").glob("features-train-*.npy"))) == 2

    run("model.pooling=avg")  # another features model: its own cache entries
    assert exports and len(list((tmp_path / "cache").glob("features-train-*.npy"))) == 3
    assert len(exported()) == 2 and len(list((tmp_path / "cache").glob("features-int8-*.json"))) == 2


@pytest.mark.slow
def test_onnxruntime_on_jax_computes_the_features_keras_does_without_tensorflow_in_the_run(tmp_path):
    data = make_image_folders(tmp_path / "data", train=4, val=10)
    features = {}
    for runtime in ("keras", "onnxruntime"):
        result = run_cli("catdog.train", "experiment=model4", "backend=jax", *NO_WEIGHTS, "augment=none",
                         f"dataset.root={data}", "dataset.image_size=[32,32]", "dataset.batch_size=4",
                         "trainer.max_epochs=1", "trainer.verbose=0", f"trainer.feature_cache.runtime={runtime}",
                         f"paths.cache_dir={tmp_path / runtime}", f"hydra.run.dir={tmp_path / ('run-' + runtime)}")
        assert result.returncode == 0, result.stderr[-2000:]
        metrics = json.loads((tmp_path / f"run-{runtime}" / "provenance.json").read_text())
        assert metrics["feature_runtime"] == runtime and not metrics["tensorflow_imported"]
        if runtime == "onnxruntime":  # the export's TensorFlow child
            assert metrics["peak_rss_children_mb"] > 100
        features[runtime] = np.load(next((tmp_path / runtime).glob("features-train-*.npy")))
    assert features["keras"].shape == (8, 1280)
    np.testing.assert_allclose(features["onnxruntime"], features["keras"], atol=1e-4 * np.abs(features["keras"]).max())


@pytest.mark.slow
def test_finetune_preset_trains_the_top_of_the_backbone_and_keeps_batchnorm(compose, tmp_path):
    assert list(compose(["experiment=model4_finetune"]).dataset.image_size) == [224, 224]  # the weights' own size
    data = make_image_folders(tmp_path / "data", train=16, val=10)
    cfg = compose([f"dataset.root={data}", "experiment=model4_finetune", *NO_WEIGHTS, "augment=none",
                   "dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.verbose=0",
                   "trainer.stages.0.epochs=1", "trainer.stages.1.epochs=2",
                   "trainer.stages.1.unfreeze_backbone_layers=5", "trainer.stages.1.learning_rate=1e-3",
                   "test_ckpt_path=last"])
    assert cfg.experiment_name == "model4_finetune" and cfg.model.name == "mobilenet"
    metrics = train(cfg)
    assert metrics["epochs"] == 3 and len(losses(Path(cfg.paths.output_dir))) == 3
    keras.utils.set_random_seed(cfg.seed)  # the run's initial weights, as train() drew them
    initial = build_model("mobilenet", (32, 32), 2, [*NO_WEIGHTS, "model.pooling=avg"])
    trained = load_task(Path(cfg.paths.output_dir) / "checkpoints" / "last.keras")[0]
    base, start = trained.backbone, initial.backbone
    assert not np.array_equal(base.get_layer("Conv_1").kernel.numpy(), start.get_layer("Conv_1").kernel.numpy())
    assert np.array_equal(base.get_layer("Conv1").kernel.numpy(), start.get_layer("Conv1").kernel.numpy())
    assert base.get_layer("Conv_1_bn").moving_variance.numpy().max() == 1.0  # BN statistics untouched
    assert not base.get_layer("Conv_1_bn").trainable and base.get_layer("Conv_1").trainable


def test_augmented_feature_views_are_keyed_by_whose_kernels_augment(monkeypatch):
    features = small_features()
    augment = keras.layers.Pipeline([keras.layers.RandomFlip(seed=0)])
    images = images_of(2, augment=augment)
    data = FeatureDataModule(images, features)
    keys = set()
    for loader in ("numpy", "tf_data"):
        for backend in ("tensorflow", "jax"):
            images.loader = loader
            monkeypatch.setattr(keras.backend, "backend", lambda name=backend: name)
            keys.add(data._key("train", 2, augment))
    assert len(keys) == 3  # NumPy batches on each backend, and tf.data (TensorFlow's kernels) on either


def test_augmented_feature_views_are_keyed_by_the_draws_not_just_the_config():
    features, images = small_features(), images_of(2)
    keys = []
    for global_seed in (0, 0, 1):  # seed=None: the layer's draws follow the global seed, its config does not
        keras.utils.set_random_seed(global_seed)
        augment = keras.layers.Pipeline([keras.layers.RandomFlip()])
        images.augment = augment
        keys.append(FeatureDataModule(images, features)._key("train", 2, augment))
    assert keys[0] == keys[1] != keys[2]


@pytest.mark.backends
def test_a_fast_dev_run_computes_only_the_features_it_uses(compose, tmp_path):
    data = make_image_folders(tmp_path / "data", train=8, val=10)
    cfg = compose([f"dataset.root={data}", "experiment=model4", *NO_WEIGHTS,
                   "dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.verbose=0",
                   "trainer.feature_cache.views=3", "trainer.feature_cache.runtime=keras", "trainer.fast_dev_run=1"])
    assert train(cfg)["epochs"] == 1
    cached = {p.name.split("-")[1]: np.load(p).shape[0] for p in (tmp_path / "cache").glob("features-*.npy")}
    assert cached == {"train": 3 * 4, "val": 4, "test": 4}  # one batch of 4 images per split, 3 views of train


@pytest.mark.backends
def test_epochs_drawn_from_a_pool_of_augmented_views_run_whole_without_a_warning(compose, tmp_path, recwarn):
    data = make_image_folders(tmp_path / "data", train=5, val=4)  # 10 images: 3 batches of 4 an epoch
    cfg = compose([f"dataset.root={data}", "experiment=model4", *NO_WEIGHTS, "dataset.image_size=[32,32]",
                   "dataset.batch_size=4", "trainer.verbose=0", "trainer.feature_cache.views=2",
                   "trainer.feature_cache.runtime=keras", "trainer.max_epochs=5", "test=false"])
    train(cfg)  # 5 epochs of 3 batches from a pool of 20 rows, 5 batches: not a whole number of epochs
    assert not [w for w in recwarn if "ran out of data" in str(w.message)]
    history = list(csv.DictReader(open(Path(cfg.paths.output_dir) / "history.csv")))
    assert len(history) == 5
