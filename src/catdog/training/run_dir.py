"""The run directory: one writer at a time (its lock), what it ran on (its provenance), and whether it is
finished (a finished run is never restarted or overwritten)."""

import fcntl
import os
import resource
import time
from pathlib import Path

import keras

from catdog.backend import tensorflow_imported
from catdog.errors import CatdogError
from catdog.training.strategy import platform
from catdog.utils.config import is_finished
from catdog.utils.io import printable, write_json

FINISHED = ".finished"


class RunExists(CatdogError):
    """Training into a folder that holds a run; `run_dir` is where `ckpt_path` would resume from."""

    def __init__(self, message, run_dir):
        super().__init__(message)
        self.run_dir = run_dir


class RunDirectory:
    """`path`, locked while a run writes there: a writer in another process is refused. Within one process the
    lock is shared, so a notebook can fit again after a failed fit."""

    held: dict = {}

    def __init__(self, path):
        self.path = Path(path)
        self._lock_file = None

    def refuse_new_run(self, last_checkpoint, epochs_done) -> None:
        """A fresh fit into a folder that holds a run's checkpoint is refused."""
        if is_finished(self.path):
            raise RunExists(f"{self.path} holds a finished run, which is never restarted or overwritten; write this "
                            "run elsewhere (another hydra.run.dir).", None)
        raise RunExists(f"{self.path} holds an interrupted run (after epoch {epochs_done}), which is never "
                        f"overwritten; resume it with ckpt_path, or write this run elsewhere.", self.path)

    def lock(self) -> None:
        lock = (self.path.resolve() / ".lock")
        if lock in self.held and not self.held[lock].closed:
            return
        lock.parent.mkdir(parents=True, exist_ok=True)
        file = open(lock, "a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            file.close()
            raise CatdogError(f"{self.path} is in use by another catdog run ({holder}); two runs never share a run "
                              "directory. Wait for it, or write this run elsewhere (another hydra.run.dir).") from None
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()}")
        file.flush()
        self.held[lock] = self._lock_file = file

    def release(self) -> None:
        """Give the lock back; a finished run keeps no lock file."""
        if self._lock_file is None:
            return
        lock = Path(self._lock_file.name)
        self.held.pop(lock, None)
        if is_finished(self.path):
            lock.unlink(missing_ok=True)
        self._lock_file.close()  # closing the file releases the lock
        self._lock_file = None

    def mark_finished(self) -> None:
        write_json(self.path / FINISHED, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def describe(trainer, datamodule) -> str:
    """One line on what runs where: backend, processor, precision, devices, and the data."""
    from catdog.utils.run_info import cpu_info

    where = platform()
    if where == "cpu":
        cpu = cpu_info()
        where = f"cpu: {cpu['model']}, {cpu['cores']} cores, {' '.join(cpu['flags']) or 'no avx2'}"
    classes = [printable(c) for c in datamodule.class_names]
    named = ", ".join(classes[:8]) + (f", ... ({len(classes)} in all)" if len(classes) > 8 else "")
    sizes = ", ".join(f"{n} {split}" for split, n in datamodule.sizes().items())
    choice = trainer.precision_choice
    precision = f"{choice.policy} (auto: {choice.reason})" if choice.auto else choice.policy
    return (f"Run: backend {keras.backend.backend()} ({where}), precision {precision}, {trainer.devices} "
            f"device(s) x {trainer.strategy.processes.count} process(es); data {getattr(datamodule, 'name', '')}: "
            f"{sizes} images, {len(classes)} classes ({named})")


def home_relative(path):
    """`path` with the home directory as `~`: a run's record names no user's home."""
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if path and home != "/" and path.startswith(home + os.sep) else path


def provenance(trainer) -> dict:
    """Where and how a run ran: backend, devices, precision, flags, memory, versions, CPU."""
    from catdog.utils.run_info import cpu_info, package_versions, peak_rss_mb

    return {"backend": keras.backend.backend(), "devices": trainer.devices,
            "processes": trainer.strategy.processes.count, "platform": platform(), "precision": trainer.precision,
            "precision_reason": trainer.precision_choice.reason,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "jax_compilation_cache_dir": home_relative(os.environ.get("JAX_COMPILATION_CACHE_DIR")),
            "feature_runtime": getattr(trainer.feature_cache, "resolved_runtime", None),
            "feature_runtime_reason": getattr(trainer.feature_cache, "runtime_reason", None),
            "peak_rss_mb": peak_rss_mb(), "peak_rss_children_mb": peak_rss_mb(resource.RUSAGE_CHILDREN),
            "tensorflow_imported": tensorflow_imported(),
            "run_seconds": time.perf_counter() - trainer.created, "versions": package_versions(),
            "cpu": cpu_info()}
