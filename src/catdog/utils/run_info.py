"""What a run records about where it ran: the CPU, package versions, memory."""

import os
import platform
import resource
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# the instruction sets behind this project's speed figures: fp32 and bf16 matmuls, Intel's AMX tiles
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
PACKAGES = ("keras", "jax", "jaxlib", "tensorflow-cpu", "tensorflow", "numpy", "hydra-core", "pillow", "matplotlib")


def package_versions() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def _cpuinfo(cpuinfo="/proc/cpuinfo") -> dict:
    fields = {}
    if Path(cpuinfo).is_file():
        fields = dict(line.split(":", 1) for line in Path(cpuinfo).read_text().splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
    return fields


def cpu_flags(cpuinfo="/proc/cpuinfo") -> set:
    """The CPU's instruction-set flags as Linux names them (none where /proc/cpuinfo is absent)."""
    return set(_cpuinfo(cpuinfo).get("flags", "").split())


def cpu_info(cpuinfo="/proc/cpuinfo") -> dict:
    """The processor a run's figures were measured on: its model name, usable cores and `CPU_FLAGS` present."""
    fields = _cpuinfo(cpuinfo)
    # platform.processor() may start a `uname -p` process, so it is only the fallback
    model = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "cores": cores, "flags": [f for f in CPU_FLAGS if f in flags]}


def describe_cpu(cpu: dict) -> str:
    """`cpu_info()` in words, for report headers."""
    flags = ", ".join(cpu["flags"]) or "none of " + ", ".join(CPU_FLAGS)
    return f"{cpu['model']}, {cpu['cores']} cores ({flags})"


def machine_slug(cpu: dict | None = None) -> str:
    """A folder name for this machine's results: the CPU model's first words and its fastest bf16 path
    (amx, avx512_bf16 or avx2), e.g. amd-epyc-avx512_bf16."""
    cpu = cpu or cpu_info()
    kind = next((f for f in ("amx_bf16", "avx512_bf16") if f in cpu["flags"]), "avx2").replace("amx_bf16", "amx")
    words = [w for w in cpu["model"].lower().replace("(r)", "").replace("(tm)", "").split() if w.isalnum()]
    return "-".join([*words[:3], kind])


def peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    """This process's peak resident memory, or with RUSAGE_CHILDREN its largest finished child's."""
    rss = resource.getrusage(who).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


if __name__ == "__main__":  # the benchmarks' results folder: python -m catdog.utils.run_info
    print(machine_slug())
