"""Fixtures (tiny generated image folders, composed configs) and the two-backend run: a test marked
`backends` is collected once per backend, runs here on this process's backend (TensorFlow unless
KERAS_BACKEND says otherwise) and on the other one in a pytest process of its own, as Keras' CI runs its
suite once per backend. Shared helpers: helpers.py."""

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers import BACKEND, with_backend, make_image_folders  # noqa: E402  (after the backend is chosen)

BACKENDS = ("tensorflow", "jax")


def pytest_configure(config):
    config.addinivalue_line("markers", "backends: run on each Keras backend, one process per backend")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("backends"):
        metafunc.fixturenames.append("keras_backend")
        metafunc.parametrize("keras_backend", BACKENDS)


def _backend(item) -> str:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("keras_backend", BACKEND) if callspec else BACKEND


def _other_backend_results(session) -> dict:
    """Run every collected test of the other backend in one pytest process on it (once); {nodeid's file stem
    and name: (outcome, message)}."""
    if not hasattr(session, "catdog_other_backend"):
        items = [item for item in session.items if _backend(item) != BACKEND]
        root = Path(session.config.rootpath)
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "junit.xml"
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra",
                       f"--junitxml={report}", *(item.nodeid for item in items)]
            env = {**os.environ, "KERAS_BACKEND": _backend(items[0])}
            run = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                                 errors="backslashreplace")
            results = {}
            if report.is_file():
                for case in ElementTree.parse(report).iter("testcase"):
                    outcome, message = "passed", ""
                    for child in case:
                        if child.tag in ("failure", "error", "skipped"):
                            outcome = "skipped" if child.tag == "skipped" else "failed"
                            message = (child.get("message") or "") + "\n" + (child.text or "")
                    results[(case.get("classname").rsplit(".", 1)[-1], case.get("name"))] = (outcome, message)
        session.catdog_other_backend = results, run.stdout[-3000:] + run.stderr[-3000:]
    return session.catdog_other_backend


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """A test of the other backend reports what it did in that backend's process."""
    if _backend(pyfuncitem) == BACKEND:
        return None
    results, output = _other_backend_results(pyfuncitem.session)
    outcome, message = results.get((Path(pyfuncitem.nodeid.split("::")[0]).stem, pyfuncitem.name),
                                   ("failed", f"no result from the {_backend(pyfuncitem)} process:\n{output}"))
    if outcome == "skipped":
        pytest.skip(message.strip().splitlines()[0] if message.strip() else "skipped")
    if outcome == "failed":
        pytest.fail(f"on {_backend(pyfuncitem)}: {message}", pytrace=False)
    return True


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

    from catdog.utils.config import config_dir

    def _compose(overrides=(), config_name="train"):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = hydra_compose(config_name, overrides=with_backend(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            if not any(o.startswith("paths.output_dir=") for o in overrides):
                cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.cache_dir = str(tmp_path / "cache")
            del cfg.hydra
        return cfg

    yield _compose
    GlobalHydra.instance().clear()




@pytest.fixture(autouse=True)
def float32_between_tests():
    """A Trainer sets Keras' global dtype policy (auto may choose mixed_bfloat16): each test starts in float32."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].config.set_dtype_policy("float32")
