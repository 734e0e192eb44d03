import csv
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from catdog.callbacks import EpochTimer
from catdog.models import build_model
from catdog.train import train

from helpers import REAL_DATA, REAL_WEIGHTS, make_image_folders, run_cli, run_main

OUTPUTS = ("metrics.json", "provenance.json", "history.csv", "accuracy.png", "confusion.png", "mistakes.png",
           "checkpoints/best.keras", "checkpoints/last.keras")
METRIC_KEYS = {"experiment", "model", "augment", "epochs", "params_total", "params_trainable", "epoch_seconds",
               "best_val_accuracy", "final_val_accuracy", "test_accuracy", "baseline_accuracy", "label_counts",
               "class_names"}
PROVENANCE_KEYS = {"backend", "devices", "precision", "xla_flags", "versions", "cpu", "peak_rss_mb"}


def small_run(data, *extra):
    return [f"dataset.root={data}", "dataset.image_size=[64,64]", "dataset.batch_size=4",
            "trainer.verbose=0", *extra]


@pytest.mark.parametrize("experiment", ["model1", "model2", "model3", "model4"])
def test_fast_dev_run_of_every_experiment_writes_every_output_and_the_console_stays_quiet(tiny_data, tmp_path,
                                                                                         experiment):
    run = tmp_path / "run"
    overrides = small_run(tiny_data, f"experiment={experiment}", "trainer.fast_dev_run=2", f"hydra.run.dir={run}",
                          f"paths.cache_dir={tmp_path / 'cache'}")
    if experiment == "model4":  # the feature pass through ONNX Runtime: tf2onnx's conversion
        overrides += ["model.backbone.weights=null", "model.backbone.alpha=0.35"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_main("catdog.train", *overrides)
    assert result.returncode == 0, result.stdout[-2000:]
    output = result.stdout + result.stderr
    noise = [line for line in output.splitlines() if "tf2onnx" in line or "libtpu" in line]
    assert not noise and not [str(w.message) for w in caught if w.category is not DeprecationWarning], noise
    assert output.rstrip().endswith(f"Outputs in {run}")
    log = (run / "train.log").read_text()
    for text in (output, log):  # the run states what ran where, and its result before its outputs
        assert "Run: backend tensorflow (cpu: " in text and "data cats_and_dogs: 24 train, 16 val, 4 test images, 2 classes (cats, dogs)" in text
        result = text[text.index("Result:"):]
        assert "best_val_accuracy" in result and "test_checkpoint       best" in result
        assert result.index("best_val_accuracy") < result.index(f"Outputs in {run}")
    assert not (run / ".lock").exists() and (run / ".finished").is_file()
    for name in OUTPUTS:
        assert (run / name).is_file(), name
    on_disk = json.loads((run / "metrics.json").read_text())
    assert METRIC_KEYS <= set(on_disk)
    provenance = json.loads((run / "provenance.json").read_text())
    assert PROVENANCE_KEYS <= set(provenance) and not PROVENANCE_KEYS & set(on_disk)  # kept apart
    assert provenance["backend"] == "tensorflow" and on_disk["epochs"] == 1 and on_disk["test_checkpoint"] == "best"
    assert on_disk["label_counts"] == {"cats": 12, "dogs": 12} and on_disk["baseline_accuracy"] == 0.5
    assert len(on_disk["epoch_seconds"]) == 1 and len(on_disk["epoch_cores"]) == 1 and on_disk["epoch_cores"][0] > 0
    matrix = on_disk["val_confusion_matrix"]
    assert len(matrix) == 2 and sum(map(sum, matrix)) == 8  # 2 validation batches of 4


def test_epoch_timer_records_the_cores_an_epoch_kept_busy():
    timer, logs = EpochTimer(), {}
    timer.on_epoch_begin(0)
    time.sleep(0.3)
    timer.on_epoch_end(0, logs)
    idle = dict(logs)
    timer.on_epoch_begin(1)
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        pass
    timer.on_epoch_end(1, logs)
    assert idle["epoch_cores"] < 0.2 < logs["epoch_cores"]
    assert idle["epoch_seconds"] >= 0.3 and idle["train_seconds"] == idle["epoch_seconds"]


@pytest.mark.backends
def test_training_learns_the_toy_task(compose, tmp_path):
    data = make_image_folders(tmp_path / "toy", train=40, val=16)
    cfg = compose(small_run(data, "experiment=model3", "augment=none", "trainer.max_epochs=6",
                            "dataset.image_size=[32,32]"))
    metrics = train(cfg)
    assert metrics["best_val_accuracy"] >= 0.9
    assert metrics["epochs"] == 6 and len(metrics["epoch_seconds"]) == 6


@pytest.mark.parametrize("backend", [pytest.param("jax", marks=pytest.mark.slow), "tensorflow"])
def test_backend_is_chosen_per_process_and_recorded(tiny_data, tmp_path, backend):
    run = tmp_path / backend
    run_entry = run_cli if backend == "jax" else run_main  # a fresh process; this one runs TensorFlow
    result = run_entry("catdog.train", *small_run(tiny_data, "experiment=model2", "trainer.fast_dev_run=1"),
                       f"backend={backend}", f"hydra.run.dir={run}", f"paths.cache_dir={tmp_path / 'cache'}")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run / "provenance.json").read_text())
    assert metrics["backend"] == backend
    assert metrics["tensorflow_imported"] == (backend == "tensorflow")  # conf/backend/jax.yaml keeps it out
    assert ("--xla_cpu_experimental_ynn_fusion_type=" in metrics["xla_flags"]) == (backend == "jax")
    compiled = tmp_path / "cache" / "jax-compilation"
    assert (backend == "jax") == (metrics["jax_compilation_cache_dir"] == str(compiled)) == any(compiled.glob("*"))


