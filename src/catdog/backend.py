"""Choose the Keras backend before Keras is imported, and report the one that really runs."""

import importlib.abc
import importlib.util
import logging
import os
import sys

from catdog.errors import CatdogError

BACKENDS = ("jax", "tensorflow")


def use_backend(name: str, xla_flags: str | None = None, compilation_cache_dir: str | None = None,
                import_tensorflow: bool = True) -> None:
    """Set KERAS_BACKEND to `name`, and XLA_FLAGS and JAX's persistent compilation cache (for these, values
    already in the environment win; XLA:CPU's flags, `--xla_cpu_*`, only where JAX will run on the CPU: see
    `jax_accelerator`); fails if Keras already runs on another backend in this process, and changes nothing if
    it already runs on this one.

    `import_tensorflow=False` (JAX only) keeps TensorFlow out of the process: Keras imports it whenever
    it is installed (to seed it, to check types), which costs a JAX run about 0.4 GB of memory.
    """
    if name not in BACKENDS:
        raise CatdogError(f"backend={name!r} is not supported; choose one of {', '.join(BACKENDS)}.")
    if not import_tensorflow and name != "jax":
        raise CatdogError(f"backend.import_tensorflow=false needs backend=jax, not {name}.")
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
    if not import_tensorflow:
        keep_tensorflow_out()
    os.environ["KERAS_BACKEND"] = name
    if xla_flags and name == "jax" and jax_accelerator() is not None:
        xla_flags = without_cpu_flags(xla_flags)  # XLA:CPU's own tuning stays off where JAX runs on a GPU or TPU
    if xla_flags:
        os.environ["XLA_FLAGS"] = merge_flags(os.environ.get("XLA_FLAGS", ""), xla_flags)
    if compilation_cache_dir:
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(compilation_cache_dir))
        # JAX caches only compilations over 1 s by default; the many small ones add up too.
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


class _TensorFlowRefused(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers `find_spec("tensorflow")`, so "is it installed?" checks still work, and refuses to load it."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "tensorflow":
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        raise ImportError(
            f"catdog keeps TensorFlow out of this JAX process (backend.import_tensorflow=false), so {spec.name} "
            "cannot be imported; set backend.import_tensorflow=true to allow it."
        )

    def exec_module(self, module):
        pass


def keep_tensorflow_out() -> None:
    """Make `import tensorflow` fail with an ImportError in this process, as if it were not installed."""
    if "tensorflow" in sys.modules:
        logging.getLogger("catdog").warning(
            "TensorFlow was imported before catdog chose the backend; backend.import_tensorflow=false has no effect.")
    elif not any(isinstance(finder, _TensorFlowRefused) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TensorFlowRefused())


def tensorflow_imported() -> bool:
    """Whether TensorFlow is loaded in this process (a JAX run records it next to its peak memory)."""
    return "tensorflow" in sys.modules


def jax_accelerator(environ=None) -> str | None:
    """The accelerator JAX will run on, known before it starts: JAX_PLATFORMS' first platform where it is set
    (None for cpu), else an installed GPU or TPU plugin (jax-cuda*-plugin, jax-rocm*-plugin, libtpu), else None."""
    environ = os.environ if environ is None else environ
    platforms = environ.get("JAX_PLATFORMS", "").strip()
    if platforms:
        first = platforms.split(",")[0].strip()
        return None if first == "cpu" else first
    import importlib.metadata
    import pkgutil

    plugins = {entry.name for entry in importlib.metadata.entry_points(group="jax_plugins")}
    if importlib.util.find_spec("jax_plugins") is not None:
        plugins |= {module.name for module in pkgutil.iter_modules(importlib.import_module("jax_plugins").__path__)}
    if importlib.util.find_spec("libtpu") is not None:
        plugins.add("tpu")
    return next(iter(sorted(plugins)), None)


def without_cpu_flags(flags: str) -> str:
    """`flags` less XLA:CPU's own (`--xla_cpu_*`)."""
    return " ".join(f for f in flags.split() if not f.startswith("--xla_cpu_"))


def merge_flags(current: str, extra: str) -> str:
    """`current` plus each flag of `extra` whose name `current` does not already set."""
    names = {flag.split("=", 1)[0] for flag in current.split()}
    return " ".join([*current.split(), *(f for f in extra.split() if f.split("=", 1)[0] not in names)])


def active_backend() -> str:
    """The backend Keras actually runs on."""
    import keras

    return keras.backend.backend()
