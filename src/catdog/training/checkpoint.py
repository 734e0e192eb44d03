"""What a checkpoint is, and every read and write of one (Lightning's checkpoint connector).

A checkpoint file is the task as Keras saves it (`keras.saving.load_model` opens it; its optimizer is Keras'
own copy when the task itself trains), plus, inside the same `.keras` zip, the Trainer's state (epoch, stage,
history, callbacks) and the variables Keras does not save there: the non-trainable ones of the model in
training (Dropout's seed generators among them) and, when that model is the task's feature task, its
optimizer's.
"""

import hashlib
import io
import json
import logging
import shutil
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catdog.errors import CatdogError
from catdog.training import distributed
from catdog.training.run_dir import RunDirectory, RunExists
from catdog.utils.config import is_finished
from catdog.utils.config import flatten
from catdog.utils.io import atomic_path

log = logging.getLogger("catdog.trainer")
STATE = "catdog/trainer_state.json"


def save_checkpoint(path, task, state: dict, variables=None) -> None:
    """Write `task`, `state` and `variables` ({group: [keras.Variable]}) to `path` atomically: a kill or a full
    disk leaves the previous complete checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # h5py can crash the process on a full disk: refuse before writing when the space is clearly short
    needed = path.stat().st_size if path.is_file() else 4 * task.count_params() * (3 if variables else 1)
    free = shutil.disk_usage(path.parent).free
    if free < needed * 1.2 + 2**20:
        raise CatdogError(f"Could not write the checkpoint {path}: {free / 2**20:.1f} MB free on its disk, about "
                          f"{needed / 2**20:.1f} MB needed; the previous one, if any, is intact. Free some space "
                          "and resume with ckpt_path.")
    try:
        with atomic_path(path, suffix=".keras") as tmp:  # Keras saves only to *.keras
            task.save(tmp)
            with zipfile.ZipFile(tmp, "a") as z:
                z.writestr(STATE, json.dumps(state, default=float))
                for group, values in (variables or {}).items():
                    buffer = io.BytesIO()
                    np.savez(buffer, *[np.asarray(v.numpy()) for v in values])
                    z.writestr(f"catdog/{group}.npz", buffer.getvalue())
    except OSError as exc:
        raise CatdogError(f"Could not write the checkpoint {path} ({exc}); the previous one, if any, is intact. "
                          "Free some space (or fix the permissions) and resume with ckpt_path.") from exc


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


def read_variables(path, group) -> list | None:
    """The values saved in `path` for `group`, or None when the checkpoint has none."""
    with zipfile.ZipFile(path) as z:
        if f"catdog/{group}.npz" not in z.namelist():
            return None
        with np.load(io.BytesIO(z.read(f"catdog/{group}.npz"))) as saved:
            return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def assign(path, group, variables, values) -> None:
    if len(values) != len(variables) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values)):
        raise CatdogError(f"ckpt_path={path}: its saved {group} variables do not fit this model (another model or "
                          "stage configuration?).")
    for variable, value in zip(variables, values):
        variable.assign(value)


def load_weights(task, path) -> None:
    """The checkpoint's weights into `task` (its optimizer's, when it is compiled and built)."""
    with warnings.catch_warnings():  # a checkpoint of another stage has another optimizer: weights only then
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        task.load_weights(path)


# what may differ on a resume: how long, where and how the run is watched, not what is trained
ANY_VALUE = ("model.name", "model.trainable")


def run_shape(task, datamodule) -> dict:
    """{key: value} of what shapes the model, the data and the optimizer, keyed as the configs key them; the
    backbone, preprocessor and head as their class and a digest of their layers' configs."""
    model = {k: v for k, v in task.get_config().items() if k not in ("backbone", "preprocessor", "head")}
    for part in ("backbone", "preprocessor", "head"):
        layer = getattr(task, part, None)
        if layer is not None:
            inner = getattr(layer, "layers", [layer])  # names count up per process: left out
            configs = [[type(x).__name__, {k: v for k, v in x.get_config().items() if k != "name"}] for x in inner]
            digest = hashlib.sha256(json.dumps(configs, sort_keys=True, default=str).encode()).hexdigest()[:12]
            model[part] = f"{type(layer).__name__} of {len(inner)} layers, config {digest}"
    optimizer = {k: v for k, v in task.configure_optimizer().get_config().items() if k != "name"}
    shape = flatten({"model": model, "model.optimizer": optimizer,
                     "dataset": datamodule.signature() if datamodule is not None else {}})
    return {k: _rounded(v) for k, v in json.loads(json.dumps(shape, default=str)).items() if k not in ANY_VALUE}


