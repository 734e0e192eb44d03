"""The docs' figures against the committed results files they cite: each figure quoted is the file's, rounded
as the docs round it."""

import csv
import json
import re
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README, PERFORMANCE = (ROOT / "README.md").read_text(), (ROOT / "docs" / "performance.md").read_text()
MACHINE = "amd-epyc-avx512_bf16"


def runs(folder) -> list[dict]:
    with open(ROOT / "results" / folder / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_the_readmes_run_and_result_are_the_default_runs():
    metrics = json.loads((ROOT / "results" / "default_run" / "metrics.json").read_text())
    log = (ROOT / "results" / "default_run" / "train.log").read_text()
    run_line = re.search(r"- (Run: .*)", log).group(1)
    assert run_line in README
    for key in ("best_val_accuracy", "test_accuracy", "test_loss", "median_epoch_seconds"):
        assert re.search(rf"^  {key} +{metrics[key]:.4f}$", README, re.M), key
    assert re.search(rf"^  best_epoch +{metrics['best_epoch']}$", README, re.M)


def test_the_readmes_speed_is_the_quick_benchmarks():
    bench = json.loads((ROOT / "results" / "bench_quick" / MACHINE / "bench.json").read_text())
    rows = {r["experiment"]: r for r in bench["peer"]}
    model1, model4 = rows["model1"], rows["model4"]
    assert f"**{model1['catdog_wall_seconds'] / model1['peer_wall_seconds']:.2f}×**" in README
    assert f"({model1['catdog_wall_seconds']:.1f} against {model1['peer_wall_seconds']:.1f} s)" in README
    assert f"{model4['catdog_wall_seconds'] / model4['peer_wall_seconds']:.2f}× " \
           f"({model4['catdog_wall_seconds']:.1f} against {model4['peer_wall_seconds']:.1f} s)" in README
    assert f"{model4['catdog_median_epoch_seconds']:.2f} s against the tutorial's " \
           f"{model4['peer_median_epoch_seconds']:.1f} s" in README


def over_seeds(rows, key) -> dict:
    """{value of `key`: (mean best, min best, max best, mean test)} of `rows`."""
    grouped = {}
    for r in rows:
        grouped.setdefault(r[key], []).append(r)
    return {k: (statistics.mean(float(r["best_val_accuracy"]) for r in g),
                min(float(r["best_val_accuracy"]) for r in g), max(float(r["best_val_accuracy"]) for r in g),
                statistics.mean(float(r["test_accuracy"]) for r in g)) for k, g in grouped.items()}


@pytest.mark.parametrize("folder,key,labels", [
    (f"precision/{MACHINE}/model1", "precision", {"float32": "float32", "mixed_bfloat16": "mixed_bfloat16"}),
    (f"precision/{MACHINE}/model2", "precision", {"float32": "float32", "mixed_bfloat16": "mixed_bfloat16"}),
    (f"precision/{MACHINE}/model3", "precision", {"float32": "float32", "mixed_bfloat16": "mixed_bfloat16"}),
    (f"feature_int8/{MACHINE}", "trainer.feature_cache.runtime",
     {"onnxruntime": "float32 (ONNX Runtime)", "onnxruntime_int8": "int8 (ONNX Runtime QDQ)"}),
])
def test_performances_seed_tables_are_their_runs(folder, key, labels):
    for value, (mean, low, high, test) in over_seeds(runs(folder), key).items():
        row = f"| {labels[value]} | {mean:.4f} ({low:.4f}-{high:.4f}) | {test:.4f} |"
        assert row in PERFORMANCE, row


def test_performances_step_times_in_each_precision_are_the_benchmarks():
    float32, bf16 = (json.loads((ROOT / "results" / "epyc" / f"steps_{p}" / "bench.json").read_text())["steps"]
                     for p in ("float32", "mixed_bfloat16"))
    for ours, theirs in zip(float32, bf16):
        a, b = ours["median_step_seconds"], theirs["median_step_seconds"]
        assert f"{a:.3f} → {b:.3f} s ({a / b:.2f}×)" in PERFORMANCE, ours["model"]


def test_the_finetune_guides_switch_table_is_the_recipe_benchmarks():
    guide = (ROOT / "docs" / "finetune.md").read_text()
    labels = {"baseline": "none", "label_smoothing": "label smoothing 0.1", "ema": "EMA of the weights",
              "cosine": "cosine head stage", "all": "all three", "preset": "the preset, both stages",
              "preset_lr_1e-4": "the preset, fine-tune stage at 1e-4"}
    grouped = {}
    for r in runs(f"recipe/{MACHINE}"):
        grouped.setdefault(r["switch"], []).append(r)
    for switch, label in labels.items():
        final, test, flip = (statistics.mean(float(r[k]) for r in grouped[switch])
                             for k in ("final_val", "test", "test_tta_flip"))
        cells = [f"{v:.4f}" for v in (final, test, flip)]
        assert re.search(rf"^\| {re.escape(label)} \| \**{cells[0]}\** \| \**{cells[1]}\** \| {cells[2]} \|$", guide,
                         re.M), (label, cells)


def test_performances_scaling_table_is_the_data_scale_benchmarks():
    result = json.loads((ROOT / "results" / "data_scale" / "results.json").read_text())
    for row in result["rows"]:
        cells = (f"{row['images']:,}", f"{row['setup_s']:.2f}", f"{row['setup_ms_per_image']:.3f} ms",
                 f"{row['decode_s']:.1f}", f"{row['peak_rss_mb']:.0f}")
        assert "| " + " | ".join(cells) + " |" in PERFORMANCE, cells
    calls = result["stat_calls_per_image"]
    assert f"{calls['images']:,} images:\n{calls['mean']:.2f} stat-family system call per image, {calls['max']} at " \
           "most" in PERFORMANCE


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_the_tutorial_tables_are_the_tutorial_runs(backend):
    guide = (ROOT / "docs" / "tutorial.md").read_text()
    for experiment in ("model1", "model2", "model3", "model4"):
        metrics = json.loads((ROOT / "results" / "tutorial" / backend / experiment / "metrics.json").read_text())
        best, test = f"{metrics['best_val_accuracy']:.3f}", f"{metrics['test_accuracy']:.3f}"
        assert re.search(rf"^\| {experiment} \|.*\| {best} / {test} \|", guide, re.M), (backend, experiment)
        if backend == "tensorflow":
            assert re.search(rf"^\| `{experiment}`: .* \| {best} \| {test} \|", README, re.M), experiment


def test_performances_cold_start_table_is_the_benchmarks():
    table = (ROOT / "results" / "cold_start" / MACHINE / "table.md").read_text()
    rows = re.findall(r"^\| (\d) \| 3 \| (.*) \|$", table, re.M)
    assert len(rows) == 3
    for views, cells in rows:
        cells = cells.split(" | ")
        wall, start, decode, export, features, _, epochs, test, reached, best, tested = cells
        ours = [wall, start, decode, export, features, epochs, test, reached.replace(", ", ", at "), best, tested]
        assert re.search(rf"^\| {views}( \(default\))? \| " + re.escape(" | ".join(ours)) + r" \|$", PERFORMANCE,
                         re.M), views
