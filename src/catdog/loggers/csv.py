"""history.csv, metrics.json and provenance.json in the run directory."""

import csv
import io
import logging
from pathlib import Path

from catdog.loggers.base import Logger
from catdog.utils.io import write_json, write_text

log = logging.getLogger(__name__)


class CSVLogger(Logger):
    """`history.csv` (the Trainer's history, a row per epoch, rewritten whole and atomically after each one, so
    that after a resume every epoch is there exactly once), `metrics.json` (the summary and test metrics) and
    `provenance.json`."""

    def __init__(self, save_dir, history="history.csv", metrics="metrics.json", provenance="provenance.json"):
        super().__init__()
        self.save_dir = Path(save_dir)
        self.history_path = self.save_dir / history
        self.metrics_path, self.provenance_path = self.save_dir / metrics, self.save_dir / provenance
        self.metrics, self.provenance = {}, {}

    @property
    def rows(self) -> list[dict]:
        """The Trainer's per-epoch history (it keeps it, across stages and resumes), less the stage names."""
        return [{k: v for k, v in row.items() if k != "stage"} for row in self.trainer.history]

    def on_epoch_end(self, epoch, logs=None):
        rows = self.rows
        columns = list(dict.fromkeys(k for row in rows for k in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.history_path, text.getvalue())

    def history(self) -> dict:
        """{column: [value per epoch]} of the epochs so far."""
        rows = self.rows
        columns = dict.fromkeys(k for row in rows for k in row if k != "epoch")
        return {k: [row.get(k) for row in rows] for k in columns}

    def log_hyperparams(self, params):
        self.metrics.update({k: params[k] for k in ("experiment", "model", "augment", "seed", "tags") if k in params})

    def log_metrics(self, metrics, step=None):
        self.metrics.update(metrics)

    def log_provenance(self, provenance):
        self.provenance.update(provenance)

    def finalize(self, status="success"):
        if status != "success":  # metrics.json marks a finished run: none for a fit that stopped
            return
        write_json(self.provenance_path, self.provenance)
        write_json(self.metrics_path, self.metrics)
        history = self.history()
        if history.get("val_accuracy"):
            try:  # the tutorial's curve; the metrics are written already, so a failing plot is only a warning
                from catdog.analysis.plots import plot_history

                plot_history(history, self.save_dir / "accuracy.png", title=str(self.metrics.get("experiment", "")))
            except Exception as exc:  # matplotlib and the filesystem raise many types
                log.warning("Could not plot %s (%s: %s).", self.save_dir / "accuracy.png", type(exc).__name__, exc)