def _rounded(value):
    """Floats to 7 significant digits: an optimizer's float32 settings read back as they were written."""
    if isinstance(value, float):
        return float(f"{value:.7g}")
    return [_rounded(v) for v in value] if isinstance(value, list) else value


def refuse_other_shape(ckpt_path, saved, now) -> None:
    """A one-paragraph error listing each key whose value differs from the checkpoint's, with the override that
    puts it back where one can (a scalar or a list of scalars)."""
    if saved is None:
        return
    differ = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if not differ:
        return
    shown = [f"{k}: {json.dumps(saved.get(k))} -> {json.dumps(now.get(k))}" for k in differ[:10]]
    fixes = [f"{k}={json.dumps(saved[k]).replace(' ', '')}" for k in differ
             if k in saved and k not in ("model.backbone", "model.head", "model.preprocessor") and _scalar(saved[k])]
    hint = f" Resume with the values it started with: {' '.join(fixes)}." if fixes else \
        " Resume it with the configuration it started with."
    raise CatdogError(f"ckpt_path={ckpt_path} was trained with another model, data or optimizer than this run "
                      f"configures, so resuming would mix two runs: {'; '.join(shown)}"
                      f"{f' (and {len(differ) - 10} more)' if len(differ) > 10 else ''}.{hint} Settings that only "
                      "watch or lengthen the run (max_epochs, loggers, callbacks, verbose, paths) may differ.")


def _scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str)) or (
        isinstance(value, list) and all(isinstance(v, (bool, int, float, str)) for v in value))


@dataclass
class Resume:
    """A checkpoint being resumed: the trainer's state, and the variables the resumed stage gets once compiled."""

    path: Path
    state: dict
    optimizer: list | None = None
    non_trainable: list | None = field(default=None, repr=False)

    @property
    def mid_stage(self) -> bool:
        return self.state["epoch"] > self.state["stage_start"]

    def restore_stage(self, task, fit_task) -> None:
        """The training optimizer's state and the fit model's non-trainable variables (Dropout's seeds)."""
        fit_task.optimizer.build(fit_task.trainable_variables)
        if fit_task is task:  # Keras' own copy of the optimizer
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                task.load_weights(self.path)
            if any("Skipping variable loading for optimizer" in str(w.message) for w in caught):
                raise CatdogError(f"ckpt_path={self.path}: its saved optimizer state does not fit this model's "
                                  "(another model or stage configuration?); resume it with the configuration it "
                                  "started with.")
        elif self.optimizer is not None:
            assign(self.path, "optimizer", fit_task.optimizer.variables, self.optimizer)
        if self.non_trainable is not None:
            assign(self.path, "non_trainable", fit_task.non_trainable_variables, self.non_trainable)


