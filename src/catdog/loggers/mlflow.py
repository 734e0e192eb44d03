"""An MLflow run in a local tracking store."""

import json
import time
from pathlib import Path

from catdog.errors import CatdogError
from catdog.loggers.base import Logger, metric_name, scalars
from catdog.utils.config import flatten


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
        flat = [Param(metric_name(k), str(v)[:6000]) for k, v in flatten(params).items()]
        for start in range(0, len(flat), 100):
            self.client.log_batch(self._run(), params=flat[start:start + 100])

    def on_train_begin(self, logs=None):
        if self.run_id is not None and self.client.get_run(self.run_id).info.status != "RUNNING":
            self.client.update_run(self.run_id, "RUNNING")  # a resumed run goes on
        self._run()  # before the first checkpoint, which keeps the run's id
        self._log_params()

    def on_epoch_end(self, epoch, logs=None):
        if self.epoch_counts:
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

        tags = [RunTag(metric_name(k), v if isinstance(v, str) else json.dumps(v))
                for k, v in flatten(provenance).items()]
        for start in range(0, len(tags), 100):  # MLflow's most tags per batch
            self.client.log_batch(self._run(), tags=tags[start:start + 100])

    def finalize(self, status="success"):
        """Params, artifacts and FINISHED at a run's end; FAILED or KILLED (status "failed", "killed") when a
        fit stops on an error or a signal, the run still resumable into this MLflow run."""
        if status != "success":
            if self.run_id is not None:
                self.client.set_terminated(self.run_id, "KILLED" if status == "killed" else "FAILED")
            return
        self._log_params()
        if self.artifacts_dir is not None:
            for pattern in ("checkpoints/best.keras", "*.png"):
                for path in sorted(self.artifacts_dir.glob(pattern)):
                    folder = str(path.parent.relative_to(self.artifacts_dir))
                    self.client.log_artifact(self._run(), str(path), None if folder == "." else folder)
        self.client.set_terminated(self._run(), "FINISHED")

    def state_dict(self):
        return {"run_id": self.run_id}

    def load_state_dict(self, state):
        self.run_id = state.get("run_id")
