import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from catdog.callbacks import AtomicModelCheckpoint, ResumableEarlyStopping
from catdog.errors import CatdogError
from catdog.inference import load_classifier

from conftest import run_cli

TESTS = Path(__file__).parent


def history_epochs(run):
    with open(run / "history.csv", newline="") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def kill_after_epochs(args, run, epochs):
    """Start `python -m args`, SIGKILL it once history.csv holds `epochs` rows; returns those epochs."""
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not ((run / "history.csv").is_file() and len(history_epochs(run)) >= epochs):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "metrics.json").exists()
    return history_epochs(run)


def test_kill_9_then_rerun_resumes_after_the_last_completed_epoch(tiny_data, tmp_path):
    run = tmp_path / "run"
    args = ["catdog.train", "experiment=model3", "augment=none", f"dataset.root={tiny_data}", "dataset.image_size=[32,32]",
            "dataset.batch_size=4", "trainer.max_epochs=6", "trainer.verbose=0", f"hydra.run.dir={run}",
            f"paths.cache_dir={tmp_path / 'cache'}", "callbacks=early_stopping", "callbacks.early_stopping.patience=10",
            "+callbacks.sleep._target_=helpers.SleepAtEpochEnd", "+callbacks.sleep.seconds=1.5"]
    done_before = kill_after_epochs(args, run, 2)
    assert 2 <= len(done_before) < 6

    result = run_cli(*args, env={"PYTHONPATH": str(TESTS)})
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 6 and len(metrics["epoch_seconds"]) == 6
    assert sorted(set(history_epochs(run))) == list(range(6))
    assert "Resuming from the backup" in (run / "train.log").read_text()

    straight = tmp_path / "uninterrupted"
    result = run_cli(*[a for a in args if not a.startswith(("hydra.run.dir", "+callbacks"))],
                     f"hydra.run.dir={straight}")
    assert result.returncode == 0, result.stderr[-2000:]
    reference = json.loads((straight / "metrics.json").read_text())
    assert abs(metrics["best_val_accuracy"] - reference["best_val_accuracy"]) <= 0.15  # the stated tolerance


def test_fine_tuning_killed_in_its_second_stage_resumes_there(tiny_data, tmp_path):
    run = tmp_path / "run"
    args = ["catdog.train", "experiment=model4_finetune", "model.weights=null", "model.alpha=0.35",
            f"dataset.root={tiny_data}", "dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.max_epochs=2",
            "finetune.epochs=4", "finetune.unfreeze_layers=6", "trainer.verbose=0", f"hydra.run.dir={run}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "+callbacks.sleep._target_=helpers.SleepAtEpochEnd", "+callbacks.sleep.seconds=1.5"]
    done_before = kill_after_epochs(args, run, 4)  # the backup of epoch 2, the first fine-tuning one, is done
    assert 4 <= len(done_before) < 6 and (run / "backup" / "finetune").is_dir()

    result = run_cli(*args, env={"PYTHONPATH": str(TESTS)})
    assert result.returncode == 0, result.stderr[-2000:]
    epochs = history_epochs(run)  # an epoch cut between its history row and its backup runs again
    assert epochs[:3] == [0, 1, 2] and sorted(set(epochs[3:])) == [3, 4, 5], epochs
    assert not (run / "backup").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 6 and metrics["test_accuracy"] is not None


def test_a_resumed_run_keeps_the_best_checkpoint_from_before_the_interruption(tmp_path):
    x, y = np.zeros((4, 4), "float32"), np.zeros((4,), "int32")
    model = tiny_model()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    checkpoint = AtomicModelCheckpoint(str(tmp_path / "best.keras"), monitor="val_accuracy", mode="max",
                                       save_best_only=True)
    checkpoint.resumed_values = [0.5, 1.0, 0.75]  # val_accuracy here is 1.0 too: not an improvement
    model.fit(x, y, validation_data=(x, y), epochs=1, callbacks=[checkpoint], verbose=0)
    assert checkpoint.best == 1.0 and not (tmp_path / "best.keras").exists()


@pytest.mark.parametrize("early_stopping, stage_start, epochs_run", [
    (keras.callbacks.EarlyStopping, 0, 4),  # Keras' own forgets the three epochs before the resume
    (ResumableEarlyStopping, 0, 1),  # best 0.4 at epoch 1, then 0.6, 0.6 and 0.69: patience 3 spent
    (ResumableEarlyStopping, 2, 2),  # a later stage's first epoch is 2: best 0.6 there, two more epochs
])
def test_early_stopping_patience_survives_a_resume(early_stopping, stage_start, epochs_run):
    x, y = np.zeros((4, 4), "float32"), np.zeros((4,), "int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    stop = early_stopping(monitor="val_loss", mode="min", patience=3)  # val_loss stays log(2), 0.69
    stop.resumed_values, stop.stage_start = [0.5, 0.4, 0.6, 0.6], stage_start
    history = model.fit(x, y, validation_data=(x, y), initial_epoch=4, epochs=12, callbacks=[stop], verbose=0)
    assert len(history.history["val_loss"]) == epochs_run


def test_history_row_cut_by_a_kill_is_ignored(tmp_path):
    from catdog.history import read_history

    path = tmp_path / "history.csv"
    path.write_text("epoch,accuracy,val_accuracy\n0,0.5,0.6\n1,0.7,0.7\n1,0.8,0.75\n2,0.9,\n")
    assert read_history(path) == {"accuracy": [0.5, 0.8], "val_accuracy": [0.6, 0.75]}


def tiny_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])


