"""Multi-process data parallel on JAX: two processes on 127.0.0.1, one CPU device each, against one process."""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from catdog.backend import jax_accelerator, without_cpu_flags
from catdog.data.loaders import ArrayBatches
from catdog.training.distributed import processes
from catdog.errors import CatdogError

from helpers import REAL_DATA, make_image, run_python

TESTS = Path(__file__).parent
TOLERANCE = 0.02  # validation accuracy, per epoch, of two processes against one: 3 of the 160 images


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def real_subset(root, train=300, val=(101, 100)):
    """`train` photos of each class, and `val` (cats, dogs) validation photos, linked from REAL_DATA; generated
    images of the same counts where the photos are absent (so CI always runs the two-process test)."""
    rng = np.random.default_rng(0)
    for split, counts in (("train", (train, train)), ("validation", val)):
        for label, (name, n) in enumerate(zip(("cats", "dogs"), counts)):
            (root / split / name).mkdir(parents=True)
            if not REAL_DATA.is_dir():
                for i in range(n):
                    make_image(root / split / name / f"{name}.{i}.jpg", label, rng)
                continue
            for src in sorted((REAL_DATA / split / name).iterdir())[:n]:
                (root / split / name / src.name).symlink_to(src)
    return root


def train_processes(args, envs, timeout=300) -> list[subprocess.CompletedProcess]:
    """`python -m catdog.train args` as one process per environment in `envs`; their results, in that order."""
    base = {**os.environ, "PYTHONPATH": str(TESTS), "PYTHONUNBUFFERED": "1"}
    base.pop("KERAS_BACKEND", None)
    started = [subprocess.Popen([sys.executable, "-m", "catdog.train", *args, *extra], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env={**base, **env}) for extra, env in envs]
    outputs = [p.communicate(timeout=timeout)[0] for p in started]
    return [subprocess.CompletedProcess(p.args, p.returncode, out) for p, out in zip(started, outputs)]


def explicit(count):
    """The trainer keys of `count` processes on 127.0.0.1."""
    port = free_port()
    return [([f"trainer.num_processes={count}", f"trainer.process_id={r}", f"trainer.coordinator=127.0.0.1:{port}"],
             {}) for r in range(count)]


def srun_step(count):
    """What srun tells the `count` tasks of a step on one node, 127.0.0.1; JAX takes the coordinator's port
    from the job id (61440 + id % 4096)."""
    for port in np.random.default_rng().permutation(np.arange(61440, 65536)):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", int(port))) != 0:
                break
    job = {"SLURM_JOB_ID": str(int(port) - 61440), "SLURM_STEP_NODELIST": "127.0.0.1",
           "SLURM_NTASKS": str(count)}
    return [([], {**job, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)}) for r in range(count)]


