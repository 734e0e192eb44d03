"""Sweeps on a cluster engine: Hydra's submitit launcher, run here on this machine (submitit_local) and composed
into an sbatch script for Slurm (submitit_slurm)."""

import json
import os

import pytest
import yaml

from helpers import run_cli, run_main

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install hydra-submitit-launcher")


@pytest.mark.slow
def test_a_submitit_local_sweep_runs_each_job_in_its_own_process_and_a_failed_job_fails_alone(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("catdog.train", "-m", "hydra/launcher=submitit_local", "backend=jax,tensorflow", "seed=0,-1",
                     "experiment=model1", "trainer.fast_dev_run=1", f"dataset.root={tiny_data}",
                     "dataset.image_size=[32,32]", "dataset.batch_size=4", "trainer.verbose=0",
                     f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}", timeout=600)
    assert result.returncode == 1 and "seed=-1: must be a non-negative integer" in result.stderr, result.stderr[-3000:]
    jobs = {}
    for job in sorted(p for p in sweep.iterdir() if p.name.isdigit()):
        overrides = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))
        jobs[overrides["backend"], overrides["seed"]] = job
    assert len(jobs) == 4
    for backend in ("jax", "tensorflow"):
        assert not (jobs[backend, "-1"] / "metrics.json").exists()  # failed, alone
        job = jobs[backend, "0"]
        provenance = json.loads((job / "provenance.json").read_text())
        assert (provenance["backend"], provenance["tensorflow_imported"]) == (backend, backend == "tensorflow")
        # trained in the process submitit started for it, not in a second one
        assert yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]["mode"] == "MULTIRUN"
    logs = [p for p in (sweep / ".submitit").glob("*/*_0_log.out")]
    assert len({p.parent.name for p in logs}) == 4  # four jobs, four processes (a local job's id is its pid)
    assert sum("catdog.trainer" in p.read_text() for p in logs) == 2

    report = run_main("catdog.report", str(sweep))
    assert report.returncode == 0, report.stderr[-2000:]
    text = (sweep / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| model1 ")]
    assert sorted(row.split(" | ")[3] for row in rows) == ["jax", "tensorflow"]
    failed = {jobs[b, "-1"].name for b in ("jax", "tensorflow")}
    assert f"Failed (no metrics.json): {', '.join(sorted(failed))}" in text


def test_submitit_slurm_settings_make_the_sbatch_script_of_the_docs(tmp_path, monkeypatch):
    """As far as this machine allows: the launcher built from docs/scale_out.md's settings, and the script it
    would give sbatch (a stand-in `srun` on PATH; submitting is stopped before sbatch)."""
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from catdog.utils.config import config_dir

    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{srun.parent}:{os.environ['PATH']}")
    settings = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=120",
                "hydra.launcher.nodes=1", "hydra.launcher.tasks_per_node=4", "hydra.launcher.gpus_per_node=4",
                "hydra.launcher.cpus_per_task=8", "hydra.launcher.mem_gb=128",
                "+hydra.launcher.additional_parameters={account:vision}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("train", overrides=settings, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    executors = []
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", lambda self, *a: executors.append(self) or [])
    assert launcher.launch([["backend=jax"], ["backend=tensorflow"]], initial_job_idx=0) == []
    script = executors[0]._executor._make_submission_file_text("python -m submitit.core._submit", "0")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=120", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=4",
                 "#SBATCH --gpus-per-node=4", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=128GB",
                 "#SBATCH --account=vision"):
        assert line in script, script
    assert "srun" in script and (tmp_path / "sweep").is_dir()