@pytest.mark.parametrize("override,message", [
    ("dataset.root=/no/such/dir", "dataset.root=/no/such/dir is not a folder"),
    ("trainer.max_epochs=-3", "trainer.max_epochs=-3: must be a positive integer"),
    ("+dataset.no_such_key=1", "unexpected keyword argument 'no_such_key'"),
    ("+trainer.some_key=1", "unexpected keyword argument 'some_key'"),
    ("dataset.batch_size=0", "dataset.batch_size=0: must be a positive integer"),
    ("model.pooling=min", "model.pooling='min'"),
    ("trainer.precision=bf16", "trainer.precision='bf16'"),
    ("trainer.feature_cache.runtime=tvm", "trainer.feature_cache.runtime='tvm'"),
    ("backend.import_tensorflow=false", "backend.import_tensorflow=false needs backend=jax"),
    ("model.optimizer.learning_rate=-1.0", "model.optimizer.learning_rate=-1.0: must be a positive number"),
    ("model.optimizer.learning_rate=-1", "model.optimizer.learning_rate=-1: must be a positive number"),
    ("seed=null", "seed=None: must be a non-negative integer"),
    ("trainer.devices=2", "trainer.devices=2 needs backend=jax"),  # this process runs TensorFlow
    ("trainer.num_processes=2", "trainer.num_processes=2 needs trainer.coordinator=HOST:PORT"),
    ("experiment=model1 dataset.image_size=[8,8]", "cannot be built for images of 8x8 (dataset.image_size)"),
    ("experiment=model1 trainer.fast_dev_run=1 callbacks.model_checkpoint.monitor=val_acc",
     "monitor='val_acc' is not among"),
])
def test_bad_values_are_one_clear_message_naming_the_key(compose, tiny_data, override, message):
    from catdog.errors import CatdogError

    with pytest.raises(CatdogError) as error:
        train(compose([f"dataset.root={tiny_data}", *override.split()]))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("override,message", [
    ("model=no_such_model", "Could not find 'model/no_such_model'"),
    ("trainer.typo_key=1", "Could not override 'trainer.typo_key'"),
    pytest.param("backend=jax dataset.loader=tf_data dataset.root=/no/such/dir", "backend.import_tensorflow=true",
                 marks=pytest.mark.slow),
])
def test_bad_input_on_the_command_line_is_one_clear_message(tmp_path, override, message):
    run = run_cli if "backend=jax" in override else run_main  # this process runs TensorFlow
    result = run("catdog.train", *override.split(), f"hydra.run.dir={tmp_path}")
    output = result.stdout + result.stderr
    assert result.returncode == 1 and message in output, output[-2000:]
    assert "Traceback" not in output