def history(run) -> list[dict]:
    with open(run / "history.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_two_processes_learn_like_one_see_each_photo_once_and_resume_from_rank_0(tmp_path):
    data = real_subset(tmp_path / "real")  # 600 training photos: 30 full batches; 161 validation: one padded
    common = [f"dataset.root={data}", "dataset.image_size=[32,32]", "dataset.batch_size=20", "experiment=model3",
              "augment=none", "trainer.max_epochs=3", "backend=jax", "trainer.verbose=0",
              f"paths.cache_dir={tmp_path / 'cache'}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("KERAS_BACKEND", None)
    one = subprocess.Popen([sys.executable, "-m", "catdog.train", *common, "callbacks.error_analysis=null",
                            f"hydra.run.dir={tmp_path / 'one'}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env=env)  # the reference, alongside the first two
    seen = tmp_path / "seen"
    recorded = ["dataset._target_=distributed_helpers.RecordingDataModule", f"+dataset.record_dir={seen}"]
    stop = ["+callbacks.stop._target_=distributed_helpers.SigtermAfter", "+callbacks.stop.epochs=1"]
    step = srun_step(2)  # as Slurm's tasks, with the run directory of docs/scale_out.md's sbatch script
    runs = tmp_path / "runs"
    run = runs / f"slurm-{step[0][1]['SLURM_JOB_ID']}"
    stopped = train_processes([*common, *recorded, *stop, f"hydra.run.dir={run}"], step)
    assert [r.returncode for r in stopped] == [143, 143], stopped[0].stdout[-3000:] + stopped[1].stdout[-3000:]
    resumed = train_processes([*common, *recorded, f"ckpt_path={run}"], explicit(2))  # the run directory follows
    assert [r.returncode for r in resumed] == [0, 0], resumed[0].stdout[-3000:] + resumed[1].stdout[-3000:]
    assert "Resuming from" in resumed[1].stdout and "after epoch 1" in resumed[1].stdout  # rank 0's checkpoint
    assert one.wait(timeout=300) == 0, one.stdout.read()[-3000:]

    assert [p.name for p in runs.iterdir()] == [run.name]  # one run directory, which rank 0 alone wrote
    log = (run / "train.log").read_text()
    assert "(process 0 of 2)" in log and "(process 1 of 2)" not in log
    assert "trainer.process_id=0" in (run / ".hydra" / "overrides.yaml").read_text()
    assert (run / "confusion.png").is_file()  # rank 0's predictions, alone, after the fit
    provenance = json.loads((run / "provenance.json").read_text())
    assert (provenance["backend"], provenance["processes"], provenance["devices"]) == ("jax", 2, 1)

    two, reference = history(run), history(tmp_path / "one")
    assert [r["epoch"] for r in two] == [0, 1, 2]
    for mine, theirs in zip(two, reference):
        assert abs(mine["val_accuracy"] - theirs["val_accuracy"]) <= TOLERANCE, (two, reference)
    metrics = json.loads((run / "metrics.json").read_text())
    expected = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert abs(metrics["best_val_accuracy"] - expected["best_val_accuracy"]) <= TOLERANCE
    assert metrics["num_images"] == expected["num_images"] == {"train": 600, "val": 161, "test": 40}
    assert metrics["test_accuracy"] == pytest.approx(expected["test_accuracy"], abs=0.05)  # rank 0 alone, 40 photos

    reads = {}  # the order's pass -> (batch, rank) -> rows; Keras reads a first batch to build, then reshuffles
    for rank in (0, 1):
        for line in (seen / f"rank{rank}.jsonl").read_text().splitlines():
            entry = json.loads(line)
            reads.setdefault(entry["epoch"], {})[entry["batch"], rank] = entry["rows"]
    epochs = [shards for shards in reads.values() if len(shards) == 60]  # 30 batches of both ranks: an epoch
    assert len(epochs) == 3
    for shards in epochs:
        assert all(len(rows) == 10 for rows in shards.values())
        assert sorted(row for rows in shards.values() for row in rows) == list(range(600))


@pytest.mark.slow
def test_a_run_directory_in_use_stops_every_process_of_a_run(tmp_path):
    import fcntl

    data = real_subset(tmp_path / "real", train=20, val=(10, 10))
    run = tmp_path / "run"
    run.mkdir()
    with open(run / ".lock", "a+") as held:  # another catdog run writes there
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 1")
        held.flush()
        results = train_processes([f"dataset.root={data}", "dataset.image_size=[32,32]", "dataset.batch_size=10",
                                   "experiment=model3", "augment=none", "backend=jax", "trainer.verbose=0",
                                   f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run}"], explicit(2),
                                  timeout=240)
    for rank, result in enumerate(results):
        assert result.returncode == 1, (rank, result.stdout[-3000:])
        assert "is in use by another catdog run (pid 1)" in result.stdout, (rank, result.stdout[-3000:])
    assert not (run / "checkpoints").exists()


def test_sharded_batches_cover_every_row_once_padded_with_zero_weights():
    x, y = np.arange(23, dtype="float32").reshape(23, 1, 1, 1), np.arange(23) % 2
    shards = [ArrayBatches(x, y, 8, seed=3, shard=(rank, 2, 4)) for rank in (0, 1)]
    shards[1].class_weight = {0: 2.0}
    for epoch in range(2):
        counted = []
        for index in range(len(shards[0])):  # 8, 8, then 7 rows padded to 8
            (x0, _, w0), (x1, y1, w1) = shards[0][index], shards[1][index]
            assert len(x0) == len(x1) == 4 and set(x0.ravel()).isdisjoint(x1.ravel()) or index == 2
            counted += list(x0.ravel()[w0 > 0]) + list(x1.ravel()[w1 > 0])
            assert np.array_equal(w1[w1 > 0], np.where(y1[w1 > 0] == 0, 2.0, 1.0))
        assert sorted(counted) == list(range(23)) and w1[-1] == 0  # the padding: a repeat, counted nowhere
        for s in shards:
            s.on_epoch_end()
    whole = ArrayBatches(x, y, 8, seed=3, first_epoch=2)
    assert np.array_equal(np.concatenate([s.rows(0)[0] for s in shards]), whole.rows(0)[0])  # the same order


def test_processes_come_from_the_trainer_keys_or_an_srun_step():
    assert processes(environ={}) == processes(1, 0, environ={}) and processes(environ={}).count == 1
    run = processes(2, 1, "127.0.0.1:12355", environ={})
    assert (run.count, run.index, run.coordinator) == (2, 1, "127.0.0.1:12355")
    step = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_NTASKS": "4", "SLURM_PROCID": "3",
            "SLURM_LOCALID": "1"}
    assert processes(environ=step) == type(run)(4, 3, None)  # JAX derives the coordinator from the step
    assert processes(1, environ=step).count == 1  # the trainer's keys win
    for kwargs, message in (({"num_processes": 2}, "needs trainer.coordinator=HOST:PORT"),
                            ({"num_processes": 2, "process_id": 2, "coordinator": "h:1"}, "must be below"),
                            ({"process_id": 1}, "must be below"),
                            ({"num_processes": 2, "coordinator": "h"}, "must be HOST:PORT"),
                            ({"num_processes": -1}, "non-negative integer")):
        with pytest.raises(CatdogError, match=message):
            processes(**kwargs, environ={})


def test_ranks_above_zero_write_no_hydra_files(monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    import catdog.training.distributed  # noqa: F401  (its resolvers)
    from catdog.utils.config import config_dir

    def hydra_node(*overrides):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = "/out"
        return cfg.hydra

    try:
        zero, one = hydra_node("trainer.process_id=0"), hydra_node("trainer.process_id=1")
        assert (zero.output_subdir, zero.job_logging.handlers.file.filename) == (".hydra", f"/out/{zero.job.name}.log")
        assert (one.output_subdir, one.job_logging.handlers.file.filename) == (None, "/dev/null")
        for name, value in {"SLURM_JOB_ID": "42", "SLURM_STEP_NODELIST": "n1", "SLURM_NTASKS": "2",
                            "SLURM_PROCID": "1", "SLURM_LOCALID": "1"}.items():
            monkeypatch.setenv(name, value)
        assert hydra_node().output_subdir is None  # task 1 of an srun step
        assert hydra_node("trainer.num_processes=1").output_subdir == ".hydra"  # one process, whatever Slurm says
    finally:
        GlobalHydra.instance().clear()


def test_the_accelerator_is_known_before_jax_starts_and_xla_cpu_flags_drop_out():
    assert jax_accelerator({"JAX_PLATFORMS": "cuda,cpu"}) == "cuda"
    assert jax_accelerator({"JAX_PLATFORMS": "cpu"}) is None
    flags = "--xla_cpu_experimental_ynn_fusion_type= --xla_force_host_platform_device_count=2"
    assert without_cpu_flags(flags) == "--xla_force_host_platform_device_count=2"


@pytest.mark.slow
def test_xla_cpu_flags_and_layers_stay_off_where_jax_runs_on_a_gpu():
    script = """
import os
os.environ["JAX_PLATFORMS"] = "cuda"
from catdog.backend import use_backend
use_backend("jax", "--xla_cpu_experimental_ynn_fusion_type=")
print("FLAGS", repr(os.environ.get("XLA_FLAGS", "")))
import jax
jax.config.update("jax_platforms", "cpu")  # this machine's, before JAX starts
jax.default_backend = lambda: "gpu"  # what JAX answers on a GPU
from catdog.models import build_model
from catdog.models.layers import leaf_layers
task = build_model("cnn_small", (32, 32), 2)
print("FAST", sum(type(layer).__module__.startswith("catdog") for layer in leaf_layers(task)))
"""
    out = run_python(script, backend="jax", env={"XLA_FLAGS": ""})
    assert "FLAGS ''" in out and "FAST 0" in out, out
