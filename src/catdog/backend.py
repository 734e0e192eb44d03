"""Choose the Keras backend before Keras is imported, and report the one that really runs."""

import contextlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import sys
import tempfile

from catdog.errors import CatdogError

BACKENDS = ("jax", "tensorflow")


def use_backend(name: str, xla_flags: str | None = None, compilation_cache_dir: str | None = None,
                import_tensorflow: bool = True) -> None:
    """Set KERAS_BACKEND to `name`, and XLA_FLAGS and JAX's persistent compilation cache (for these, values
    already in the environment win; XLA:CPU's flags, `--xla_cpu_*`, only where JAX will run on the CPU: see
    `jax_accelerator`); fails if Keras already runs on another backend in this process.

    `import_tensorflow=False` (JAX only) keeps TensorFlow out of the process: Keras imports it whenever
    it is installed (to seed it, to check types), which costs a JAX run about 0.4 GB of memory.
    """
    if name not in BACKENDS:
        raise CatdogError(f"backend={name!r} is not supported; choose one of {', '.join(BACKENDS)}.")
    if not import_tensorflow and name != "jax":
        raise CatdogError(f"backend.import_tensorflow=false needs backend=jax, not {name}.")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "keras" in sys.modules:  # `import catdog` imported it: KERAS_BACKEND was set
        active = sys.modules["keras"].backend.backend()
        if active != name:
            chosen = os.environ.get("KERAS_BACKEND")
            raise CatdogError(
                f"Keras is already imported with backend {active!r} in this process"
                f"{f' (KERAS_BACKEND={chosen})' if chosen else ''}, so backend={name} cannot take effect. Give "
                f"backend={active}, or unset KERAS_BACKEND, or run each backend in its own process (a multirun "
                "does this).")
    os.environ["KERAS_BACKEND"] = name
    if not import_tensorflow:
        keep_tensorflow_out()
    if xla_flags and name == "jax" and jax_accelerator() is not None:
        xla_flags = without_cpu_flags(xla_flags)  # XLA:CPU's own tuning stays off where JAX runs on a GPU or TPU
    if xla_flags:  # read when JAX starts its backend, at the first computation
        os.environ["XLA_FLAGS"] = merge_flags(os.environ.get("XLA_FLAGS", ""), xla_flags)
    if compilation_cache_dir:
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(compilation_cache_dir))
        # JAX caches only compilations over 1 s by default; the many small ones add up too.
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        if "jax" in sys.modules:  # JAX reads these variables when it is imported
            import jax

            jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
            jax.config.update("jax_persistent_cache_min_compile_time_secs",
                              float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
    import_keras()


_kept_out: set = set()
KEPT_OUT = ("this JAX run keeps TensorFlow out of the process (backend.import_tensorflow=false, about 0.4 GB "
            "less memory); set backend.import_tensorflow=true to allow it.")


# what TensorFlow's C++ side writes to stderr on import, whatever TF_CPP_MIN_LOG_LEVEL says (absl's logging
# is not set up yet), each line twice: of no use to a catdog user
BANNERS = re.compile(r"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
                     r"cpu_feature_guard|This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate")


@contextlib.contextmanager
def banners_dropped():
    """Run the block with the process's stderr (file descriptor 2) captured, then write it back less
    TensorFlow's import banners: nothing else is lost."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines() if not BANNERS.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def import_keras():
    """`import keras` (and with it TensorFlow, on that backend) without TensorFlow's import banners."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    with banners_dropped():
        import keras
    return keras


def keep_tensorflow_out() -> None:
    """Tell Keras that TensorFlow is not installed, so a JAX process never imports it: Keras asks its lazy
    `tensorflow` module whether TensorFlow is available whenever it seeds, saves or checks a type. That module
    is private to Keras (pinned by pyproject's keras bound, and tests/test_backend.py checks that it is taken);
    catdog's own TensorFlow features ask `require_tensorflow` first."""
    if tensorflow_imported():
        logging.getLogger("catdog").warning(
            "TensorFlow was imported before catdog chose the backend; backend.import_tensorflow=false has no effect.")
        return
    from keras.src.utils import module_utils

    module_utils.tensorflow._available = False
    _kept_out.add("tensorflow")


def require_tensorflow(what: str):
    """`import tensorflow` for `what`, or a CatdogError where this run keeps it out or it is not installed."""
    if "tensorflow" in _kept_out and not tensorflow_imported():
        raise CatdogError(f"{what} needs TensorFlow, but {KEPT_OUT}")
    try:
        import tensorflow
    except ImportError as exc:
        raise CatdogError(f"{what} needs TensorFlow, which is not installed ({exc}).") from exc
    return tensorflow


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
