"""`python -m catdog.bench`: step-time benchmark per model x backend, and catdog vs the tutorial's pipeline."""

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import DictConfig

from catdog.errors import CatdogError
from catdog.analysis.history import read_history, seconds_to
from catdog.utils.io import write_json, write_text
from catdog.analysis.plots import grouped_bars, plt, save_figure
from catdog.analysis.report import markdown_table, read_run
from catdog.utils.run_info import cpu_info, describe_cpu, package_versions

log = logging.getLogger("catdog.bench")
# benchmarks/ (the tutorial's pipeline) is in a source checkout, two levels above src/catdog/
REPO_ROOT = Path(__file__).resolve().parents[3]  # src/catdog/analysis/bench.py


def _run(command, **kwargs):
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    return result, time.perf_counter() - start


def step_benchmark(model, backend, cfg) -> dict:
    """catdog.analysis.stepbench in a fresh process (its own backend, its own peak RSS)."""
    result, _ = _run(env={**os.environ, "KERAS_BACKEND": backend}, command=[
                      sys.executable, "-m", "catdog.analysis.stepbench", "--model", model, "--backend", backend,
                      "--steps", str(cfg.steps), "--warmup", str(cfg.warmup), "--batch-size", str(cfg.batch_size),
                      "--image-size", str(cfg.image_size), "--jit-compile", str(cfg.jit_compile).lower(),
                      "--precision", cfg.precision, f"--xla-flags={cfg.backend_options[backend].xla_flags or ''}",
                      "--import-tensorflow", str(cfg.backend_options[backend].import_tensorflow).lower()])
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("STEPBENCH ")), None)
    if result.returncode or line is None:
        raise CatdogError(f"stepbench {model}/{backend} failed: {result.stderr[-1500:]}")
    return json.loads(line.removeprefix("STEPBENCH "))


def tutorial_script(cfg) -> Path:
    """`peer.script`, the tutorial's pipeline; a relative path is taken from the repository root."""
    script = Path(cfg.peer.script).expanduser()
    return script if script.is_absolute() else REPO_ROOT / script


def peer_comparison(experiment, cfg, out: Path, progress) -> list[dict]:
    """The same experiment, same epochs and data, by the tutorial's pipeline (`peer.script`), then by
    catdog.train on each of `peer.backends`, one after the other; one row per backend against the same
    tutorial run. `progress(what)` is told of each run as it ends."""
    peer_cfg = cfg.peer
    n = experiment.removeprefix("model")
    peer_dir = out / "peer" / experiment
    result, peer_wall = _run([sys.executable, str(tutorial_script(cfg)), "--models", n,
                              "--epochs", str(peer_cfg.epochs), "--in-process", "--data-dir", peer_cfg.data_root,
                              "--weights", peer_cfg.weights, "--out-dir", str(peer_dir)])
    if result.returncode:
        raise CatdogError(f"the tutorial's pipeline on {experiment} failed: {result.stderr[-1500:]}")
    progress(f"the tutorial's code, {experiment}: {peer_wall:.0f} s")
    peer = {"wall_seconds": peer_wall, "train_images": peer_train_images(Path(peer_cfg.data_root) / "train"),
            **json.loads((peer_dir / "results.jsonl").read_text().splitlines()[-1]),
            **json.loads((peer_dir / f"history_model{n}.json").read_text())}
    target = peer_cfg.targets.get(experiment)
    rows = []
    for backend in peer_cfg.backends:
        rows.append(comparison_row(experiment, target, peer, _catdog_run(experiment, backend, cfg, out)))
        progress(f"catdog, {experiment} on {backend}: {rows[-1]['catdog_wall_seconds']:.0f} s, "
                 f"{rows[-1]['wall_speedup']:.2f}x the tutorial's code's speed")
    return rows


def peer_train_images(folder: Path) -> int:
    """The images the tutorial's `image_dataset_from_directory` trains on: its formats, anywhere in class folders."""
    return sum(f.suffix.lower() in (".bmp", ".gif", ".jpeg", ".jpg", ".png")
               for c in folder.iterdir() if c.is_dir() for f in c.rglob("*"))


def _catdog_run(experiment, backend, cfg, out: Path) -> dict:
    peer_cfg = cfg.peer
    run_dir = out / "catdog" / backend / experiment
    overrides = [f"experiment={experiment}", f"backend={backend}", f"trainer.max_epochs={peer_cfg.epochs}",
                 f"dataset.root={peer_cfg.data_root}", "trainer.verbose=0", f"hydra.run.dir={run_dir}",
                 # cold at the start of the bench, then shared by one backend's runs like a sweep's
                 f"paths.cache_dir={out / ('cache-' + backend)}",
                 *peer_cfg.overrides]
    result, catdog_wall = _run([sys.executable, "-m", "catdog.train", *overrides],
                               env={**os.environ, "CATDOG_WEIGHTS": peer_cfg.weights, "KERAS_BACKEND": backend})
    if result.returncode:
        raise CatdogError(f"catdog {experiment} on {backend} failed: {result.stderr[-1500:]}")
    return {"wall_seconds": catdog_wall, **read_run(run_dir), "history": read_history(run_dir / "history.csv")}


