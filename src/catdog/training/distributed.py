"""Multi-process data parallel on JAX: `keras.distribution.initialize` (JAX's distributed runtime).

Something else starts the N processes of a run (two shells, Slurm's `srun`, a cluster's job runner) and tells
each one how many there are, its rank and rank 0's HOST:PORT: `trainer.num_processes`, `trainer.process_id`,
`trainer.coordinator`, or, for what is not given, the variables of the `srun` step it runs in. Every process
trains on its shard of every batch (`catdog.data.loaders.ArrayBatches`); rank 0 alone writes (checkpoints,
logs, metrics, Hydra's files) and, once the fit is over, tests and reports alone. Importing this module
imports neither Keras nor JAX.
"""

import contextlib
import os
from dataclasses import dataclass

from omegaconf import OmegaConf

from catdog.errors import CatdogError

SLURM_STEP = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")  # JAX's test


@dataclass(frozen=True)
class Processes:
    """The processes of one run: how many, this one's rank, and rank 0's HOST:PORT (None: JAX derives it from
    the Slurm step: its first node, a port from the job id)."""

    count: int = 1
    index: int = 0
    coordinator: str | None = None


def slurm_step(environ=None) -> bool:
    """Whether this process is a task of an `srun` step."""
    environ = os.environ if environ is None else environ
    return all(name in environ for name in SLURM_STEP)


def rank(num_processes=None, process_id=None, environ=None) -> int:
    """This process's rank: `process_id`, else SLURM_PROCID in an `srun` step (unless `num_processes` is 1),
    else 0."""
    environ = os.environ if environ is None else environ
    if process_id is not None:
        return int(process_id)
    return int(environ["SLURM_PROCID"]) if slurm_step(environ) and num_processes != 1 else 0


def processes(num_processes=None, process_id=None, coordinator=None, environ=None) -> Processes:
    """The run's processes from the trainer's keys, the `srun` step's variables filling in what they leave out."""
    environ = os.environ if environ is None else environ
    slurm = slurm_step(environ)
    for key, value in (("num_processes", num_processes), ("process_id", process_id)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise CatdogError(f"trainer.{key}={value!r}: must be a non-negative integer.")
    count = num_processes if num_processes is not None else int(environ["SLURM_NTASKS"]) if slurm else 1
    index = rank(num_processes, process_id, environ)
    if count < 1 or index >= count:
        raise CatdogError(f"trainer.process_id={index} with trainer.num_processes={count}: the rank must be below "
                          "the number of processes.")
    if count == 1:
        return Processes()
    if coordinator is None and not slurm:
        raise CatdogError(f"trainer.num_processes={count} needs trainer.coordinator=HOST:PORT, where process 0 "
                          "listens (the same on every process), unless the processes are the tasks of an srun step.")
    if coordinator is not None and not str(coordinator).rpartition(":")[2].isdigit():
        raise CatdogError(f"trainer.coordinator={coordinator!r}: must be HOST:PORT, e.g. 127.0.0.1:12355.")
    return Processes(count, index, None if coordinator is None else str(coordinator))


def initialize(run: Processes) -> None:
    """Join the run's other processes; before any JAX computation. On CPU, processes exchange gradients with
    Gloo (JAX's `jax_cpu_collectives_implementation`)."""
    import jax
    import keras

    if jax.distributed.is_initialized():
        raise CatdogError("This process already joined a multi-process run; start a new process for another one.")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        keras.distribution.initialize(run.coordinator, run.count, run.index)
    except (RuntimeError, ValueError) as exc:
        raise CatdogError(f"Process {run.index} of {run.count} could not join the run at "
                          f"{run.coordinator or 'the srun step'} ({' '.join(str(exc).split())}).") from exc


def data_parallel(devices_per_process: int, run: Processes):
    """keras.distribution.DataParallel over the first `devices_per_process` devices of every process (GPUs where
    JAX has them); the data loaders shard the batches themselves (`auto_shard_dataset=False`)."""
    import jax
    import keras

    local = jax.local_devices()
    if len(local) < devices_per_process:
        hint = (f"On CPU, XLA_FLAGS=--xla_force_host_platform_device_count={devices_per_process} makes "
                f"{devices_per_process} host devices." if local[0].platform == "cpu" else
                "CUDA_VISIBLE_DEVICES sets the GPUs a process sees; in an srun step JAX gives each task one "
                "GPU (docs/scale_out.md).")
        raise CatdogError(f"trainer.devices={devices_per_process}, but only {len(local)} device(s) are visible to "
                          f"this process ({local}). {hint}")
    chosen = [d for p in range(run.count)
              for d in sorted((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)[
                  :devices_per_process]]
    return keras.distribution.DataParallel(devices=[f"{d.platform}:{d.id}" for d in chosen],
                                           auto_shard_dataset=False)


def gather_text(text: str) -> list[str]:
    """Every process's `text`, by rank, on every process (a collective: every process calls it)."""
    import numpy as np
    from jax.experimental import multihost_utils

    data = np.frombuffer(text.encode().ljust(4096, b"\0")[:4096], np.uint8)
    gathered = np.asarray(multihost_utils.process_allgather(data)).reshape(-1, 4096)
    return [bytes(row).rstrip(b"\0").decode() for row in gathered]


def batch_shard() -> tuple[int, int, int] | None:
    """(this process's rank, processes, devices) of the Keras distribution in force, or None without one: the
    share of every batch that this process's loader yields."""
    import keras

    distribution = keras.distribution.distribution()
    if distribution is None:
        return None
    import jax
    import numpy as np

    return jax.process_index(), jax.process_count(), int(np.prod(distribution.device_mesh.shape))


@contextlib.contextmanager
def local_scope():
    """No Keras distribution within: what is created here (a saved file's helper variables, a copy of the model)
    lives on this process's devices alone, so rank 0 can do it without the others."""
    import keras

    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)


def shutdown() -> None:
    """Leave the run, every process together (a barrier): what follows runs on each process alone."""
    import jax

    jax.distributed.shutdown()


def _on_rank0(num_processes, process_id, value, otherwise=None):
    return value if rank(num_processes, process_id) == 0 else otherwise


if not OmegaConf.has_resolver("catdog_on_rank0"):  # conf/hydra/train.yaml: ranks > 0 write no Hydra files
    OmegaConf.register_new_resolver("catdog_on_rank0", _on_rank0)
