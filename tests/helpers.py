"""Helpers the tests share (fixtures live in conftest.py): tiny generated image folders, runners for the
CLIs in this process (`run_main`) or in a fresh one (`run_cli`, `run_python`), and Keras objects that
subprocesses import (PYTHONPATH=tests)."""

import contextlib
import importlib
import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from catdog.tasks import ImageClassifier

BACKEND = keras.backend.backend()
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# where users keep them (CATDOG_DATA, CATDOG_WEIGHTS), else the workplace's shared copies
REAL_DATA = Path(os.environ.get("CATDOG_DATA") or SHARED / "data" / "cats_and_dogs")
REAL_WEIGHTS = Path(os.environ.get("CATDOG_WEIGHTS")
                    or SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5")


def with_backend(overrides) -> list:
    """`overrides`, plus backend=<this process's backend> unless they choose one: a preset's own backend (the
    tutorial's experiments pin TensorFlow) gives way to the backend a test runs on."""
    overrides = list(overrides)
    if BACKEND != "tensorflow" and not any(o.startswith("backend=") for o in overrides):
        overrides.append(f"backend={BACKEND}")
    return overrides


def make_image(path, label, rng, size=(48, 40)):
    """A learnable toy photo: class 0 bright on the left, class 1 bright on the right, plus noise."""
    h, w = size
    img = rng.integers(0, 90, (h, w, 3), dtype=np.uint8)
    half = slice(0, w // 2) if label == 0 else slice(w // 2, w)
    img[:, half] = np.clip(img[:, half].astype(int) + 150, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)


def make_image_folders(root, classes=("cats", "dogs"), train=12, val=10, seed=0):
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("validation", val)):
        for label, name in enumerate(classes):
            d = Path(root) / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                make_image(d / f"{name}.{i}.jpg", label, rng)
    return Path(root)


def run_python(code, backend="tensorflow", env=None, timeout=300) -> str:
    """Run `code` in a fresh interpreter on `backend`; returns its stdout, failing the test on a non-zero exit."""
    full_env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONUNBUFFERED": "1", **(env or {})}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def run_cli(*args, env=None, cwd=None, timeout=600):
    """Run `python -m <args>` in a fresh process (its own Keras backend); returns CompletedProcess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("KERAS_BACKEND", None)
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout, errors="backslashreplace")


def run_main(module, *args):
    """`python -m module args` in this process, on its backend (TensorFlow): the entry point's Hydra main with
    those arguments; returns a CompletedProcess with its exit code and console output."""
    from hydra.core.global_hydra import GlobalHydra

    main = importlib.import_module(module).main
    if module in ("catdog.train", "catdog.evaluate", "catdog.predict", "catdog.explore"):
        args = with_backend(args)
    argv, sys.argv = sys.argv, [module, *args]
    out, err, code = io.StringIO(), io.StringIO(), 0
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # Hydra configures logging for its job: undone below
    # Hydra's logging setup closes every handler, and absl's closes its stream unless that is sys.stderr then
    on_stderr = {h: h().stream for h in logging._handlerList if getattr(h(), "__dict__", {}).get("stream") is not None
                 and (h().stream is sys.stderr or type(h()).__module__.startswith("absl"))}
    for handler in on_stderr:
        handler().stream = err
    GlobalHydra.instance().clear()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
        for handler, stream in on_stderr.items():
            if handler() is not None:
                handler().stream = stream
        GlobalHydra.instance().clear()
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


class SleepAtEpochEnd(keras.callbacks.Callback):
    """Makes each epoch last long enough for a test to kill the process mid-run."""

    def __init__(self, seconds=1.0):
        super().__init__()
        self.seconds = seconds

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(self.seconds)


@keras.saving.register_keras_serializable("tests")
class OffsetLossClassifier(ImageClassifier):
    """The task's loss plus `offset`: a logged loss above it shows that this compute_loss ran."""

    def __init__(self, *args, offset=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.offset = offset

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x, y, y_pred, sample_weight, training) + self.offset

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}
