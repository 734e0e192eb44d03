"""Loggers (Lightning's role): per-epoch metrics while fitting, then the run's summary, each in its own store.

A logger is a catdog Callback (it sees every epoch's logs) with `log_hyperparams`, `log_metrics` and
`finalize`. The Trainer keeps model metrics apart from run provenance (versions, CPU, backend, XLA flags).
"""

import csv
import importlib.util
import io
import json
import logging
import numbers
import re
import time
from pathlib import Path

from catdog.callbacks import Callback
from catdog.errors import CatdogError
from catdog.io import write_json, write_text

log = logging.getLogger(__name__)


def flatten(params: dict, prefix="") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _name(key: str) -> str:
    """`key` as a metric, param or tag name that MLflow and TensorBoard accept: characters other than letters,
    digits, `_`, `.`, `-` and `/` become `_`."""
    return re.sub(r"[^A-Za-z0-9_./-]", "_", key)


def scalars(metrics: dict) -> dict:
    """The real numbers among `metrics` (numpy's too, not bools), nested ones flattened, by `_name`."""
    return {_name(k): float(v) for k, v in flatten(metrics).items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool)}


class Logger(Callback):
    """The logger interface; its `on_epoch_end` receives Keras' epoch logs."""

    def log_hyperparams(self, params: dict) -> None:
        pass

    def log_metrics(self, metrics: dict, step=None) -> None:
        pass

    def log_provenance(self, provenance: dict) -> None:
        pass

    def finalize(self, status: str = "success") -> None:
        pass


class CSVLogger(Logger):
    """`history.csv` (a row per epoch, rewritten whole and atomically after each one, so that after a resume
    every epoch is there exactly once), `metrics.json` (the summary and test metrics) and `provenance.json`."""

    def __init__(self, save_dir, history="history.csv", metrics="metrics.json", provenance="provenance.json"):
        super().__init__()
        self.save_dir = Path(save_dir)
        self.history_path = self.save_dir / history
        self.metrics_path, self.provenance_path = self.save_dir / metrics, self.save_dir / provenance
        self.rows, self.metrics, self.provenance = [], {}, {}

    def on_epoch_end(self, epoch, logs=None):
        self.rows = [r for r in self.rows if r["epoch"] < epoch] + [{"epoch": epoch, **_floats(logs or {})}]
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.history_path, text.getvalue())

    def history(self) -> dict:
        """{column: [value per epoch]} of the epochs so far."""
        columns = dict.fromkeys(k for row in self.rows for k in row if k != "epoch")
        return {k: [row.get(k) for row in self.rows] for k in columns}

    def log_hyperparams(self, params):
        self.metrics.update({k: params[k] for k in ("experiment", "model", "augment", "seed", "tags") if k in params})

    def log_metrics(self, metrics, step=None):
        self.metrics.update(metrics)

    def log_provenance(self, provenance):
        self.provenance.update(provenance)

    def finalize(self, status="success"):
        write_json(self.provenance_path, self.provenance)
        write_json(self.metrics_path, self.metrics)
        history = self.history()
        if history.get("val_accuracy"):
            try:  # the tutorial's curve; the metrics are written already, so a failing plot is only a warning
                from catdog.plots import plot_history

                plot_history(history, self.save_dir / "accuracy.png", title=str(self.metrics.get("experiment", "")))
            except Exception as exc:  # matplotlib and the filesystem raise many types
                log.warning("Could not plot %s (%s: %s).", self.save_dir / "accuracy.png", type(exc).__name__, exc)

    def state_dict(self):
        return {"rows": self.rows}

    def load_state_dict(self, state):
        self.rows = list(state.get("rows", []))


def _floats(logs: dict) -> dict:
    return {k: float(v) for k, v in logs.items()}


