"""Choose the Keras backend before Keras is imported, and report the one that really runs."""

import logging
import os
import sys

from catdog.errors import CatdogError

BACKENDS = ("jax", "tensorflow")


def use_backend(name: str, xla_flags: str | None = None, compilation_cache_dir: str | None = None) -> None:
    """Set KERAS_BACKEND, XLA_FLAGS and JAX's persistent compilation cache (values already in the
    environment win); fails if Keras already runs on another backend in this process."""
    if name not in BACKENDS:
        raise CatdogError(f"backend={name!r} is not supported; choose one of {', '.join(BACKENDS)}.")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "keras" in sys.modules:
        active = sys.modules["keras"].backend.backend()
        if active != name:
            raise CatdogError(
                f"Keras is already imported with backend {active!r} in this process, so backend={name} "
                "cannot take effect. Run each backend in its own process (a multirun with "
                "hydra/launcher=joblib does this)."
            )
        return
    os.environ["KERAS_BACKEND"] = name
    if xla_flags:
        os.environ["XLA_FLAGS"] = merge_flags(os.environ.get("XLA_FLAGS", ""), xla_flags)
    if compilation_cache_dir:
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(compilation_cache_dir))
        # JAX caches only compilations over 1 s by default; the many small ones add up too.
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def merge_flags(current: str, extra: str) -> str:
    """`current` plus each flag of `extra` whose name `current` does not already set."""
    names = {flag.split("=", 1)[0] for flag in current.split()}
    return " ".join([*current.split(), *(f for f in extra.split() if f.split("=", 1)[0] not in names)])


def use_devices(count: int) -> None:
    """Data-parallel training over the first `count` devices with keras.distribution (JAX)."""
    import keras

    if count == 1:
        return
    if keras.backend.backend() != "jax":
        raise CatdogError(f"trainer.devices={count} needs backend=jax (keras.distribution.DataParallel).")
    devices = keras.distribution.list_devices()
    if len(devices) < count:
        raise CatdogError(
            f"trainer.devices={count}, but only {len(devices)} device(s) are visible ({devices}). On CPU, "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={count} makes {count} host devices."
        )
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices[:count]))
    logging.getLogger("catdog").info("Data parallel over %s", devices[:count])


def active_backend() -> str:
    """The backend Keras actually runs on."""
    import keras

    return keras.backend.backend()
