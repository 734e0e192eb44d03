"""The learning-rate finder: Trainer.lr_find and python -m catdog.tune lr_find."""

import json

import numpy as np
import pytest

from catdog.data import ImageFolderDataModule
from catdog.models import build_model
from catdog.training import Trainer

from helpers import make_image_folders, run_main


@pytest.mark.backends
def test_lr_find_suggests_a_rate_that_trains_the_toy_task_and_gives_the_weights_back(tmp_path):
    data = ImageFolderDataModule(root=str(make_image_folders(tmp_path / "data", train=40, val=4)),
                                 image_size=(32, 32), batch_size=8)
    data.setup()
    task = build_model("cnn_scaled", (32, 32), 2)  # inputs scaled to [-1, 1]: Adam trains it from 1e-4 to 1e-2
    before = [w.copy() for w in task.get_weights()]
    found = Trainer(max_epochs=1, verbose=0).lr_find(task, data, num_training=60)
    assert 1e-4 <= found["suggestion"] <= 1e-2, found["suggestion"]
    assert len(found["lrs"]) == len(found["losses"]) <= 60
    assert all(np.array_equal(a, b) for a, b in zip(task.get_weights(), before))


def test_the_tune_command_writes_the_sweep_and_states_the_rate(tmp_path):
    data = make_image_folders(tmp_path / "data", train=20, val=4)
    out = tmp_path / "tune"
    result = run_main("catdog.tune", "lr_find", "experiment=model3", f"dataset.root={data}",
                      "dataset.image_size=[32,32]", "dataset.batch_size=8", "lr_find.num_training=20",
                      f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads((out / "lr_find.json").read_text())
    assert (out / "lr_find.png").is_file() and len(found["losses"]) <= 20
    if found["suggestion"] is not None:
        assert f"model.optimizer.learning_rate={found['suggestion']:.2e}" in result.stdout + result.stderr
