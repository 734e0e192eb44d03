"""Where the Hydra configs live, catdog's config resolver, and building objects from `_target_` with errors
that name the key."""

import json
import os
import zipfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from catdog.errors import CatdogError



def config_dir() -> str:
    """conf/ inside an installed wheel, or at the root of a source checkout."""
    here = Path(__file__).resolve().parents[1]  # the catdog package
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise CatdogError(f"catdog's conf/ directory was not found next to {here}; reinstall catdog.")


def run_dir_of(ckpt_path, default: str) -> str:
    """The run directory a checkpoint belongs to (RUN/checkpoints/last.keras, RUN/checkpoints or RUN), else
    `default`."""
    if ckpt_path in (None, "", "null"):
        return default
    if ckpt_path in ("last", "best"):
        raise CatdogError(f"ckpt_path={ckpt_path}: on the command line, give the run directory (or a checkpoint "
                          "file in it) to resume.")
    path = Path(str(ckpt_path)).expanduser()
    if path.name == "checkpoints":
        return str(path.parent)
    if path.is_file() or path.suffix == ".keras":
        return str(path.parent.parent if path.parent.name == "checkpoints" else path.parent)
    return str(path)


def parallel_jobs(cores_per_job) -> int:
    """How many jobs of `cores_per_job` cores each this machine runs side by side (at least one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(cores_per_job))


def is_finished(run_dir) -> bool:
    """Whether `run_dir` holds a finished run: its `.finished` mark, or (runs of earlier versions) `finished`
    in its last checkpoint's trainer state."""
    run_dir = Path(str(run_dir))
    if (run_dir / ".finished").is_file():
        return True
    try:
        with zipfile.ZipFile(run_dir / "checkpoints" / "last.keras") as z:
            return bool(json.loads(z.read("catdog/trainer_state.json")).get("finished"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False


def unless_finished(run_dir, value, otherwise=None):
    """`value`, or `otherwise` where `run_dir` holds a finished run: Hydra then writes nothing into it (the run
    is refused, and its directory stays as it was, byte for byte)."""
    return otherwise if is_finished(run_dir) else value


if not OmegaConf.has_resolver("catdog_unless_finished"):  # conf/hydra/train.yaml
    OmegaConf.register_new_resolver("catdog_unless_finished", unless_finished)
if not OmegaConf.has_resolver("catdog_run_dir"):
    OmegaConf.register_new_resolver("catdog_run_dir", run_dir_of)
if not OmegaConf.has_resolver("catdog_jobs"):  # conf/hydra/launcher/parallel.yaml
    OmegaConf.register_new_resolver("catdog_jobs", parallel_jobs)


def build(node: DictConfig, key: str, **kwargs):
    """`hydra.utils.instantiate(node, **kwargs)`; a bad or unknown option is a CatdogError naming `key`."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, CatdogError):
            raise cause from None
        raise CatdogError(f"{key}: {cause or exc}".replace("\n", " ")) from exc
    except TypeError as exc:
        raise CatdogError(f"{key}: bad option ({exc}).") from exc


def hyperparameters(cfg: DictConfig) -> dict:
    """What loggers record about a run: its names and the whole resolved config."""
    return {"experiment": cfg.experiment_name, "model": cfg.model.name, "augment": cfg.augment.name,
            "seed": cfg.seed, "tags": list(cfg.tags), "config": OmegaConf.to_container(cfg, resolve=True)}


def flatten(params: dict, prefix="") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
