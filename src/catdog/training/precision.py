"""The run's dtype policy (Lightning's precision plugin): given, or chosen for the hardware (`auto`), set
before the task is built, and fitted to the task when a fit or an evaluation starts.

`auto` decides by what the figures in docs/performance.md measured (results/precision/):
- a GPU: mixed_bfloat16 from compute capability 8.0 (Ampere), mixed_float16 from 7.0, float32 below;
- a CPU on TensorFlow with AMX or AVX512-BF16: mixed_bfloat16 (oneDNN's bfloat16 convolutions: a CNN's training
  step 1.3-1.7x as fast with AVX512-BF16 alone, about 2x with AMX), except for a task with depthwise
  convolutions (MobileNet, EfficientNet), which are slower in bfloat16 on a CPU, so that task computes in float32;
- a CPU on JAX, or without those instructions: float32 (XLA:CPU computes bfloat16 no faster).
"""

import logging
from dataclasses import dataclass

import keras

from catdog.errors import CatdogError
from catdog.training.strategy import platform

log = logging.getLogger("catdog.trainer")

AUTO = "auto"
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16", "float16", "float64")  # Keras' dtype policies
FAST_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Hardware:
    """What `auto` looks at: the platform Keras computes on, the backend, the CPU's flags, a GPU's compute
    capability."""
    platform: str
    backend: str
    cpu_flags: frozenset = frozenset()
    gpu_capability: float | None = None


@dataclass(frozen=True)
class Choice:
    policy: str
    reason: str
    auto: bool = False


def probe() -> Hardware:
    """This process's hardware (after the strategy's setup: on JAX it asks the devices)."""
    from catdog.utils.run_info import cpu_flags

    where, capability = platform(), None
    if where == "gpu":
        capability = _gpu_capability()
    return Hardware(where, keras.backend.backend(), frozenset(cpu_flags()), capability)


def _gpu_capability() -> float | None:
    if keras.backend.backend() == "jax":
        import jax

        found = getattr(jax.local_devices()[0], "compute_capability", None)
    else:
        import tensorflow as tf

        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        found = ".".join(str(v) for v in details.get("compute_capability", ())) or None
    return float(found) if found else None


def choose(hardware: Hardware) -> Choice:
    """`auto`'s policy for `hardware`, with its reason in words."""
    if hardware.platform == "tpu":
        return Choice("mixed_bfloat16", "a TPU computes in bfloat16", True)
    if hardware.platform == "gpu":
        capability = hardware.gpu_capability
        if capability is not None and capability >= 8:
            return Choice("mixed_bfloat16", f"a GPU of compute capability {capability:g} (bfloat16 tensor cores)",
                          True)
        if capability is not None and capability >= 7:
            return Choice("mixed_float16", f"a GPU of compute capability {capability:g} (float16 tensor cores, "
                          "no bfloat16)", True)
        return Choice("float32", f"a GPU of compute capability {capability or 'unknown'} (no tensor cores)", True)
    fast = [f for f in FAST_BF16_CPU_FLAGS if f in hardware.cpu_flags]
    if not fast:
        return Choice("float32", "this CPU has neither AMX nor AVX512-BF16, so bfloat16 is slow", True)
    if hardware.backend != "tensorflow":
        return Choice("float32", f"XLA:CPU on {hardware.backend} computes bfloat16 no faster than float32, even "
                      f"with {fast[0]}", True)
    return Choice("mixed_bfloat16", f"TensorFlow runs bfloat16 convolutions fast with {fast[0]}", True)


def set_precision(precision: str, hardware: Hardware | None = None) -> Choice:
    """Make `precision`, or `auto`'s choice for `hardware` (default: `probe()`), Keras' global dtype policy."""
    if precision == AUTO:
        choice = choose(hardware or probe())
    elif precision in PRECISIONS:
        choice = Choice(precision, "trainer.precision")
    else:
        raise CatdogError(f"trainer.precision={precision!r}: must be auto or one of {', '.join(PRECISIONS)}.")
    keras.config.set_dtype_policy(choice.policy)
    return choice


def fit_to_task(task, choice: Choice, where: str) -> Choice:
    """The choice for this task. `auto` takes the policy of a task built before the Trainer, and turns its
    mixed_bfloat16 on a CPU to float32 for a task with depthwise convolutions (the layers' policies are set to
    float32, and so is the global one for what is built next, such as a head on cached features). A given
    precision refuses a task built under another policy."""
    policy = task.dtype_policy.name
    if choice.auto and policy != choice.policy:
        keras.config.set_dtype_policy(policy)
        return Choice(policy, f"the task's own (built before the Trainer chose {choice.policy})", True)
    if choice.auto and where == "cpu" and policy == "mixed_bfloat16":
        depthwise = [layer.name for layer in _layers(task) if isinstance(
            layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D))]
        if depthwise:
            for layer in [task, *_layers(task)]:
                layer.dtype_policy = "float32"
            keras.config.set_dtype_policy("float32")
            return Choice("float32", f"{choice.reason}, but this task's {len(depthwise)} depthwise convolutions "
                          "are slower in bfloat16 on a CPU", True)
    if policy != choice.policy:
        raise CatdogError(f"The task was built with dtype policy {policy}, but trainer.precision={choice.policy}: "
                          "build the Trainer before the task.")
    return choice


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def warn_if_slow(precision: str) -> None:
    """Warn where the dtype policy is slow on this hardware: float16 on a CPU, bfloat16 on a GPU before Ampere.
    (Keras wraps the optimizer in a LossScaleOptimizer for mixed_float16 wherever it runs.)"""
    if precision == "float32":
        return
    where = platform()
    if "float16" in precision and "bfloat16" not in precision and where == "cpu":
        log.warning("trainer.precision=%s on a CPU, which computes float16 slowly; mixed_bfloat16 is fast on "
                    "CPUs with AMX or AVX512-BF16.", precision)
    if "bfloat16" in precision and where == "gpu":
        capability = _gpu_capability()
        if capability and capability < 8:
            log.warning("trainer.precision=%s on a GPU of compute capability %s: bfloat16 is fast from 8.0 "
                        "(Ampere) on; mixed_float16 suits this GPU.", precision, capability)
