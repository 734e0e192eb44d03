"""One table and plots for every run under a run or multirun directory (`python -m catdog.report DIR`)."""

import csv
import json
import os
import re
from pathlib import Path

import yaml

from catdog.analysis.history import read_history
from catdog.analysis.metrics import most_confused
from catdog.utils.io import TEXT, printable, write_text
from catdog.utils.run_info import describe_cpu
from catdog.analysis.plots import grouped_bars, plt, save_figure

COLUMNS = ("experiment", "model", "augment", "backend", "precision", "seed", "epochs", "best_val_accuracy", "final_val_accuracy",
           "test_accuracy", "median_epoch_seconds", "train_images_per_second", "setup_seconds", "run_seconds",
           "seconds_to_0.97_val", "params_total",
           "params_trainable", "peak_rss_mb", "run")
WHERE = ("paths.", "hydra.")  # overrides that say where a run writes, not what it is: never a sweep's axis
PER_CLASS = ("precision", "recall", "f1", "support")  # the figures of each class in val_per_class, test_per_class


def read_run(run_dir) -> dict:
    """A run's metrics.json over its provenance.json (backend, peak_rss_mb, run_seconds, ...), where present."""
    provenance = Path(run_dir) / "provenance.json"
    return {**(json.loads(provenance.read_text()) if provenance.is_file() else {}),
            **json.loads((Path(run_dir) / "metrics.json").read_text())}


def collect_runs(root) -> tuple[list[dict], list[str]]:
    """`read_run` of every run below `root`, and the run directories that ended without a metrics.json."""
    root = Path(root)
    runs, failed = [], []
    jobs = {p.parent.parent for p in root.rglob(".hydra/config.yaml")} | {p.parent for p in root.rglob("metrics.json")}
    for job in sorted(jobs | {root}):
        metrics = job / "metrics.json"
        if metrics.is_file():
            record = read_run(job)
            record["run"] = str(job.relative_to(root)) if job != root else "."
            record["overrides"] = read_overrides(job)
            record["seconds_to_0.97_val"] = (record.get("seconds_to_val_accuracy") or {}).get("0.97")
            history = job / "history.csv"
            if history.is_file():
                record["val_curve"] = read_history(history).get("val_accuracy", [])
            runs.append(record)
        elif (job / ".hydra").is_dir():
            failed.append(str(job.relative_to(root)) if job != root else ".")
    return runs, failed


def read_overrides(run_dir) -> dict:
    """The run's command-line overrides ({key: value}, from Hydra's .hydra/overrides.yaml), or {}."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    pairs = (str(o).split("=", 1) for o in yaml.safe_load(path.read_text()) or [])
    return {key.lstrip("+~"): value for key, value, *_ in (pair + [""] for pair in pairs)}


def varying_keys(runs) -> list[str]:
    """The override keys whose values differ across `runs` (a sweep's axes), each run's value in its record."""
    keys = sorted({k for r in runs for k in r.get("overrides", {}) if not k.startswith(WHERE)})
    varying = [k for k in keys if len({r.get("overrides", {}).get(k) for r in runs}) > 1]
    for r in runs:
        r.update({k: r.get("overrides", {}).get(k) for k in varying if k not in COLUMNS})
    return [k for k in varying if k not in COLUMNS]


def _cell(value, column="") -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if column.endswith("accuracy") else f"{value:.3g}" if value < 10 else f"{value:.1f}"
    return "" if value is None else printable(value).replace("|", "\\|")


def markdown_literal(text) -> str:
    """`text` shown as it is by Markdown (GitHub's too, with its `$` math): one line, every ASCII punctuation
    character backslash-escaped."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", printable(text))


def per_class_table(run: dict) -> str:
    """A run's `val_per_class` / `test_per_class` (metrics.json) as one Markdown table, a row per class."""
    splits = [s for s in ("val", "test") if run.get(f"{s}_per_class")]
    columns = ["class", *(f"{s} {m}" for s in splits for m in PER_CLASS)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name in dict.fromkeys(n for s in splits for n in run[f"{s}_per_class"]):
        cells = [run[f"{s}_per_class"].get(name, {}).get(m) for s in splits for m in PER_CLASS]
        figures = [f"{c:.4f}" if isinstance(c, float) else _cell(c) for c in cells]
        lines.append("| " + " | ".join([markdown_literal(name), *figures]) + " |")
    return "\n".join(lines) + "\n"


def confused_table(run: dict) -> str:
    """The run's most confused class pairs (validation) as a Markdown table, or nothing."""
    if not run.get("val_confusion_matrix") or not run.get("class_names"):
        return ""
    pairs = most_confused(run["val_confusion_matrix"], run["class_names"])
    if not pairs:
        return "No validation image was mistaken for another class.\n\n"
    rows = [f"| {markdown_literal(p['true'])} | {markdown_literal(p['predicted'])} | {p['images']} |" for p in pairs]
    return "Most confused (true, predicted, images):\n\n| true | predicted | images |\n|---|---|---|\n" + \
        "\n".join(rows) + "\n\n"


def _heading(run: dict) -> str:
    return (f"\n### {_cell(run['run'])}: {run.get('experiment')} {run['model']} / {run['augment']} / "
            f"{run['backend']}\n\n")


def _median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def over_seeds(runs, axes) -> str:
    """Runs alike but for their seed, a row per group: how many, the mean, min and max of best and test
    accuracy, and the medians of their timings; nothing where no two runs share a group."""
    keys = ("experiment", "model", "augment", "backend", "precision", *axes)
    groups = {}
    for r in runs:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    if all(len(g) < 2 for g in groups.values()):
        return ""
    timings = ("median_epoch_seconds", "seconds_to_0.97_val", "run_seconds")
    columns = [*keys, "runs", "seeds", "mean best_val_accuracy", "min best_val_accuracy", "max best_val_accuracy",
               "mean test_accuracy", *(f"median {t}" for t in timings)]
    rows = []
    for key, group in groups.items():
        best = [r["best_val_accuracy"] for r in group if r.get("best_val_accuracy") is not None]
        tests = [r["test_accuracy"] for r in group if r.get("test_accuracy") is not None]
        rows.append({**dict(zip(keys, key)), "runs": len(group), "seeds": " ".join(str(r.get("seed")) for r in group),
                     "mean best_val_accuracy": sum(best) / len(best) if best else None,
                     "min best_val_accuracy": min(best, default=None), "max best_val_accuracy": max(best, default=None),
                     "mean test_accuracy": sum(tests) / len(tests) if tests else None,
                     **{f"median {t}": _median([r.get(t) for r in group]) for t in timings}})
    return "\n## Over seeds\n\n" + markdown_table(rows, columns)


def markdown_table(rows, columns=COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c), c) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_curves(runs, path) -> None:
    """Validation accuracy per epoch, one panel per model, one line per augment/backend."""
    models = sorted({r["model"] for r in runs})
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        for r in (r for r in runs if r["model"] == model and r.get("val_curve")):
            ax.plot(range(1, len(r["val_curve"]) + 1), r["val_curve"], marker=".",
                    label=f"{r['augment']} / {r['backend']}")
        ax.set(title=model, xlabel="epoch", ylabel="validation accuracy")
        if ax.lines:  # a model whose runs have no curve gets an empty panel, without a legend
            ax.legend(fontsize=7)
    save_figure(fig, path, 90)


def plot_backends(runs, path) -> None:
    """Median seconds per epoch for each model and augment, one bar per backend."""
    series = {}
    for r in sorted(runs, key=lambda r: (r["model"], r["augment"], r["backend"])):
        series.setdefault(r["backend"], {})[f"{r['model']}\n{r['augment']}"] = r["median_epoch_seconds"] or 0
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len({(r["model"], r["augment"]) for r in runs})), 3.8))
    grouped_bars(ax, series, "median s / epoch", "backend comparison")
    save_figure(fig, path, 90)


