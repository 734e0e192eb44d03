"""The features model's float32 ONNX export (Keras' export through tf2onnx, in a TensorFlow child process on JAX)
run by ONNX Runtime's CPU provider."""

import gc
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np

from catdog.errors import CatdogError
from catdog.utils.io import atomic_path
from catdog.utils.progress import working

log = logging.getLogger(__name__)


def onnx_predict(model, onnx_file=None):
    """`model`'s predictions for each batch of a loader (a generator) through ONNX Runtime's CPU provider, on Keras' own ONNX export by tf2onnx
    (`export_onnx`), 2.2-2.4x as fast as Keras for MobileNetV2 (results/feature_runtime, results/epyc).
    `onnx_file`: where the export is kept, and read back instead of exporting when it is there."""
    import onnxruntime

    session = _cached_session(onnx_file) if onnx_file and Path(onnx_file).is_file() else None
    if session is None:
        with tempfile.TemporaryDirectory() as tmp:
            exported = Path(tmp) / f"{model.name}.onnx"
            export_onnx(model, exported)
            session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
            if onnx_file:
                try:
                    with atomic_path(onnx_file) as partial:
                        shutil.copyfile(exported, partial)
                except (OSError, CatdogError) as exc:
                    log.warning("Could not keep the ONNX export in %s (%s); going on without it.", onnx_file, exc)
    return session_predict(session)


def session_predict(session):
    """A function of a loader: its batches' outputs through an ONNX Runtime `session`, a generator."""
    name = session.get_inputs()[0].name

    def predict(loader):
        return (session.run(None, {name: x})[0] for x, _ in numpy_batches(loader))

    return predict


def export_onnx(model, path) -> None:
    """Keras' ONNX export of `model` through tf2onnx: in this process on TensorFlow, elsewhere in a TensorFlow
    child process from a .keras copy. JAX's own export (jax2onnx) gives a graph that ONNX Runtime ran 3x
    slower than Keras (results/feature_runtime)."""
    if keras.backend.backend() == "tensorflow":
        with working("Exporting the features model to ONNX"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "In the future `np.object`", FutureWarning)  # Keras' tf2onnx patch
            model.export(str(path), format="onnx", verbose=False)
        gc.collect()  # the conversion leaves about 0.6 GB of TensorFlow graphs in reference cycles
        return
    with tempfile.TemporaryDirectory() as tmp, working("Exporting the features model to ONNX, on TensorFlow"):
        saved = Path(tmp) / "features.keras"
        model.save(saved)
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
        child = subprocess.run([sys.executable, "-m", "catdog.training.onnx_runtime", str(saved), str(path)], env=env,
                               capture_output=True, text=True)
    if child.returncode:
        raise CatdogError(f"Exporting the features model to ONNX on TensorFlow failed:\n{child.stderr[-1500:]}\n"
                          "Set trainer.feature_cache.runtime=keras to compute the features with Keras instead.")


def numpy_batches(loader):
    """(x, y) NumPy batches of a tf.data loader or of a PyDataset."""
    if hasattr(loader, "as_numpy_iterator"):
        return loader.as_numpy_iterator()
    return (loader[i] for i in range(len(loader)))


def _cached_session(path):
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's exception types are not public
        log.warning("Ignoring unreadable ONNX file %s (%s); exporting again.", path, exc)
        return None


if __name__ == "__main__":  # export_onnx's child: python -m catdog.training.onnx_runtime MODEL.keras OUT.onnx
    network = keras.saving.load_model(sys.argv[1])
    network(np.zeros((1, *network.input_shape[1:]), "float32"))  # Keras exports only models that were called
    network.export(sys.argv[2], format="onnx", verbose=False)
