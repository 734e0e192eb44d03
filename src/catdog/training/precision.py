"""The run's dtype policy (Lightning's precision plugin): set once, before the task is built, and checked
against the hardware and the task."""

import logging

import keras

from catdog.errors import CatdogError
from catdog.training.strategy import platform

log = logging.getLogger("catdog.trainer")

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16", "float16", "float64")  # Keras' dtype policies


def set_precision(precision: str) -> None:
    """Make `precision` Keras' global dtype policy (before any JAX computation: a run of several processes
    joins after it, and `warn_if_slow` asks the devices)."""
    if precision not in PRECISIONS:
        raise CatdogError(f"trainer.precision={precision!r}: must be one of {', '.join(PRECISIONS)}.")
    keras.config.set_dtype_policy(precision)


def warn_if_slow(precision: str) -> None:
    if precision != "float32":
        _check_fits(precision)


def check_task(task, precision: str) -> None:
    policy = task.dtype_policy.name
    if policy != precision:
        raise CatdogError(f"The task was built with dtype policy {policy}, but trainer.precision={precision}: "
                          "build the Trainer before the task.")


def _check_fits(precision: str) -> None:
    """Warn where the dtype policy is slow on this hardware: float16 on a CPU, bfloat16 on a GPU before Ampere.
    (Keras wraps the optimizer in a LossScaleOptimizer for mixed_float16 wherever it runs.)"""
    where = platform()
    if "float16" in precision and "bfloat16" not in precision and where == "cpu":
        log.warning("trainer.precision=%s on a CPU, which computes float16 slowly; mixed_bfloat16 is fast on "
                    "CPUs with AMX.", precision)
    if "bfloat16" in precision and where == "gpu" and keras.backend.backend() == "jax":
        import jax

        capability = getattr(jax.local_devices()[0], "compute_capability", None)
        if capability and float(capability) < 8:
            log.warning("trainer.precision=%s on a GPU of compute capability %s: bfloat16 is fast from 8.0 "
                        "(Ampere) on; mixed_float16 suits this GPU.", precision, capability)