def test_checkpoint_is_replaced_atomically(tmp_path, monkeypatch):
    model = tiny_model()
    model.compile("sgd", "mse")
    path = tmp_path / "best.keras"
    callback = AtomicModelCheckpoint(str(path), save_best_only=False)
    callback.set_model(model)
    callback.on_epoch_end(0, {})
    first = path.read_bytes()

    def crash(*args, **kwargs):
        Path(callback._partial_path).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        callback.on_epoch_end(1, {})
    assert path.read_bytes() == first
    keras.models.load_model(path)


def test_partial_checkpoint_left_by_a_kill_never_replaces_the_best(tmp_path):
    model = tiny_model()
    model.compile("sgd", "mse")
    path = tmp_path / "best.keras"
    callback = AtomicModelCheckpoint(str(path), monitor="val_accuracy", mode="max", save_best_only=True)
    callback.set_model(model)
    callback.on_epoch_end(0, {"val_accuracy": 0.9})
    best = path.read_bytes()
    stale = tmp_path / ".partial-best.keras"
    stale.write_bytes(b"half a file")  # what a save killed in an earlier run leaves behind
    callback.on_epoch_end(1, {"val_accuracy": 0.5})  # no improvement: nothing is saved
    assert path.read_bytes() == best and not stale.exists()


def test_lambda_layers_are_refused_unless_allowed(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(CatdogError, match="safe_mode=false"):
        load_classifier(path)
    loaded, _ = load_classifier(path, safe_mode=False)
    np.testing.assert_allclose(loaded.predict(np.ones((1, 4)), verbose=0), 2 * np.ones((1, 4)))


def test_evaluate_cli_refuses_lambda_checkpoint(tmp_path, tiny_data):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x[:, 0, 0, :2])(inputs))
    model.save(tmp_path / "m.keras")
    result = run_cli("catdog.evaluate", f"ckpt_path={tmp_path / 'm.keras'}", f"data_dir={tiny_data / 'train'}",
                     f"hydra.run.dir={tmp_path / 'eval'}", timeout=120)
    assert result.returncode == 1 and "safe_mode=false" in result.stdout + result.stderr


def test_json_is_replaced_atomically(tmp_path, monkeypatch):
    from catdog import io

    path = tmp_path / "metrics.json"
    io.write_json(path, {"epochs": 1})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(io.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        io.write_json(path, {"epochs": 2})
    assert json.loads(path.read_text()) == {"epochs": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
