"""Fixtures: tiny generated image folders, composed configs, and runners for the CLIs: in this process
(`run_main`), or in a fresh one where the process is the point (`run_cli`: another backend, a kill)."""

import contextlib
import importlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_DATA = SHARED / "data" / "cats_and_dogs"
REAL_WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5"


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


@pytest.fixture
def tiny_data(tmp_path):
    return make_image_folders(tmp_path / "data")


@pytest.fixture
def compose(tmp_path):
    """compose(overrides) -> the train config as `python -m catdog.train` would see it, output in tmp_path."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from catdog.config import config_dir

    def _compose(overrides=(), config_name="train"):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            if not any(o.startswith("paths.output_dir=") for o in overrides):
                cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.cache_dir = str(tmp_path / "cache")
            del cfg.hydra
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


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