class CheckpointConnector:
    """Saves and restores a Trainer's checkpoints: where they are (the ModelCheckpoint callback's folder, else
    `default_root_dir/checkpoints`), what they hold, which one `ckpt_path` names."""

    def __init__(self, trainer):
        self.trainer, self.shape = trainer, None

    @property
    def callback(self):
        from catdog.callbacks import ModelCheckpoint

        return next((c for c in self.trainer.callbacks if isinstance(c, ModelCheckpoint)), None)

    @property
    def folder(self) -> Path:
        return Path(self.callback.dirpath) if self.callback else self.trainer.default_root_dir / "checkpoints"

    def stateful(self) -> dict:
        """Callbacks and loggers by a stable key, for their state in a checkpoint."""
        from catdog.callbacks import Callback

        keyed, seen = {}, {}
        for c in [*self.trainer.loggers, *self.trainer.callbacks]:
            if isinstance(c, Callback):
                name = type(c).__name__
                seen[name] = seen.get(name, -1) + 1
                keyed[f"{name}:{seen[name]}"] = c
        return keyed

    def save(self, path, epochs_done: int, **extra) -> None:
        """The task and the trainer's state to `path`; rank 0's alone (Keras' saving makes variables of its own:
        local ones, so the others need not join)."""
        trainer = self.trainer
        if not trainer.is_global_zero:
            return
        fitting = trainer.fit_task
        variables = {}
        if fitting is not None:
            variables["non_trainable"] = fitting.non_trainable_variables
            if fitting is not trainer.task and fitting.optimizer is not None:
                variables["optimizer"] = fitting.optimizer.variables
        state = {"format": 2, "epoch": epochs_done, "shape": self.shape, "stage": trainer.stage_index,
                 "stage_start": trainer.stage_start,
                 "stages": [s.name for s in trainer.stages], "history": trainer.history[:epochs_done],
                 "fit_complete": False, "callbacks": {k: c.state_dict() for k, c in self.stateful().items()},
                 "datamodule": trainer.datamodule.state_dict() if trainer.datamodule is not None else {}, **extra}
        with distributed.local_scope():
            save_checkpoint(path, trainer.task, state, variables)

    def copy(self, source, path) -> None:
        """`source`, a checkpoint saved at this same moment, written to `path` as well: a byte copy, not a
        second serialization of the task; rank 0's alone, like `save`."""
        if self.trainer.is_global_zero:
            with atomic_path(path, suffix=".keras") as tmp:
                shutil.copyfile(source, tmp)

    def save_last(self, epochs_done, **extra) -> None:
        if self.callback is not None and self.callback.save_last:
            self.save(self.callback.last_model_path, epochs_done, **extra)

    def resolve(self, ckpt_path) -> Path:
        if ckpt_path in ("last", "best"):
            path = self.folder / f"{ckpt_path}.keras"
        else:
            path = Path(ckpt_path).expanduser()
            if path.is_dir():
                path = path / "checkpoints" / "last.keras" if (path / "checkpoints").is_dir() else path / "last.keras"
        if not path.is_file():
            raise CatdogError(f"ckpt_path={ckpt_path}: no checkpoint at {path}.")
        return path

    def restore_for_fit(self, task, ckpt_path) -> Resume | None:
        """Refuse a fit that would overwrite a run; with `ckpt_path`, give `task` its weights and the trainer and
        its callbacks their state, and return what the resumed stage still needs."""
        self.shape = run_shape(task, self.trainer.datamodule)  # as built, before any stage changes it
        last = self.callback and Path(self.callback.last_model_path)
        if ckpt_path is None:
            if last and last.is_file():
                RunDirectory(last.parent.parent).refuse_new_run(last, read_state(last)["epoch"])
            return None
        path = self.resolve(ckpt_path)
        state = read_state(path)
        runs = {path.parent.parent if path.parent.name == "checkpoints" else path.parent}
        if last:
            runs.add(last.parent.parent)
        if any(is_finished(run) for run in runs):
            raise RunExists(f"ckpt_path={ckpt_path}: its run is finished (fit and test), and a finished run is "
                            "never restarted or overwritten.", None)
        names = [s.name for s in self.trainer.stages]
        if state["stages"] != names:
            raise CatdogError(f"ckpt_path={ckpt_path} was trained in the stages {state['stages']}, not {names}; "
                              "resume it with the configuration it started with.")
        refuse_other_shape(ckpt_path, state.get("shape"), self.shape)
        load_weights(task, path)
        resume = Resume(path, state, read_variables(path, "optimizer"), read_variables(path, "non_trainable"))
        self.trainer.datamodule.load_state_dict(state.get("datamodule", {}))
        for key, callback in self.stateful().items():  # a stage-scoped one only within its stage
            if key in state["callbacks"] and (resume.mid_stage or not getattr(callback, "stage_scoped", False)):
                callback.load_state_dict(state["callbacks"][key])
        log.info("Resuming from %s after epoch %d", path, state["epoch"])
        return resume

    def load_for_evaluation(self, task, ckpt_path) -> str:
        """Load the weights `ckpt_path` names into `task`; returns what was used: best, last, a path, or
        "current" (the weights as they are)."""
        if ckpt_path is None:
            return "current"
        callback = self.callback
        if ckpt_path == "best" and not (callback and callback.save_best and Path(callback.best_model_path).is_file()):
            log.warning("ckpt_path=best, but there is no best checkpoint (callbacks.model_checkpoint); "
                        "using the current weights.")
            return "current"
        load_weights(task, self.resolve(ckpt_path))
        return ckpt_path if ckpt_path in ("best", "last") else str(ckpt_path)
