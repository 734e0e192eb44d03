"""The loggers: one run's CSV, TensorBoard and MLflow records, each read back with its own reader."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray

from catdog.errors import CatdogError
from catdog.loggers import MLflowLogger
from catdog.train import train

from helpers import run_cli


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """One MLflow store for the module (creating its tables takes seconds); each test has its experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def fast_run(data):
    return ["experiment=model1", f"dataset.root={data}", "dataset.image_size=[32,32]", "dataset.batch_size=4",
            "trainer.max_epochs=2", "trainer.verbose=0"]


def tensorboard_scalars(folder, tag):
    """[(step, value)] of a TensorBoard scalar (a tensor in the tf2 summaries Keras 3 writes)."""
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return [(e.step, float(make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]


def test_csv_tensorboard_and_mlflow_record_the_same_run(compose, tiny_data, tracking_uri):
    cfg = compose([*fast_run(tiny_data), "logger=[csv,tensorboard,mlflow]",
                   f"logger.mlflow.tracking_uri={tracking_uri}"])
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    history = {k: [float(r[k]) for r in rows] for k in ("accuracy", "val_accuracy")}
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["epochs"] == 2 and on_disk["test_accuracy"] == metrics["test_accuracy"]
    assert json.loads((run / "provenance.json").read_text())["backend"] == "tensorflow"

    for folder, column in (("train", "accuracy"), ("validation", "val_accuracy")):
        epochs = tensorboard_scalars(run / "tensorboard" / folder, "epoch_accuracy")
        assert [step for step, _ in epochs] == [0, 1], folder
        assert [value for _, value in epochs] == pytest.approx(history[column], abs=1e-6), folder
    assert tensorboard_scalars(run / "tensorboard" / "summary", "test_accuracy") == [
        (2, pytest.approx(metrics["test_accuracy"], abs=1e-6))]

    client = MlflowClient(tracking_uri=tracking_uri)
    (found,) = client.search_runs([client.get_experiment_by_name("model1").experiment_id])
    assert found.info.status == "FINISHED"
    params, logged, tags = found.data.params, found.data.metrics, found.data.tags
    assert params["model"] == "cnn_small" and params["config.trainer.max_epochs"] == "2"
    assert params["config.dataset.batch_size"] == "4"
    val = client.get_metric_history(found.info.run_id, "val_accuracy")
    assert [m.step for m in val] == [0, 1]
    assert [m.value for m in val] == pytest.approx(history["val_accuracy"], abs=1e-6)
    assert logged["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert logged["label_counts.cats"] == 12 and logged["num_images.test"] == 4  # nested ones, flattened
    assert tags["backend"] == "tensorflow" and "versions.keras" in tags
    plots = sorted(p.name for p in run.glob("*.png"))
    assert "confusion.png" in plots
    artifacts = client.list_artifacts(found.info.run_id)
    assert sorted(a.path for a in artifacts if not a.is_dir) == plots
    assert [a.path for a in client.list_artifacts(found.info.run_id, "checkpoints")] == ["checkpoints/best.keras"]
    store = Path(tracking_uri.removeprefix("sqlite:///")).parent
    assert found.info.artifact_uri.startswith(str(store / "mlartifacts"))  # beside the store, not in ./mlruns


@pytest.mark.slow
def test_tensorboard_logger_on_jax_without_tensorflow_says_how_to_allow_it(tiny_data, tmp_path):
    result = run_cli("catdog.train", *fast_run(tiny_data), "backend=jax", "logger=tensorboard",
                     f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-2000:]
    assert "backend.import_tensorflow=true" in output and "Traceback" not in output


def test_mlflow_logger_resumed_from_its_state_goes_on_in_the_same_run(tracking_uri):
    params = {"model": "cnn_small", "config": {"ckpt_path": None}}
    first = MLflowLogger(tracking_uri, experiment_name="resume")
    first.log_hyperparams(params)
    first.on_train_begin()
    first.on_epoch_end(0, {"val_accuracy": 0.5})
    state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint keeps it

    resumed = MLflowLogger(tracking_uri, experiment_name="resume")
    resumed.log_hyperparams({**params, "config": {"ckpt_path": "RUN"}})  # a resume's config differs
    resumed.load_state_dict(state)
    resumed.on_train_begin()
    resumed.on_epoch_end(1, {"val_accuracy": 0.75})
    resumed.finalize()

    client = resumed.client
    (found,) = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    assert found.info.run_id == state["run_id"] and found.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(found.info.run_id, "val_accuracy")] == [
        (0, 0.5), (1, 0.75)]
    assert found.data.params["config.ckpt_path"] == "None"  # logged once, by the first run


def test_mlflow_logger_keeps_real_numbers_under_names_mlflow_accepts(tracking_uri):
    logger = MLflowLogger(tracking_uri, experiment_name="names")
    logger.log_metrics({"test_accuracy": np.float32(0.5), "label_counts": {"golden retriever's": 3},
                        "done": True, "test_checkpoint": "best", "median_epoch_seconds": None, "epochs": 2}, step=2)
    logger.log_provenance({"cpu": {"model name": "x"}, "devices": 1})
    logger.finalize()
    found = logger.client.get_run(logger.run_id)
    assert found.data.metrics == {"test_accuracy": 0.5, "label_counts.golden_retriever_s": 3.0, "epochs": 2.0}
    assert found.data.tags["cpu.model_name"] == "x" and found.data.tags["devices"] == "1"


@pytest.mark.parametrize("ending,status", [("error", "FAILED"), ("ctrl-c", "KILLED")])
def test_mlflow_marks_a_fit_that_stopped_failed_or_killed_and_a_resume_goes_on(tracking_uri, tiny_data, tmp_path,
                                                                              ending, status):
    import signal

    import keras

    from catdog import ImageClassifier, ImageFolderDataModule, Trainer
    from catdog.callbacks import ModelCheckpoint
    from catdog.models.cnn import conv_blocks

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1 and ending == "error":  # after epoch 0's checkpoint
                raise RuntimeError("disk on fire")
            if epoch == 0 and ending == "ctrl-c":
                os.kill(os.getpid(), signal.SIGINT)

    def fit(callbacks):
        logger = MLflowLogger(tracking_uri, experiment_name=f"stopped-{ending}")
        trainer = Trainer(max_epochs=2, callbacks=[*callbacks, ModelCheckpoint(tmp_path / "checkpoints")],
                          loggers=[logger], verbose=0)
        data = ImageFolderDataModule(root=str(tiny_data), image_size=(32, 32), batch_size=8)
        data.setup()
        task = ImageClassifier(conv_blocks, data.class_names, image_size=(32, 32), pooling="flatten")
        return logger, trainer, task, data

    logger, trainer, task, data = fit([Stop()])
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises((RuntimeError, CatdogError)):
            trainer.fit(task, data)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert MlflowClient(tracking_uri).get_run(logger.run_id).info.status == status
    resumed, trainer, task, data = fit([])
    trainer.fit(task, data, ckpt_path=tmp_path)
    trainer.test(task, data)
    assert resumed.run_id == logger.run_id  # the same MLflow run, finished now
    assert MlflowClient(tracking_uri).get_run(logger.run_id).info.status == "FINISHED"



@pytest.mark.parametrize("ending", ["stop mid-epoch", "error at epoch end"])
def test_tensorboard_and_mlflow_get_each_epoch_once_across_a_resume(tracking_uri, tiny_data, tmp_path, ending):
    import keras

    from catdog import ImageClassifier, ImageFolderDataModule, Trainer
    from catdog.callbacks import ModelCheckpoint
    from catdog.loggers import TensorBoardLogger
    from catdog.models.cnn import conv_blocks

    class Stop(keras.callbacks.Callback):  # epoch 1 is cut or not checkpointed: no logger may keep it
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 1 and ending == "stop mid-epoch":  # as TerminateOnNaN does
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1 and ending == "error at epoch end":
                raise RuntimeError("disk on fire")

    def fit(callbacks, ckpt_path=None):
        mlflow = MLflowLogger(tracking_uri, experiment_name=f"resumed-once-{ending}")
        loggers = [TensorBoardLogger(tmp_path / "tensorboard"), mlflow]
        trainer = Trainer(max_epochs=3, callbacks=[*callbacks, ModelCheckpoint(tmp_path / "checkpoints")],
                          loggers=loggers, verbose=0)
        data = ImageFolderDataModule(root=str(tiny_data), image_size=(32, 32), batch_size=4)  # 6 batches an epoch
        data.setup()
        task = ImageClassifier(conv_blocks, data.class_names, image_size=(32, 32), pooling="flatten")
        trainer.fit(task, data, ckpt_path=ckpt_path)
        return mlflow, trainer

    if ending == "error at epoch end":
        with pytest.raises(RuntimeError):
            fit([Stop()])
        mlflow, trainer = fit([], ckpt_path=tmp_path)
    else:  # the fit ends there, with epoch 0 alone complete
        mlflow, trainer = fit([Stop()])
    history = {row["epoch"]: row["accuracy"] for row in trainer.history}
    assert sorted(history) == ([0, 1, 2] if ending == "error at epoch end" else [0])
    expected = [(e, pytest.approx(value, abs=1e-6)) for e, value in sorted(history.items())]
    steps = [(m.step, m.value) for m in MlflowClient(tracking_uri).get_metric_history(mlflow.run_id, "accuracy")]
    assert sorted(steps) == expected
    assert sorted(tensorboard_scalars(tmp_path / "tensorboard" / "train", "epoch_accuracy")) == expected


def test_a_missing_extra_is_named_with_its_install_command(monkeypatch, compose, tiny_data, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)  # not installed
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(CatdogError, match=r"pip install 'catdog\[mlflow\]'"):
        MLflowLogger(f"sqlite:///{tmp_path / 'mlflow.db'}")