@pytest.mark.backends
def test_evaluate_is_trainer_test_on_the_checkpoint(compose, tmp_path):
    data = make_image_folders(tmp_path / "data", train=8, val=4)
    make_image_folders(tmp_path / "test_split", train=0, val=7, seed=1)
    (tmp_path / "test_split" / "validation").rename(data / "test")  # data/{train,validation,test}/<class>/
    cfg = compose(small_run(data, "experiment=model1", "trainer.max_epochs=1"))
    tested = train(cfg)  # Trainer.test on the best checkpoint, on data/test
    out = tmp_path / "eval"
    result = run_main("catdog.evaluate", f"ckpt_path={Path(cfg.paths.output_dir) / 'checkpoints' / 'best.keras'}",
                      f"data_dir={data / 'test'}", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert tested["test_checkpoint"] == "best" and evaluation["images"] == 14
    assert evaluation["accuracy"] == pytest.approx(tested["test_accuracy"], abs=1e-6)


@pytest.mark.backends
def test_evaluate_reports_overall_and_per_class_accuracy(compose, tiny_data, tmp_path):
    cfg = compose(small_run(tiny_data, "experiment=model1", "trainer.fast_dev_run=1"))
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "best.keras"
    out = tmp_path / "eval"
    result = run_main("catdog.evaluate", f"ckpt_path={ckpt}", f"data_dir={tiny_data / 'validation'}",
                      f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Outputs in {out}" in result.stdout
    report = json.loads((out / "evaluation.json").read_text())
    assert report["images"] == 20 and set(report["per_class"]) == {"cats", "dogs"}
    per_class = [v["accuracy"] for v in report["per_class"].values()]
    assert report["accuracy"] == pytest.approx(sum(per_class) / 2)


def test_evaluate_refuses_folders_that_are_not_the_models_classes(compose, tiny_data, tmp_path):
    from catdog.errors import CatdogError
    from catdog.evaluate import evaluate

    cfg = compose(small_run(tiny_data, "experiment=model1", "trainer.fast_dev_run=1"))
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "best.keras"  # it names its classes: cats, dogs
    three = make_image_folders(tmp_path / "three", classes=("ants", "bees", "wasps"), train=1, val=2)
    cfg = compose([f"ckpt_path={ckpt}", f"data_dir={three / 'validation'}"], config_name="evaluate")
    with pytest.raises(CatdogError, match=r"class folders \['ants', 'bees', 'wasps'\] that are not among"):
        evaluate(cfg)


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_DATA.is_dir() and REAL_WEIGHTS.is_file()), reason="photos or weights absent: set CATDOG_DATA and CATDOG_WEIGHTS (or provide ../shared)")
def test_mobilenet_on_a_few_hundred_real_photos(compose, tmp_path):
    subset = tmp_path / "real"
    for split, n in (("train", 150), ("validation", 100)):
        for name in ("cats", "dogs"):
            (subset / split / name).mkdir(parents=True)
            for src in sorted((REAL_DATA / split / name).iterdir())[:n]:
                (subset / split / name / src.name).symlink_to(src)
    cfg = compose([f"dataset.root={subset}", f"model.backbone.weights={REAL_WEIGHTS}", "experiment=model4",
                   "backend=tensorflow", "augment=none", "dataset.batch_size=16", "trainer.max_epochs=2",
                   "trainer.verbose=0"])
    metrics = train(cfg)
    assert metrics["best_val_accuracy"] >= 0.9, metrics


def test_exported_saved_model_predicts_like_the_live_model(compose, tiny_data, tmp_path):
    import numpy as np
    import tensorflow as tf

    from catdog.tasks.loading import load_task
    from catdog.training import Trainer

    cfg = compose(small_run(tiny_data, "experiment=model3", "trainer.fast_dev_run=1"))
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "best.keras"
    out = tmp_path / "export"
    result = run_main("catdog.export", f"ckpt_path={ckpt}", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    live, _ = load_task(ckpt)
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3)).astype("float32")
    artifact = tf.saved_model.load(str(out / "cnn_scaled_tf_saved_model"))
    served = artifact.serve(tf.constant(images))
    np.testing.assert_allclose(np.asarray(served), live.predict(images, verbose=0), atol=1e-4)
    assert json.loads((out / "classes.json").read_text()) == ["cats", "dogs"]  # beside the SavedModel
    assert Trainer().predict(load_task(out / "model.keras")[0], images).shape == (5, 2)


