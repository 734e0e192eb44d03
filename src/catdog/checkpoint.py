"""A checkpoint file: the task as Keras saves it (`keras.saving.load_model` opens it), plus, inside the same
`.keras` zip, the Trainer's state (epoch, stage, callbacks) and, for a resume, the variables Keras does not
save there: the training optimizer's, and the non-trainable ones of the model in training (Dropout's seed
generators among them)."""

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from catdog.errors import CatdogError

STATE = "catdog/trainer_state.json"


def save_checkpoint(path, task, state: dict, variables=None) -> None:
    """Write `task`, `state` and `variables` ({group: [keras.Variable]}) to `path` through a hidden file renamed
    over it, so a kill or a full disk leaves the previous complete checkpoint."""
    from catdog.data.cache import remove_stale_temporaries

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)  # a killed save's
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")  # Keras saves only to *.keras
    # h5py can crash the process on a full disk: refuse before writing when the space is clearly short
    needed = path.stat().st_size if path.is_file() else 4 * task.count_params() * (3 if variables else 1)
    free = shutil.disk_usage(path.parent).free
    if free < needed * 1.2 + 2**20:
        raise CatdogError(f"Could not write the checkpoint {path}: {free / 2**20:.1f} MB free on its disk, about "
                          f"{needed / 2**20:.1f} MB needed; the previous one, if any, is intact. Free some space "
                          "and resume with ckpt_path.")
    try:
        task.save(tmp)
        with zipfile.ZipFile(tmp, "a") as z:
            z.writestr(STATE, json.dumps(state, default=float))
            for group, values in (variables or {}).items():
                buffer = io.BytesIO()
                np.savez(buffer, *[np.asarray(v.numpy()) for v in values])
                z.writestr(f"catdog/{group}.npz", buffer.getvalue())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise CatdogError(f"Could not write the checkpoint {path} ({exc}); the previous one, if any, is intact. "
                          "Free some space (or fix the permissions) and resume with ckpt_path.") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def mark_finished(path) -> None:
    """Set `finished` in checkpoint `path`'s state (a copy of the zip renamed over it)."""
    path = Path(path)
    state = {**read_state(path), "finished": True}
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w") as dst:
            for item in src.infolist():
                if item.filename != STATE:
                    dst.writestr(item, src.read(item))
            dst.writestr(STATE, json.dumps(state, default=float))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_state(path) -> dict:
    """The Trainer's state saved in checkpoint `path`."""
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read(STATE))
    except KeyError:
        raise CatdogError(f"ckpt_path={path} is a Keras model without catdog's training state; it can be "
                          "tested or used to predict, but not resumed.") from None
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CatdogError(f"ckpt_path={path} is not a readable checkpoint ({exc}).") from exc


def load_variables(path, group, variables) -> bool:
    """Assign the values saved in `path` for `group` to `variables`; False when the checkpoint has none."""
    with zipfile.ZipFile(path) as z:
        if f"catdog/{group}.npz" not in z.namelist():
            return False
        with np.load(io.BytesIO(z.read(f"catdog/{group}.npz"))) as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    if len(values) != len(variables) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values)):
        raise CatdogError(f"ckpt_path={path}: its saved {group} variables do not fit this model (another model or "
                          "stage configuration?).")
    for variable, value in zip(variables, values):
        variable.assign(value)
    return True


def load_optimizer_state(path, optimizer, variables) -> bool:
    """Build `optimizer` for `variables` and give it the variables saved in `path`; False when none were saved."""
    optimizer.build(variables)
    return load_variables(path, "optimizer", optimizer.variables)