def comparison_row(experiment, target, peer, ours) -> dict:
    """One bench row from the peer's records (results.jsonl and history_modelN.json merged, plus its wall
    seconds and training image count) and catdog's (metrics.json over provenance.json, history.csv as `history`,
    wall seconds).

    Time to `target` validation accuracy: catdog's from the start of its run, decoding and features
    included; the peer's from the start of its `fit` (its setup is not recorded), so a lower bound.
    """
    peer_val, ours_val = peer["history"]["val_accuracy"], ours["history"]["val_accuracy"]
    peer_train = [e - v for e, v in zip(peer["epoch_s"], peer["val_s"])]
    ours_epoch = statistics.median(ours["epoch_seconds"])
    return {
        "experiment": experiment, "epochs": len(peer_val), "catdog_backend": ours["backend"],
        "peer_wall_seconds": peer["wall_seconds"], "catdog_wall_seconds": ours["wall_seconds"],
        "peer_median_epoch_seconds": peer["epoch_s_median"], "catdog_median_epoch_seconds": ours_epoch,
        # training images per second, the first epoch (tracing, compilation) left out on both sides
        "peer_train_images_per_second": peer["train_images"] / statistics.median(peer_train[1:] or peer_train),
        "catdog_train_images_per_second": ours["train_images_per_second"],
        "target_val_accuracy": target,
        "peer_seconds_to_target": None if target is None else seconds_to(target, peer_val, peer["epoch_s"]),
        "catdog_seconds_to_target": None if target is None else seconds_to(target, ours_val, ours["epoch_seconds"],
                                                                           ours["setup_seconds"]),
        "peer_best_val_accuracy": peer["best_val_accuracy"], "catdog_best_val_accuracy": ours["best_val_accuracy"],
        "peer_peak_rss_mb": peer["peak_rss_mb"], "catdog_peak_rss_mb": ours["peak_rss_mb"],
        "wall_speedup": peer["wall_seconds"] / ours["wall_seconds"],
        "epoch_speedup": peer["epoch_s_median"] / ours_epoch,
    }


STEP_COLUMNS = ("model", "backend", "precision", "jit_compile", "build_compile_seconds", "first_step_seconds",
                "median_step_seconds", "train_images_per_second", "inference_images_per_second", "peak_rss_mb")
PEER_COLUMNS = ("experiment", "epochs", "catdog_backend", "peer_wall_seconds", "catdog_wall_seconds", "wall_speedup",
                "peer_median_epoch_seconds", "catdog_median_epoch_seconds", "epoch_speedup",
                "peer_train_images_per_second", "catdog_train_images_per_second", "target_val_accuracy",
                "peer_seconds_to_target", "catdog_seconds_to_target",
                "peer_best_val_accuracy", "catdog_best_val_accuracy", "peer_peak_rss_mb", "catdog_peak_rss_mb")


def plot(steps, peers, path) -> None:
    panels = [p for p in (steps, peers) if p]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(6.5 * max(len(panels), 1), 4), squeeze=False)
    axes = iter(axes[0])
    if steps:
        series = {}
        for r in steps:
            series.setdefault(r["backend"], {})[r["model"]] = r["train_images_per_second"]
        grouped_bars(next(axes), series, "training images / s (median step)", "backend comparison")
    if peers:
        series = {"tutorial's code": {p["experiment"]: p["peer_wall_seconds"] for p in peers}}
        for p in peers:
            series.setdefault(f"catdog ({p['catdog_backend']})", {})[p["experiment"]] = p["catdog_wall_seconds"]
        grouped_bars(next(axes), series, f"wall seconds ({peers[0]['epochs']} epochs, whole process)",
                      "catdog vs tutorial")
    save_figure(fig, path, 90)


def run_bench(cfg: DictConfig) -> dict:
    """The step-time rows and the comparison with the tutorial's pipeline that `cfg` asks for; writes
    bench.json, bench.md and bench.png into the run directory."""
    out = Path(cfg.paths.output_dir)
    total = len(cfg.models) * len(cfg.backends)
    if cfg.peer.enabled:
        total += len(cfg.peer.experiments) * (1 + len(cfg.peer.backends))
    done = []

    def progress(what):
        done.append(what)
        log.info("[%d/%d] %s%s", len(done), total, what, f"; {total - len(done)} to go" if len(done) < total else "")

    steps = []
    for model in cfg.models:
        for backend in cfg.backends:
            steps.append(step_benchmark(model, backend, cfg))
            progress(f"step time, {model} on {backend}: {steps[-1]['train_images_per_second']:.1f} train images/s")
    peers = []
    if cfg.peer.enabled:
        if not (cfg.peer.data_root and cfg.peer.weights and tutorial_script(cfg).is_file()):
            raise CatdogError(f"The comparison with the tutorial's pipeline needs peer.script "
                              f"({tutorial_script(cfg)}, in a source checkout), peer.data_root and peer.weights "
                              "(or CATDOG_DATA and CATDOG_WEIGHTS); set peer.enabled=false to skip it.")
        for experiment in cfg.peer.experiments:
            peers += peer_comparison(experiment, cfg, out, progress)
    cpu, versions = cpu_info(), package_versions()
    result = {"cpu": cpu, "versions": versions, "steps": steps, "peer": peers}
    write_json(out / "bench.json", result)
    text = (f"# catdog.bench\n\nOn {describe_cpu(cpu)}; "
            + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".\n")
    if steps:
        text += "\n## Step times (fresh process per row)\n\n" + markdown_table(steps, STEP_COLUMNS)
    if peers:
        text += "\n## catdog vs the tutorial's pipeline (same data, same epochs, one after the other)\n\n"
        text += markdown_table(peers, PEER_COLUMNS)
    write_text(out / "bench.md", text + "\n![bench](bench.png)\n")
    plot(steps, peers, out / "bench.png")
    return result
