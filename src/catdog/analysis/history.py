"""A run's per-epoch history: read back from history.csv and summarised for metrics.json."""

import csv
import itertools
import statistics
from pathlib import Path

THRESHOLDS = (0.9, 0.95, 0.97)


def read_history(path: Path) -> dict:
    """history.csv as {column: [float per epoch]}; an epoch repeated after a resume counts once (the last)."""
    with open(path, newline="") as f:
        rows = {int(r["epoch"]): r for r in csv.DictReader(f)  # a row cut by a kill has empty cells: skip it
                if (r.get("epoch") or "").isdigit() and all(v not in (None, "") for v in r.values())}
    ordered = [rows[e] for e in sorted(rows)]
    return {key: [float(r[key]) for r in ordered] for key in ordered[0] if key != "epoch"} if ordered else {}


def seconds_to(target: float, val_accuracy, epoch_seconds, start_seconds=0.0):
    """Seconds from `start_seconds` before the first epoch to the end of the first epoch whose validation
    accuracy reaches `target`, or None."""
    elapsed = (start_seconds + s for s in itertools.accumulate(epoch_seconds))
    return next((s for s, v in zip(elapsed, val_accuracy) if v >= target), None)


def summarise(history: dict, setup_seconds: float, images_per_epoch: int) -> dict:
    """Accuracy, timing and time-to-accuracy figures of one run (timings from the EpochTimer columns)."""
    val = history["val_accuracy"]
    epoch_seconds, train_seconds = history.get("epoch_seconds", []), history.get("train_seconds", [])
    steady = train_seconds[1:] or train_seconds  # the first epoch carries tracing and compilation
    return {
        "epochs": len(val),
        "epoch_seconds": epoch_seconds,
        "median_epoch_seconds": statistics.median(epoch_seconds[1:] or epoch_seconds) if epoch_seconds else None,
        "epoch_cores": history.get("epoch_cores", []),
        "train_images_per_second": images_per_epoch / statistics.median(steady) if steady else None,
        "best_val_accuracy": max(val),
        "best_epoch": val.index(max(val)) + 1,
        "final_val_accuracy": val[-1],
        "final_train_accuracy": history["accuracy"][-1],
        "setup_seconds": setup_seconds,
        "seconds_to_val_accuracy": {str(t): seconds_to(t, val, epoch_seconds, setup_seconds) for t in THRESHOLDS},
    }