def write_report(root, out=None) -> Path:
    """report.md, runs.csv, val_curves.png and, where the runs used more than one backend, backends.png in `out`
    (default: `root`)."""
    runs, failed = collect_runs(root)
    out = Path(out or root)
    out.mkdir(parents=True, exist_ok=True)
    runs.sort(key=lambda r: (r.get("experiment") or "", r["model"], r["augment"], r["backend"]))
    columns = (*varying_keys(runs), *COLUMNS)  # a sweep's axes first
    with open(out / "runs.csv", "w", newline="", **TEXT) as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)
    shown = os.path.relpath(root) if not os.path.relpath(root).startswith("..") else Path(root).name
    machines = sorted({describe_cpu(r["cpu"]) for r in runs if isinstance(r.get("cpu"), dict)})
    parts = [f"# Runs under `{shown}`\n", *(f"Machine: {m}\n" for m in machines), markdown_table(runs, columns),
             over_seeds(runs, columns[:len(columns) - len(COLUMNS)])]
    optuna = Path(root) / "optimization_results.yaml"
    if optuna.is_file():  # written by Hydra's Optuna sweeper
        result = yaml.safe_load(optuna.read_text())
        parts.append(f"\n## Best trial ({result.get('name', 'optuna')})\n\nbest value: {result['best_value']}\n\n"
                     + "\n".join(f"- `{k}`: {v}" for k, v in result["best_params"].items()) + "\n")
    if failed:
        parts.append("\nFailed (no metrics.json): " + ", ".join(failed) + "\n")
    if runs:
        plot_curves(runs, out / "val_curves.png")
        parts.append("\n![validation accuracy](val_curves.png)\n")
    (out / "backends.png").unlink(missing_ok=True)  # an earlier report's
    if len({r["backend"] for r in runs}) > 1:
        plot_backends(runs, out / "backends.png")
        parts.append("\n![backends](backends.png)\n")
    analysed = [r for r in runs if (Path(root) / r["run"] / "confusion.png").is_file()]
    if analysed:
        parts.append("\n## Error analysis (validation)\n")
    for r in analysed:
        run_dir = os.path.relpath(Path(root) / r["run"], out)
        parts.append(f"{_heading(r)}confusion matrix (rows true, columns predicted): "
                     f"`{r.get('val_confusion_matrix')}`\n\n{confused_table(r)}"
                     f"![confusion]({run_dir}/confusion.png) ![mistakes]({run_dir}/mistakes.png)\n")
    scored = [r for r in runs if r.get("val_per_class") or r.get("test_per_class")]
    if scored:
        parts.append("\n## Per-class precision, recall and F1\n")
    for r in scored:
        parts.append(_heading(r) + per_class_table(r))
    write_text(out / "report.md", "\n".join(parts))
    return out / "report.md"