@pytest.mark.backends
def test_predict_labels_known_images(compose, tmp_path):
    data = make_image_folders(tmp_path / "toy", train=40, val=10)
    cfg = compose(small_run(data, "experiment=model3", "augment=none", "trainer.max_epochs=6",
                            "dataset.image_size=[32,32]"))
    assert train(cfg)["best_val_accuracy"] >= 0.9
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "best.keras"
    out = tmp_path / "predict"
    result = run_main("catdog.predict", f"ckpt_path={ckpt}", f"images={data / 'validation'}", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((out / "predictions.json").read_text())["predictions"]
    assert len(rows) == 20 and (out / "predictions.csv").is_file()
    correct = [r["label"] == Path(r["path"]).parent.name for r in rows]
    assert sum(correct) >= 18 and all(0.5 <= r["probability"] <= 1 for r in rows)


def test_predict_takes_files_folders_globs_and_lists_and_names_what_matches_nothing(tiny_data, tmp_path):
    from catdog.tasks import ImageClassifier
    from catdog.models.cnn import conv_blocks

    ImageClassifier(conv_blocks, ["cats", "dogs"], image_size=(32, 32)).save(tmp_path / "m.keras")
    cats, dogs = tiny_data / "validation" / "cats", tiny_data / "validation" / "dogs"
    out = tmp_path / "p"
    result = run_main("catdog.predict", f"ckpt_path={tmp_path / 'm.keras'}",
                      f"images=[{cats / 'cats.0.jpg'},{dogs}/*.jpg,{cats}]", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    paths = [r["path"] for r in json.loads((out / "predictions.json").read_text())["predictions"]]
    assert len(paths) == 20 and len(set(paths)) == 20  # cats.0.jpg once, though named twice
    result = run_main("catdog.predict", f"ckpt_path={tmp_path / 'm.keras'}",
                      f"images=[{cats / 'cats.0.jpg'},{tmp_path}/nothing/*.jpg,{tmp_path / 'gone.jpg'}]",
                      f"hydra.run.dir={tmp_path / 'q'}")
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "gone.jpg are no file, folder or matching pattern" in output, output[-2000:]
    assert "nothing/*.jpg" in output and "Traceback" not in output


@pytest.mark.slow
def test_data_parallel_on_two_cpu_devices_learns_like_one(tmp_path):
    data = make_image_folders(tmp_path / "toy", train=40, val=10)
    args = small_run(data, "experiment=model3", "augment=none", "trainer.max_epochs=6", "dataset.image_size=[32,32]")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env.pop("KERAS_BACKEND", None)
    started = {devices: subprocess.Popen(
        [sys.executable, "-m", "catdog.train", *args, "backend=jax", f"trainer.devices={devices}",
         f"hydra.run.dir={tmp_path / str(devices)}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env) for devices in (1, 2)}
    for devices, process in started.items():
        output = process.communicate(timeout=600)[0]
        assert process.returncode == 0, output[-2000:]
        provenance = json.loads((tmp_path / str(devices) / "provenance.json").read_text())
        assert (provenance["backend"], provenance["devices"]) == ("jax", devices)
    one, two = ({"metrics": json.loads((tmp_path / str(d) / "metrics.json").read_text()),
                 "history": list(csv.DictReader((tmp_path / str(d) / "history.csv").read_text().splitlines()))}
                for d in (1, 2))
    assert one["metrics"]["best_val_accuracy"] >= 0.9
    for key in ("best_val_accuracy", "final_val_accuracy", "test_accuracy"):  # the same batches, the same steps
        assert two["metrics"][key] == pytest.approx(one["metrics"][key], abs=1 / 16), key  # one of 16 images
    for mine, theirs in zip(two["history"], one["history"]):
        assert float(mine["val_accuracy"]) == pytest.approx(float(theirs["val_accuracy"]), abs=1 / 16)
    assert float(two["history"][0]["loss"]) == pytest.approx(float(one["history"][0]["loss"]), rel=1e-3)


@pytest.mark.slow
def test_more_devices_than_visible_is_a_clear_error(tiny_data, tmp_path):
    result = run_cli("catdog.train", *small_run(tiny_data, "experiment=model1"), "backend=jax", "trainer.devices=3",
                     f"hydra.run.dir={tmp_path}", timeout=300)
    assert result.returncode == 1 and "xla_force_host_platform_device_count=3" in result.stdout + result.stderr


@pytest.mark.backends
def test_the_python_api_fits_and_tests_a_task_on_a_datamodule(tiny_data, tmp_path):
    from catdog import ImageClassifier, ImageFolderDataModule, Trainer
    from catdog.callbacks import ModelCheckpoint
    from catdog.loggers import CSVLogger
    from catdog.models.cnn import conv_blocks

    trainer = Trainer(max_epochs=2, callbacks=[ModelCheckpoint(tmp_path / "checkpoints")],
                      loggers=[CSVLogger(tmp_path)], limit_val_batches=2, verbose=0)
    datamodule = ImageFolderDataModule(root=str(tiny_data), image_size=(32, 32), batch_size=4)
    datamodule.setup()
    task = ImageClassifier(conv_blocks, datamodule.class_names, image_size=datamodule.image_size,
                           pooling="flatten", dropout=0.2)
    history = trainer.fit(task, datamodule)
    assert [row["epoch"] for row in history] == [0, 1]
    val = trainer.validate(task, datamodule)
    assert val["accuracy"] == pytest.approx(history[-1]["val_accuracy"])
    test = trainer.test(task, datamodule, ckpt_path="best")
    assert set(test) >= {"test_accuracy", "test_loss", "best_val_accuracy"} and test["test_checkpoint"] == "best"
    assert test["params_total"] == 29_154  # cnn_small at 32x32: the Flatten shrinks with the image
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "checkpoints" / "best.keras").is_file()
    probabilities = trainer.predict(task, datamodule.val_dataloader())
    assert probabilities.shape == (datamodule.num_images("val"), 2)


def test_the_trainer_takes_a_datamodule_and_names_what_one_lacks(tiny_data):
    from catdog.data import DataModule
    from catdog.errors import CatdogError
    from catdog.training import Trainer

    task = build_model("cnn_small", (32, 32), 2)
    with pytest.raises(CatdogError, match="takes a catdog.data.DataModule .* not dict"):
        Trainer(max_epochs=1).fit(task, {"train": tiny_data})

    class OnlyTraining(DataModule):
        def train_dataloader(self, limit_batches=None, first_epoch=0):
            return []

    with pytest.raises(CatdogError, match="OnlyTraining does not implement val_dataloader, num_images, which Trainer.fit needs"):
        Trainer(max_epochs=1).fit(task, OnlyTraining())


def test_a_run_without_the_csv_logger_still_returns_its_metrics(compose, tiny_data):
    cfg = compose(small_run(tiny_data, "experiment=model1", "trainer.fast_dev_run=1", "~logger"))
    assert train(cfg)["epochs"] == 1 and not (Path(cfg.paths.output_dir) / "history.csv").exists()


@pytest.mark.backends
def test_metrics_name_the_weights_that_were_tested(compose, tiny_data):
    cfg = compose(small_run(tiny_data, "experiment=model1", "trainer.fast_dev_run=1",
                            "callbacks.model_checkpoint=null"))  # test_ckpt_path=best, but no best checkpoint
    assert train(cfg)["test_checkpoint"] == "current"


@pytest.mark.slow
def test_fast_dev_run_runs_each_stage_for_one_epoch_and_records_tags(compose, tiny_data):
    cfg = compose(small_run(tiny_data, "experiment=model4_finetune", "trainer.fast_dev_run=1",
                            "model.backbone.weights=null", "model.backbone.alpha=0.35", "dataset.image_size=[32,32]"))
    metrics = train(cfg)
    assert metrics["epochs"] == 2 and metrics["stages"] == ["head", "finetune"]
    on_disk = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert on_disk["tags"] == ["tutorial", "model4", "finetune"] and on_disk["experiment"] == "model4_finetune"


def test_piped_output_has_no_banners_and_a_line_an_epoch(tiny_data, tmp_path):
    result = run_cli("catdog.train", *small_run(tiny_data, "experiment=model1", "trainer.fast_dev_run=true",
                                                 "trainer.verbose=auto", f"hydra.run.dir={tmp_path / 'run'}",
                                                 f"paths.cache_dir={tmp_path / 'cache'}"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    for noise in ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "━", "\r"):  # banners, progress bars
        assert noise not in output, noise
    assert len([line for line in output.splitlines() if "Epoch 1/1: accuracy" in line]) == 1
    assert "Result:" in output and "Epoch 1/1: accuracy" in (tmp_path / "run" / "train.log").read_text()


def test_a_datamodule_of_your_own_trains_tests_and_predicts_with_the_default_callbacks(tmp_path):
    """A DataModule subclass over arrays: no image folder, so no feature cache and no error-analysis plots."""
    import numpy as np

    from catdog.callbacks import ErrorAnalysis, ModelCheckpoint
    from catdog.data import DataModule
    from catdog.data.loaders import array_loader
    from catdog.training import FeatureCache, Trainer

    class Arrays(DataModule):
        class_names, image_size, batch_size = ["a", "b"], (32, 32), 4

        def __init__(self):
            rng = np.random.default_rng(0)
            self.x, self.y = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32"), np.arange(16) % 2

        def train_dataloader(self, limit_batches=None, first_epoch=0):
            return array_loader(self.x, self.y, 4, seed=0, limit_batches=limit_batches, first_epoch=first_epoch)

        def val_dataloader(self, limit_batches=None):
            return array_loader(self.x, self.y, 4, limit_batches=limit_batches)

        test_dataloader = val_dataloader

        def predict_dataloader(self):
            return array_loader(self.x, self.y, 4)

        def num_images(self, split):
            return 16

    trainer = Trainer(max_epochs=1, verbose=0, feature_cache=FeatureCache(runtime="keras"),
                      callbacks=[ModelCheckpoint(tmp_path / "checkpoints"), ErrorAnalysis(tmp_path)])
    task = build_model("mobilenet", (32, 32), 2, ["model.backbone.weights=null", "model.backbone.alpha=0.35"])
    data = Arrays()
    trainer.fit(task, data)
    assert trainer.test(task, data)["test_accuracy"] >= 0 and trainer.predict(task, data).shape == (16, 2)


@pytest.mark.backends
def test_tta_flip_averages_each_image_with_its_mirror_image(tmp_path):
    import numpy as np
    from PIL import Image

    from catdog.models.cnn import conv_blocks
    from catdog.tasks import ImageClassifier
    from helpers import make_image

    rng = np.random.default_rng(0)
    for folder in ("plain", "mirrored"):
        (tmp_path / folder).mkdir()
    for i in range(6):  # at the model's input size: decoding resizes nothing, so the mirror is exact
        make_image(tmp_path / "plain" / f"{i}.png", i % 2, rng, size=(32, 32))
        mirror = Image.open(tmp_path / "plain" / f"{i}.png").transpose(Image.FLIP_LEFT_RIGHT)
        mirror.save(tmp_path / "mirrored" / f"{i}.png")
    ImageClassifier(conv_blocks, ["cats", "dogs"], image_size=(32, 32)).save(tmp_path / "m.keras")

    def probabilities(folder, *tta):
        out = tmp_path / f"p-{folder}-{len(tta)}"
        result = run_main("catdog.predict", f"ckpt_path={tmp_path / 'm.keras'}", f"images={tmp_path / folder}",
                          *tta, f"hydra.run.dir={out}")
        assert result.returncode == 0, result.stderr[-2000:]
        found = json.loads((out / "predictions.json").read_text())
        return found["tta"], np.array([r["p_cats"] for r in sorted(found["predictions"], key=lambda r: r["path"])])

    tta, both = probabilities("plain", "tta=flip")
    assert tta == "flip"
    np.testing.assert_allclose(both, (probabilities("plain")[1] + probabilities("mirrored")[1]) / 2, atol=1e-5)
    for name, label in (("cats", 0), ("dogs", 1)):  # evaluate takes the same switch
        (tmp_path / "classes" / name).mkdir(parents=True)
        for i in range(3):
            make_image(tmp_path / "classes" / name / f"{i}.png", label, rng, size=(32, 32))
    result = run_main("catdog.evaluate", f"ckpt_path={tmp_path / 'm.keras'}", f"data_dir={tmp_path / 'classes'}",
                      "tta=flip", f"hydra.run.dir={tmp_path / 'e'}")
    assert result.returncode == 0 and json.loads((tmp_path / "e" / "evaluation.json").read_text())["tta"] == "flip"


@pytest.mark.backends
def test_ema_weights_are_what_validation_and_the_checkpoints_hold(compose, tiny_data, tmp_path):
    import keras
    import numpy as np

    def checkpoint_head(name, *extra):
        cfg = compose(small_run(tiny_data, "experiment=model1", "dataset.image_size=[32,32]", "trainer.max_epochs=2",
                                "test=false", f"paths.output_dir={tmp_path / name}", *extra))
        keras.utils.set_random_seed(0)
        initial = build_model("cnn_small", (32, 32), 2).head.get_weights()[0]
        train(cfg)
        saved = keras.saving.load_model(Path(cfg.paths.output_dir) / "checkpoints" / "last.keras", compile=False)
        return np.abs(saved.head.get_weights()[0] - initial).max()

    moved = checkpoint_head("plain")
    # an average that barely moves: the checkpoint holds it, not the trained weights
    averaged = checkpoint_head("ema", "callbacks=ema", "model.optimizer.use_ema=true", "model.optimizer.ema_momentum=0.9999")
    assert averaged < moved / 3, (averaged, moved)


def test_a_runs_provenance_names_no_home_directory(monkeypatch, tmp_path):
    from catdog.training.run_dir import home_relative

    monkeypatch.setenv("HOME", str(tmp_path))
    assert home_relative(str(tmp_path / ".cache" / "jax")) == "~/.cache/jax"
    assert home_relative("/srv/cache") == "/srv/cache" and home_relative(None) is None
    assert home_relative(str(tmp_path) + "-other/x") == str(tmp_path) + "-other/x"


def test_the_readmes_quickstart_trains_on_a_photos_folder_and_predicts(tmp_path, monkeypatch):
    """The README's three commands as written (the install aside), with $HOME a fresh folder of photos, a
    local MobileNetV2 weights file (random: no download here) and fast_dev_run appended to stay short."""
    import os
    import re
    import shlex

    import keras
    import numpy as np

    from helpers import make_image

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme[readme.index("## Quickstart"):].split("```bash\n")[1].split("```")[0]
    install, train_line, predict_line = [line.split("  #")[0].strip() for line in block.strip().splitlines()]
    assert install.startswith("pip install -e .")
    rng = np.random.default_rng(0)
    for label, name in enumerate(("cats", "dogs")):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(10):
            make_image(tmp_path / "photos" / name / f"{i}.jpg", label, rng)
    make_image(tmp_path / "new_photo.jpg", 1, rng)
    weights = tmp_path / "mobilenet_v2.weights.h5"
    keras.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False, weights=None).save_weights(weights)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CATDOG_WEIGHTS", str(weights))
    monkeypatch.setenv("CATDOG_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    train_args = shlex.split(os.path.expandvars(train_line))[3:]
    result = run_main("catdog.train", *train_args, "trainer.fast_dev_run=1", "trainer.verbose=0")
    assert result.returncode == 0, result.stdout[-2000:]
    (run,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    predict_args = shlex.split(re.sub(r"outputs/train/runs/RUN", f"outputs/train/runs/{run.name}", predict_line))[3:]
    result = run_main("catdog.predict", *predict_args)
    assert result.returncode == 0, result.stdout[-2000:]
    (predictions,) = tmp_path.glob("outputs/predict/runs/*/predictions.csv")
    assert "new_photo.jpg" in predictions.read_text()