class TensorBoardLogger(Logger):
    """Keras' TensorBoard callback (epoch scalars under `save_dir/train` and `save_dir/validation`), plus the
    summary and test metrics as scalars and the hyperparameters as text, under `save_dir/summary`."""

    def __init__(self, save_dir, **tensorboard_options):
        super().__init__()
        import keras

        try:
            import tensorflow  # noqa: F401  (Keras' TensorBoard callback writes with tf.summary)
        except ImportError as exc:
            raise CatdogError("logger=tensorboard writes through TensorFlow's summary API, which this run keeps "
                              "out; add backend.import_tensorflow=true (or use logger=csv or mlflow).") from exc
        if importlib.util.find_spec("tensorboard") is None:  # tf.summary.scalar is TensorBoard's
            raise CatdogError("logger=tensorboard needs the tensorboard package: pip install tensorboard.")
        self.save_dir = str(save_dir)
        self.callback = keras.callbacks.TensorBoard(log_dir=self.save_dir, **tensorboard_options)

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.callback.set_params(params)

    def on_train_begin(self, logs=None):
        self._write_hyperparams()
        self.callback.on_train_begin(logs)

    def on_train_end(self, logs=None):
        self.callback.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self.callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.callback.on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self.callback.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.callback.on_train_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        self.callback.on_test_begin(logs)

    def on_test_batch_begin(self, batch, logs=None):
        self.callback.on_test_batch_begin(batch, logs)

    def on_test_end(self, logs=None):
        self.callback.on_test_end(logs)

    def _write(self, write):
        import tensorflow as tf

        writer = tf.summary.create_file_writer(str(Path(self.save_dir) / "summary"))
        with writer.as_default():
            write(tf)
        writer.close()

    _hyperparams = None

    def log_hyperparams(self, params):
        self._hyperparams = params  # written once training starts: a run the Trainer refuses gets nothing

    def _write_hyperparams(self):
        params, self._hyperparams = self._hyperparams, None
        if params:
            text = "\n".join(f"    {k}: {v}" for k, v in flatten(params).items())
            self._write(lambda tf: tf.summary.text("hyperparameters", text, step=0))

    def finalize(self, status="success"):
        self._write_hyperparams()

    def log_metrics(self, metrics, step=None):
        def write(tf):
            for key, value in scalars(metrics).items():
                tf.summary.scalar(key, value, step=step or 0)

        self._write(write)


class MLflowLogger(Logger):
    """An MLflow run (`pip install 'catdog[mlflow]'`) in a local tracking store (`file:DIR` or `sqlite:///FILE`):
    the flattened config as params, every epoch's metrics by step, the summary and test metrics, provenance
    as tags, and at the end the checkpoints and plots of `artifacts_dir` as artifacts. A resume goes on in the
    same MLflow run.

    artifact_location: where a new experiment keeps its artifacts; null: next to a `sqlite:///FILE` store
    (FILE's folder/mlartifacts, not MLflow's ./mlruns in the working directory), else MLflow's default."""

    def __init__(self, tracking_uri, experiment_name="catdog", run_name=None, artifacts_dir=None,
                 artifact_location=None):
        super().__init__()
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise CatdogError("logger=mlflow needs MLflow: pip install 'catdog[mlflow]'.") from exc
        self.client = MlflowClient(tracking_uri=str(tracking_uri))
        self.tracking_uri, self.experiment_name, self.run_name = str(tracking_uri), experiment_name, run_name
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir else None
        if artifact_location is None and self.tracking_uri.startswith("sqlite:///"):
            artifact_location = Path(self.tracking_uri[len("sqlite:///"):]).parent / "mlartifacts"
        self.artifact_location = None if artifact_location is None else str(artifact_location)
        self.run_id, self._params = None, None

    def _run(self) -> str:
        if self.run_id is None:
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            experiment_id = (experiment.experiment_id if experiment else
                             self.client.create_experiment(self.experiment_name, self.artifact_location))
            self.run_id = self.client.create_run(experiment_id, run_name=self.run_name).info.run_id
        return self.run_id

    def log_hyperparams(self, params):
        self._params = params  # logged once the Trainer has restored a resumed run's id

    def _log_params(self):
        from mlflow.entities import Param

        params, self._params = self._params, None
        if not params or self.client.get_run(self._run()).data.params:
            return  # a resumed run: params are logged once, and MLflow refuses to change them
        flat = [Param(_name(k), str(v)[:6000]) for k, v in flatten(params).items()]
        for start in range(0, len(flat), 100):
            self.client.log_batch(self._run(), params=flat[start:start + 100])

    def on_train_begin(self, logs=None):
        self._log_params()

    def on_epoch_end(self, epoch, logs=None):
        self._log(logs or {}, step=epoch)

    def log_metrics(self, metrics, step=None):
        self._log(metrics, step=step or 0)

    def _log(self, metrics, step):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(k, v, now, int(step)) for k, v in scalars(metrics).items()]
        if rows:
            self.client.log_batch(self._run(), metrics=rows)

    def log_provenance(self, provenance):
        from mlflow.entities import RunTag

        tags = [RunTag(_name(k), v if isinstance(v, str) else json.dumps(v)) for k, v in flatten(provenance).items()]
        for start in range(0, len(tags), 100):  # MLflow's most tags per batch
            self.client.log_batch(self._run(), tags=tags[start:start + 100])

    def finalize(self, status="success"):
        self._log_params()
        if self.artifacts_dir is not None:
            for pattern in ("checkpoints/best.keras", "*.png"):
                for path in sorted(self.artifacts_dir.glob(pattern)):
                    folder = str(path.parent.relative_to(self.artifacts_dir))
                    self.client.log_artifact(self._run(), str(path), None if folder == "." else folder)
        self.client.set_terminated(self._run(), "FINISHED" if status == "success" else "FAILED")

    def state_dict(self):
        return {"run_id": self.run_id}

    def load_state_dict(self, state):
        self.run_id = state.get("run_id")
