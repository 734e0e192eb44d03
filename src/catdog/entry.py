"""The shared shape of catdog's command-line entry points: Hydra's main plus one-paragraph errors."""

import functools
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from catdog.training import distributed  # its resolvers, for conf/hydra/train.yaml; ranks
from catdog.utils.config import config_dir, is_finished, parallel_jobs
from catdog.utils.io import write_text
from catdog.errors import CatdogError

log = logging.getLogger("catdog")
SWEEP_ONLY = ("hydra.mode=", "hydra.sweep.", "hydra.sweeper", "hydra/sweeper", "hydra.launcher", "hydra/launcher",
              "hydra.run.")


# launchers that start every job in a fresh interpreter of its own (`python -m submitit.core._submit`)
OWN_PROCESS_LAUNCHERS = ("hydra_plugins.hydra_submitit_launcher.",)


def runs_in_this_process() -> bool:
    """Whether the current job runs here: a single run, or a multirun job that its launcher started in a process
    of its own (submitit), Keras not yet imported; other multirun jobs go to `run_job_in_fresh_process`."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return True
    return str(hydra_cfg.launcher.get("_target_", "")).startswith(OWN_PROCESS_LAUNCHERS) and "keras" not in sys.modules


def earlier_job(cfg) -> tuple[str, Path]:
    """("finished" | "interrupted" | "new", the job's directory) for a multirun job whose sweep directory a
    rerun of a killed sweep points at again."""
    run = Path(HydraConfig.get().runtime.output_dir)
    if is_finished(run):
        return "finished", run
    if cfg.get("ckpt_path") is None and (run / "checkpoints" / "last.keras").is_file():
        return "interrupted", run
    return "new", run


def run_job_in_fresh_process(module: str, backend: str, resume=None):
    """Run the current multirun job as a single run of `python -m module` in a new process (resuming the
    run in `resume`, a run directory, when given).

    A Keras backend is fixed once imported, so every job of a sweep gets its own interpreter; a
    crashed job then only fails itself. Returns the job's metrics.json, if it wrote one.
    """
    hydra_cfg = HydraConfig.get()
    out = Path(hydra_cfg.runtime.output_dir)
    jobs, cores = hydra_cfg.launcher.get("n_jobs"), parallel_jobs(1)
    if isinstance(jobs, int) and jobs > cores:
        log.warning("hydra.launcher.n_jobs=%d runs more jobs at once than this machine has cores (%d): each job gets "
                    "a share of a core. hydra/launcher=parallel runs one per 4 cores.", jobs, cores)
    overrides = list(hydra_cfg.overrides.task)
    hydra_overrides = [o for o in hydra_cfg.overrides.hydra if not o.startswith(SWEEP_ONLY)]  # searchpath, logging
    config_dirs = [f"--config-dir={source.path.removeprefix('file://')}"
                   for source in hydra_cfg.runtime.config_sources if source.provider == "command-line"]
    command = [sys.executable, "-m", module, *config_dirs, f"--config-name={hydra_cfg.job.config_name}",
               *overrides, *hydra_overrides, f"hydra.run.dir={out}", "hydra.mode=RUN",
               *([f"ckpt_path={resume}"] if resume else [])]
    code = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": backend}).returncode
    if code != 0:
        raise CatdogError(f"Job {hydra_cfg.job.num} ({' '.join(overrides)}) failed with exit code {code}; see {out}.")
    metrics = out / "metrics.json"
    return json.loads(metrics.read_text()) if metrics.is_file() else None


def resume_hint(config_name: str, run_dir) -> str:
    """" To resume: <this command with ckpt_path=run_dir>", or "" without a run to resume."""
    if run_dir is None:
        return ""
    hydra_cfg = HydraConfig.get()
    given = list(hydra_cfg.overrides.task) if hydra_cfg.mode == RunMode.MULTIRUN else sys.argv[1:]  # a submitit job's
    args = [a for a in given if not a.startswith(("ckpt_path=", "hydra.run.dir="))]
    return f" To resume: python -m catdog.{config_name} {' '.join(args)} ckpt_path={run_dir}"


def result_table(metrics: dict, keys) -> str:
    """The run's result as Lightning prints its test metrics: a small table of `keys` that `metrics` holds."""
    rows = [(k, metrics[k]) for k in keys if isinstance(metrics.get(k), (int, float, str))]
    if not rows:
        return "Result: (no metrics)"
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}" for k, v in rows]
    return "Result:\n" + "\n".join(lines)


def shown(path: Path) -> str:
    """`path` relative to the working directory when it lies below it, as a user typed it."""
    return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd().resolve()) else str(path)


def writes_the_run(cfg) -> bool:
    """Whether this process writes the run directory: rank 0 of a run of several (`trainer.process_id`, or the
    srun step's), or the only one."""
    trainer = cfg.get("trainer") or {}
    return distributed.rank(trainer.get("num_processes"), trainer.get("process_id")) == 0


def keep_only_the_log(run: Path) -> None:
    """A run that failed before it wrote anything keeps only its log: no `.hydra/` of a run that never ran. A
    sweep's job keeps its `.hydra/` (its overrides name its failure in the sweep's report)."""
    if (run.parent / "multirun.yaml").is_file():
        return
    if run.is_dir() and {p.name for p in run.iterdir()} <= {".hydra", ".lock", f"{HydraConfig.get().job.name}.log"}:
        shutil.rmtree(run / ".hydra", ignore_errors=True)
        (run / ".lock").unlink(missing_ok=True)


def write_details(run: Path, details: dict) -> None:
    """An error's full lists, one file each, into the run directory (its message names the first few)."""
    for name, lines in details.items():
        write_text(run / name, "\n".join(lines) + "\n")
        log.error("All %d in %s", len(lines), run / name)


def hydra_entry(config_name: str):
    """`@hydra.main` over catdog's conf/, printing a CatdogError as one paragraph instead of a traceback, and
    where the outputs are at the end (once: a job run in a fresh process prints its own)."""

    def decorate(task):
        @functools.wraps(task)
        def guarded(cfg):
            run = Path(HydraConfig.get().runtime.output_dir)
            try:
                result = task(cfg)
                if runs_in_this_process():
                    log.info("Outputs in %s", shown(run))
                return result
            except CatdogError as exc:
                log.error("%s", str(exc) + resume_hint(config_name, getattr(exc, "run_dir", None)))
                if runs_in_this_process() and writes_the_run(cfg):
                    keep_only_the_log(run)
                    write_details(run, exc.details)
                if HydraConfig.get().mode == RunMode.MULTIRUN:
                    raise  # the launcher records the failed job and the sweep goes on
                sys.exit(getattr(exc, "exit_code", 1))
            except KeyboardInterrupt:  # a second Ctrl-C, or one outside the training loop
                run = Path(HydraConfig.get().runtime.output_dir)
                resumable = (run / "checkpoints" / "last.keras").is_file() and not (run / "metrics.json").is_file()
                log.error("Interrupted.%s", resume_hint(config_name, run if resumable else None))
                sys.exit(130)

        return hydra.main(version_base="1.3", config_path=config_dir(), config_name=config_name)(guarded)

    return decorate
