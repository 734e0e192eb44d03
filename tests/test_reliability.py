import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from catdog.training.checkpoint import read_state
from catdog.errors import CatdogError
from catdog.tasks.loading import load_task

from helpers import make_image_folders, run_cli, run_main

TESTS = Path(__file__).parent


def history_epochs(run):
    with open(run / "history.csv", newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def history(run, column):
    with open(run / "history.csv", newline="") as f:
        return [float(r[column]) for r in csv.DictReader(f)]


def kill_after_checkpoint(args, run, epochs):
    """Start `python -m args`, SIGKILL it once last.keras holds `epochs` epochs."""
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.keras"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        try:
            if read_state(last)["epoch"] >= epochs:
                break
        except (CatdogError, KeyError):  # not written yet
            pass
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "metrics.json").exists()
    return read_state(last)


SMALL = ["experiment=model3", "augment=none", "dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.verbose=0"]


@pytest.mark.slow
def test_kill_9_then_ckpt_path_resumes_as_if_never_interrupted(tiny_data, tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    args = ["catdog.train", *SMALL, f"dataset.root={tiny_data}", "trainer.max_epochs=6", f"paths.cache_dir={cache}",
            "callbacks=early_stopping", "callbacks.early_stopping.patience=10",
            "model.optimizer.learning_rate=1e-4"]  # slow enough that no loss reaches zero
    slow = ["+callbacks.sleep._target_=helpers.SleepAtEpochEnd", "+callbacks.sleep.seconds=1.0"]
    state = kill_after_checkpoint([*args, *slow, f"hydra.run.dir={run}"], run, 2)
    assert 2 <= state["epoch"] < 6

    refused = run_main(*args, f"hydra.run.dir={run}")  # the same command again: refused, with the way on
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1 and "holds an interrupted run" in output and "Traceback" not in output
    assert f"To resume: python -m catdog.train {' '.join(args[1:])} ckpt_path={run}" in output

    result = run_main(*args, f"ckpt_path={run}")  # the run directory: it goes on writing there
    assert result.returncode == 0, result.stderr[-2000:]
    assert history_epochs(run) == list(range(6))  # every epoch exactly once
    assert f"Resuming from {run}/checkpoints/last.keras after epoch {state['epoch']}" in (run / "train.log").read_text()

    straight = tmp_path / "uninterrupted"
    result = run_main(*args, f"hydra.run.dir={straight}")
    assert result.returncode == 0, result.stderr[-2000:]
    # same batches, dropout draws and optimizer state after the resume: the same losses, to float noise
    assert min(history(straight, "val_loss")) > 1e-3
    np.testing.assert_allclose(history(run, "val_loss"), history(straight, "val_loss"), rtol=1e-3, atol=0)


@pytest.mark.slow
def test_sigterm_stops_after_a_batch_keeps_the_checkpoint_and_prints_the_resume_command(tiny_data, tmp_path):
    run = tmp_path / "run"
    args = ["catdog.train", *SMALL, f"dataset.root={tiny_data}", "trainer.max_epochs=20", f"paths.cache_dir={tmp_path}"]
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.Popen([sys.executable, "-m", *args, f"hydra.run.dir={run}", "+callbacks.sleep._target_="
                             "helpers.SleepAtEpochEnd", "+callbacks.sleep.seconds=1.0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = run / "checkpoints" / "last.keras"
    deadline = time.time() + 240
    while time.time() < deadline and not last.is_file():
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, output[-2000:]
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Stopped by SIGTERM" in errors[0] and f"ckpt_path={run}" in errors[0], output[-2000:]
    assert "Traceback" not in output and not (run / "metrics.json").exists()
    epochs = read_state(last)["epoch"]
    assert history_epochs(run)[:epochs] == list(range(epochs))
    result = run_main(*args, "trainer.max_epochs=3", f"ckpt_path={run}")  # a shorter run: it resumes all the same
    assert result.returncode == 0, result.stderr[-2000:]
    assert history_epochs(run) == list(range(max(epochs, 3)))


def test_ctrl_c_in_process_raises_interrupted_with_exit_code_130(tiny_data, tmp_path):
    from catdog import ImageClassifier, ImageFolderDataModule, Trainer
    from catdog.callbacks import ModelCheckpoint
    from catdog.models.cnn import conv_blocks
    from catdog.training.signals import Interrupted

    class CtrlC(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1 and self.epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    trainer = Trainer(max_epochs=3, callbacks=[CtrlC(), ModelCheckpoint(tmp_path / "checkpoints")], verbose=0)
    data = ImageFolderDataModule(root=str(tiny_data), image_size=(32, 32), batch_size=4)
    data.setup()
    task = ImageClassifier(conv_blocks, data.class_names, image_size=(32, 32), pooling="flatten")
    # Python's own handler, as in a terminal, also where pytest started with SIGINT ignored (nohup, a background job)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(Interrupted) as stopped:
            trainer.fit(task, data)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are given back
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stopped.value.exit_code == 130 and "after epoch 1" in str(stopped.value)
    assert read_state(tmp_path / "checkpoints" / "last.keras")["epoch"] == 1


@pytest.mark.backends
def test_a_finished_run_is_never_restarted_or_overwritten(compose, tiny_data):
    from catdog.train import train
    from catdog.training.run_dir import RunExists

    cfg = compose([*SMALL, f"dataset.root={tiny_data}", "trainer.max_epochs=1"])
    train(cfg)
    run = Path(cfg.paths.output_dir)
    before = {p: p.read_bytes() for p in [run / "metrics.json", *run.glob("checkpoints/*")]}
    for ckpt_path in ("null", str(run)):
        cfg = compose([*SMALL, f"dataset.root={tiny_data}", "trainer.max_epochs=3", f"ckpt_path={ckpt_path}"])
        with pytest.raises(RunExists, match="finished"):
            train(cfg)
    assert before == {p: p.read_bytes() for p in before}


@pytest.mark.slow
def test_fine_tuning_killed_in_its_second_stage_resumes_there(tiny_data, tmp_path):
    run = tmp_path / "run"
    args = ["catdog.train", "experiment=model4_finetune", "model.backbone.weights=null", "model.backbone.alpha=0.35",
            f"dataset.root={tiny_data}", "dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.verbose=0",
            "trainer.stages.0.epochs=2", "trainer.stages.1.epochs=4", "trainer.stages.1.unfreeze_backbone_layers=6",
            f"paths.cache_dir={tmp_path / 'cache'}"]
    slow = ["+callbacks.sleep._target_=helpers.SleepAtEpochEnd", "+callbacks.sleep.seconds=1.0"]
    state = kill_after_checkpoint([*args, *slow, f"hydra.run.dir={run}"], run, 3)  # in the fine-tuning stage
    assert state["stage"] == 1 and 3 <= state["epoch"] < 6 and state["stage_start"] == 2
    result = run_main(*args, f"ckpt_path={run}/checkpoints/last.keras")
    assert result.returncode == 0, result.stderr[-2000:]
    assert history_epochs(run) == list(range(6))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 6 and metrics["stages"] == ["head", "finetune"] and metrics["test_accuracy"] is not None
    resumed = keras.saving.load_model(run / "checkpoints" / "last.keras")
    assert len(resumed.trainable_weights) > len(resumed.head.trainable_weights)  # the stage's unfrozen layers


def tiny_task():
    from catdog.tasks import ImageClassifier

    return ImageClassifier(None, ["a", "b"], image_size=[4], pooling=None)


class FakeTrainer:
    """What ModelCheckpoint asks of a Trainer: save_checkpoint and copy_checkpoint."""

    def __init__(self):
        self.saved = []

    def save_checkpoint(self, path, epochs_done):
        self.saved.append((Path(path).name, epochs_done))

    def copy_checkpoint(self, source, path):
        self.saved.append((Path(path).name, f"copy of {Path(source).name}"))


@pytest.mark.backends
def test_the_best_score_survives_a_resume_and_a_missing_monitor_is_an_error(tmp_path):
    from catdog.callbacks import ModelCheckpoint

    checkpoint = ModelCheckpoint(tmp_path, monitor="val_accuracy")
    checkpoint.trainer = FakeTrainer()
    checkpoint.load_state_dict({"best": 1.0})  # as a resume restores it
    checkpoint.on_epoch_end(3, {"val_accuracy": 1.0})  # not an improvement
    checkpoint.on_epoch_end(4, {"val_accuracy": 0.5})
    assert checkpoint.trainer.saved == [("last.keras", 4), ("last.keras", 5)]
    checkpoint.on_epoch_end(5, {"val_accuracy": 1.5})  # an improvement: serialized once, then copied
    assert checkpoint.trainer.saved[2:] == [("best.keras", 6), ("last.keras", "copy of best.keras")]
    with pytest.raises(CatdogError, match="monitor='val_accuracy' is not among"):
        checkpoint.on_epoch_end(6, {"val_acc": 0.9})


@pytest.mark.parametrize("restore, epochs_run", [
    (None, 4),  # a fresh stage: patience 3 counts from here
    ({"wait": 2, "best": 0.4, "best_epoch": 1}, 1),  # resumed within its stage: one epoch of patience left
])
def test_early_stopping_patience_survives_a_resume(restore, epochs_run):
    from catdog.callbacks import EarlyStopping

    x, y = np.zeros((4, 4), "float32"), np.zeros((4,), "int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    stop = EarlyStopping(monitor="val_loss", mode="min", patience=3)  # val_loss stays log(2), 0.69
    if restore:
        stop.load_state_dict(restore)
    history = model.fit(x, y, validation_data=(x, y), initial_epoch=4, epochs=12, callbacks=[stop], verbose=0)
    assert len(history.history["val_loss"]) == epochs_run
    assert EarlyStopping.stage_scoped and stop.state_dict()["best"] is not None


def test_a_checkpoint_write_that_fails_leaves_the_previous_one(tmp_path, monkeypatch):
    from catdog.training.checkpoint import save_checkpoint

    task, path = tiny_task(), tmp_path / "last.keras"
    save_checkpoint(path, task, {"epoch": 1})
    first = path.read_bytes()

    def full_disk(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", full_disk)
    with pytest.raises(CatdogError, match="No space left on device"):
        save_checkpoint(path, task, {"epoch": 2})
    assert path.read_bytes() == first and read_state(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.keras"]  # no temporary left behind


def test_history_row_cut_by_a_kill_is_ignored(tmp_path):
    from catdog.analysis.history import read_history

    path = tmp_path / "history.csv"
    path.write_text("epoch,accuracy,val_accuracy\n0,0.5,0.6\n1,0.7,0.7\n1,0.8,0.75\n2,0.9,\n")
    assert read_history(path) == {"accuracy": [0.5, 0.8], "val_accuracy": [0.6, 0.75]}


def test_lambda_layers_are_refused_unless_allowed(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(CatdogError, match="safe_mode=false"):
        load_task(path)
    loaded, _ = load_task(path, safe_mode=False)
    np.testing.assert_allclose(loaded.predict(np.ones((1, 4)), verbose=0), 2 * np.ones((1, 4)))


def test_evaluate_cli_refuses_lambda_checkpoint(tmp_path, tiny_data):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x[:, 0, 0, :2])(inputs))
    model.save(tmp_path / "m.keras")
    result = run_main("catdog.evaluate", f"ckpt_path={tmp_path / 'm.keras'}", f"data_dir={tiny_data / 'train'}",
                      f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 1 and "safe_mode=false" in result.stdout + result.stderr


def test_json_is_replaced_atomically(tmp_path, monkeypatch):
    from catdog.utils import io

    path = tmp_path / "metrics.json"
    io.write_json(path, {"epochs": 1})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(io.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        io.write_json(path, {"epochs": 2})
    assert json.loads(path.read_text()) == {"epochs": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_cache_folder_that_cannot_be_written_is_a_warning_not_a_failure(compose, tiny_data, tmp_path, caplog):
    from catdog.train import train

    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("a regular file where the cache folder should be")
    cfg = compose([*SMALL, f"dataset.root={tiny_data}", "trainer.fast_dev_run=1", f"dataset.cache_dir={not_a_folder}"])
    assert train(cfg)["epochs"] == 1
    assert "going on without it" in caplog.text and not_a_folder.read_text().startswith("a regular file")


def test_a_transient_decode_failure_is_not_cached_and_stale_temporaries_go(tiny_data, tmp_path, monkeypatch):
    from catdog.data import images as images_module
    from catdog.data.cache import cached_decode

    paths = sorted(str(p) for p in (tiny_data / "train" / "cats").iterdir())
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / ".images-8x8-0123.npy.999999999.tmp"  # a killed writer's, pid long gone
    stale.write_bytes(b"\0" * 1024)
    load = images_module.load_image

    def flaky(path, *args, **kwargs):
        if path == paths[0]:
            raise PermissionError(13, "Permission denied", path)
        return load(path, *args, **kwargs)

    monkeypatch.setattr(images_module, "load_image", flaky)
    _, good, bad = cached_decode(paths, (8, 8), 0, cache)
    assert list(bad) == [paths[0]] and not list(cache.glob("*.npy"))  # skipped this time, not cached for good
    monkeypatch.setattr(images_module, "load_image", load)
    _, good, bad = cached_decode(paths, (8, 8), 0, cache)
    assert not bad and len(good) == len(paths) and len(list(cache.glob("*.npy"))) == 1
    assert not stale.exists()


def test_a_run_directory_in_use_is_refused(compose, tiny_data):
    from catdog.train import train

    cfg = compose([*SMALL, f"dataset.root={tiny_data}", "trainer.fast_dev_run=1"])
    run = Path(cfg.paths.output_dir)
    run.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time\n"  # another run writing there
                               f"f = open({str(run / '.lock')!r}, 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
                               "f.write('pid 1234'); f.flush(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CatdogError, match=r"is in use by another catdog run \(pid 1234\)"):
            train(cfg)
    finally:
        holder.kill()
        holder.wait()
    assert train(cfg)["epochs"] == 1


def test_default_run_directories_differ_within_a_second():
    from hydra import compose, initialize_config_dir

    from catdog.utils.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        dirs = {compose("train", return_hydra_config=True).hydra.run.dir for _ in range(3)}
    assert len(dirs) == 3


def test_a_checkpoint_is_not_started_on_a_disk_without_room_for_it(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from catdog.training.checkpoint import save_checkpoint

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    with pytest.raises(CatdogError, match="MB free on its disk"):
        save_checkpoint(tmp_path / "last.keras", tiny_task(), {"epoch": 1})
    assert not list(tmp_path.iterdir())


def test_an_absurd_declared_input_is_refused_before_anything_is_built(tmp_path):
    import zipfile

    path = tmp_path / "huge.keras"
    config = {"class_name": "Functional", "config": {"layers": [{"class_name": "InputLayer", "config": {
        "batch_shape": [None, 30000, 30000, 3]}}]}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", "{}")
    with pytest.raises(CatdogError, match=r"declares an input of shape \[None, 30000, 30000, 3\]"):
        load_task(path)


def test_class_names_are_data_never_paths(tmp_path, tiny_data):
    from catdog.data.images import list_image_folder

    with pytest.raises(CatdogError, match="never paths"):
        list_image_folder(tiny_data / "validation", class_names=["cats", "/etc"])
    with pytest.raises(CatdogError, match="never paths"):
        list_image_folder(tiny_data / "validation", class_names=["cats", "../train/dogs"])


@pytest.mark.backends
def test_interrupted_between_the_last_epoch_and_the_metrics_the_run_resumes_to_its_end(compose, tiny_data,
                                                                                         monkeypatch):
    from catdog.train import train
    from catdog.training.trainer import Trainer

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    cfg = compose([*SMALL, f"dataset.root={tiny_data}", "trainer.max_epochs=2"])
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "test", ctrl_c)  # the moment after the last epoch's checkpoint
        with pytest.raises(KeyboardInterrupt):
            train(cfg)
    run = Path(cfg.paths.output_dir)
    assert read_state(run / "checkpoints" / "last.keras")["fit_complete"] and not (run / "metrics.json").exists()
    metrics = train(compose([*SMALL, f"dataset.root={tiny_data}", "trainer.max_epochs=2", f"ckpt_path={run}"]))
    assert metrics["epochs"] == 2 and history_epochs(run) == [0, 1] and (run / "metrics.json").is_file()


def test_a_failing_plot_is_a_warning_and_loses_nothing(compose, tiny_data, monkeypatch, caplog):
    import catdog.analysis.plots
    from catdog.training.run_dir import is_finished
    from catdog.train import train

    def broken(*args, **kwargs):
        raise RuntimeError("no display")

    monkeypatch.setattr(catdog.analysis.plots, "plot_history", broken)
    monkeypatch.setattr(catdog.analysis.plots, "plot_confusion", broken)
    cfg = compose([*SMALL, f"dataset.root={tiny_data}", "trainer.fast_dev_run=1"])
    train(cfg)
    run = Path(cfg.paths.output_dir)
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 1 and (run / "checkpoints/best.keras").is_file()
    assert "Could not plot" in caplog.text and is_finished(run)


def test_a_run_that_fails_before_its_first_epoch_leaves_only_its_log(tmp_path):
    run = tmp_path / "run"
    result = run_main("catdog.train", "dataset.root=/no/such/folder", f"hydra.run.dir={run}")
    assert result.returncode == 1 and "dataset.root=/no/such/folder is not a folder" in result.stdout + result.stderr
    assert [p.name for p in run.iterdir()] == ["train.log"]
    assert "is not a folder" in (run / "train.log").read_text()


def test_an_error_about_many_files_names_five_and_lists_all_in_the_run_directory(tmp_path):
    data = make_image_folders(tmp_path / "data", train=6, val=4)
    for i in range(4):  # 8 validation images that are training images too
        for name in ("cats", "dogs"):
            shutil.copy(data / "train" / name / f"{name}.{i}.jpg", data / "validation" / name / f"copy{i}.jpg")
    run = tmp_path / "run"
    result = run_main("catdog.train", f"dataset.root={data}", f"hydra.run.dir={run}")
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "The splits share 8 image(s)" in output, output[-2000:]
    assert "and 3 more (all 8 in shared_images.txt)" in output and output.count("copy") == 5
    assert len((run / "shared_images.txt").read_text().splitlines()) == 8


def test_a_resume_with_another_model_data_or_optimizer_is_refused_naming_each_key(tiny_data, tmp_path):
    from catdog import ImageClassifier, ImageFolderDataModule, Trainer
    from catdog.callbacks import ModelCheckpoint
    from catdog.models.cnn import conv_blocks

    def fit(max_epochs, dropout=0.2, batch_size=4, learning_rate=1e-3, ckpt_path=None):
        data = ImageFolderDataModule(root=str(tiny_data), image_size=(32, 32), batch_size=batch_size)
        data.setup()
        optimizer = keras.optimizers.Adam(learning_rate)
        task = ImageClassifier(conv_blocks, data.class_names, image_size=(32, 32), pooling="flatten",
                               dropout=dropout, optimizer=optimizer)
        trainer = Trainer(max_epochs=max_epochs, callbacks=[ModelCheckpoint(tmp_path / "checkpoints")], verbose=0)
        return trainer.fit(task, data, ckpt_path=ckpt_path)

    fit(1)  # fit alone: an interrupted run, resumable
    before = (tmp_path / "checkpoints" / "last.keras").read_bytes()
    with pytest.raises(CatdogError) as refused:
        fit(2, dropout=0.5, batch_size=8, learning_rate=1e-4, ckpt_path=tmp_path)
    message = str(refused.value)
    for change in ("model.dropout: 0.2 -> 0.5", "dataset.batch_size: 4 -> 8",
                   "model.optimizer.learning_rate: 0.001 -> 0.0001"):
        assert change in message, message
    fix = "Resume with the values it started with: dataset.batch_size=4 model.dropout=0.2 model.optimizer.learning_rate=0.001."
    assert fix in message, message
    assert (tmp_path / "checkpoints" / "last.keras").read_bytes() == before
    assert len(fit(3, ckpt_path=tmp_path)) == 1  # max_epochs may differ (this fit was complete: nothing to add)


def test_an_epoch_stopped_before_its_last_batch_is_not_saved_as_complete(tiny_data, tmp_path):
    from catdog import ImageClassifier, ImageFolderDataModule, Trainer
    from catdog.callbacks import ModelCheckpoint
    from catdog.models.cnn import conv_blocks

    class StopMidEpoch(keras.callbacks.Callback):  # as TerminateOnNaN does on a NaN loss
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:
                self.model.stop_training = True

    data = ImageFolderDataModule(root=str(tiny_data), image_size=(32, 32), batch_size=4)  # 6 batches an epoch
    data.setup()
    task = ImageClassifier(conv_blocks, data.class_names, image_size=(32, 32), pooling="flatten")
    trainer = Trainer(max_epochs=3, callbacks=[StopMidEpoch(), ModelCheckpoint(tmp_path / "checkpoints")], verbose=0)
    history = trainer.fit(task, data)
    assert [row["epoch"] for row in history] == [0]
    assert read_state(tmp_path / "checkpoints" / "last.keras")["epoch"] == 1
    assert read_state(tmp_path / "checkpoints" / "best.keras")["epoch"] == 1


def test_an_augmented_fit_resumed_draws_on_where_its_checkpoint_left_off(tiny_data, tmp_path):
    from catdog import ImageClassifier, ImageFolderDataModule, Trainer
    from catdog.callbacks import ModelCheckpoint
    from catdog.models.cnn import conv_blocks

    class Seeds(keras.callbacks.Callback):  # the augmentation's random state as each epoch begins
        def __init__(self, data, fail_at=None):
            super().__init__()
            self.data, self.fail_at, self.seen = data, fail_at, {}

        def on_epoch_begin(self, epoch, logs=None):
            self.seen[epoch] = self.data.state_dict()["augment_seeds"]

        def on_epoch_end(self, epoch, logs=None):
            if epoch == self.fail_at:  # before the epoch's checkpoint
                raise RuntimeError("killed")

    def fit(folder, fail_at=None, ckpt_path=None):
        keras.utils.set_random_seed(0)
        augment = {"flip": keras.layers.RandomFlip(seed=3), "rotate": keras.layers.RandomRotation(0.2, seed=4)}
        data = ImageFolderDataModule(root=str(tiny_data), image_size=(32, 32), batch_size=4, augment=augment,
                                     cache_dir=tmp_path / "cache")
        data.setup()
        seeds = Seeds(data, fail_at)
        trainer = Trainer(max_epochs=3, callbacks=[seeds, ModelCheckpoint(folder)], verbose=0, precision="float32")
        task = ImageClassifier(conv_blocks, data.class_names, image_size=(32, 32), pooling="flatten")
        trainer.fit(task, data, ckpt_path=ckpt_path)
        return seeds.seen, trainer.history

    straight, history = fit(tmp_path / "straight")
    with pytest.raises(RuntimeError):
        fit(tmp_path / "cut", fail_at=1)
    resumed, resumed_history = fit(tmp_path / "cut", ckpt_path=tmp_path / "cut" / "last.keras")
    assert straight[0] != straight[1] != straight[2]  # the stream moves on each epoch
    assert sorted(resumed) == [1, 2] and resumed[1] == straight[1] and resumed[2] == straight[2]
    np.testing.assert_allclose([r["loss"] for r in resumed_history], [r["loss"] for r in history], rtol=1e-4)


def test_a_refused_rerun_changes_nothing_in_the_finished_run(tiny_data, tmp_path):
    run = tmp_path / "run"
    args = ["experiment=model1", f"dataset.root={tiny_data}", "dataset.image_size=[32,32]", "dataset.batch_size=4",
            "trainer.fast_dev_run=1", "trainer.verbose=0", f"paths.cache_dir={tmp_path / 'cache'}"]
    assert run_main("catdog.train", *args, f"hydra.run.dir={run}").returncode == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for again in ([f"hydra.run.dir={run}"], [f"ckpt_path={run}", "seed=3"]):
        result = run_main("catdog.train", *args, *again)
        assert result.returncode == 1 and "finished run" in result.stdout + result.stderr
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before, again


@pytest.mark.slow
def test_a_killed_sweep_run_again_skips_finished_jobs_resumes_the_cut_one_and_runs_the_rest(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["catdog.train", "-m", "seed=0,1,2,3", *SMALL, f"dataset.root={tiny_data}", "trainer.max_epochs=3",
            f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}"]
    slow = ["+callbacks.sleep._target_=helpers.SleepAtEpochEnd", "+callbacks.sleep.seconds=1.0"]
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.Popen([sys.executable, "-m", *args, *slow], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (sweep / "2" / "checkpoints" / "last.keras").is_file():
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its job's process, during job 2
    proc.wait()
    finished = {job: (sweep / job / "metrics.json").read_bytes() for job in ("0", "1")}
    assert not (sweep / "2" / "metrics.json").exists() and not (sweep / "3").exists()

    result = run_cli(*args, *slow, env={"PYTHONPATH": str(TESTS)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for job in ("0", "1"):
        assert f"Job {job} finished in an earlier run of this sweep" in output
        assert (sweep / job / "metrics.json").read_bytes() == finished[job]  # not trained again
    assert "Resuming from" in (sweep / "2" / "train.log").read_text()
    for job in ("2", "3"):
        assert history_epochs(sweep / job) == [0, 1, 2] and (sweep / job / ".finished").is_file()


def test_a_transient_decode_failure_under_fast_dev_run_with_the_feature_cache_trains(compose, tmp_path, monkeypatch):
    from catdog.data import images as images_module
    from catdog.train import train

    data = make_image_folders(tmp_path / "data", train=6, val=6)
    load, first = images_module.load_image, str(sorted((data / "train" / "cats").iterdir())[0])

    def flaky(path, *args, **kwargs):
        if path == first:
            raise PermissionError(13, "Permission denied", path)
        return load(path, *args, **kwargs)

    monkeypatch.setattr(images_module, "load_image", flaky)
    cfg = compose([f"dataset.root={data}", "experiment=model4", "model.backbone.weights=null",
                   "model.backbone.alpha=0.35", "dataset.image_size=[32,32]", "dataset.batch_size=4",
                   "trainer.verbose=0", "trainer.feature_cache.runtime=keras", "trainer.fast_dev_run=1"])
    metrics = train(cfg)  # the decode is not cached (a failure of the moment), its rows are read from memory
    assert metrics["epochs"] == 1 and first in metrics["skipped_images"]


def test_a_cache_that_would_not_fit_on_its_disk_decodes_once_in_memory(tiny_data, tmp_path, monkeypatch, caplog):
    import shutil as shutil_module

    from catdog.data import cache as cache_module

    paths = sorted(str(p) for p in (tiny_data / "train" / "cats").iterdir())
    calls = []
    decode = cache_module.decode_into
    monkeypatch.setattr(cache_module, "decode_into", lambda *a, **k: calls.append(1) or decode(*a, **k))
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: shutil_module._ntuple_diskusage(10**9, 10**9, 1000))
    with caplog.at_level("WARNING", "catdog.data.cache"):
        images, good, bad = cache_module.cached_decode(paths, (32, 32), 0, tmp_path / "cache")
    assert len(calls) == 1 and len(good) == len(paths) and not list((tmp_path / "cache").glob("*.npy"))
    assert "not enough free space" in caplog.text
