"""Where the default run's time goes from empty caches, and what fewer augmented feature views buy.

    python benchmarks/cold_start.py [--views 1,2,4] [--seeds 0,1,2]

For each number of views and seed, `python -m catdog.train trainer.feature_cache.views=V seed=S` runs with an
empty cache. Its train.log's timestamps split the process into phases: start to the Run line (imports,
composing, building the task), decoding, the ONNX export and int8 check, the training views' feature pass,
the validation and test features, the head's epochs and the test. Results go to results/cold_start/<machine>/:
table.md (medians over seeds per view count; accuracies as means) and runs.csv. Needs CATDOG_DATA and
CATDOG_WEIGHTS, as the README's Install.
"""

import argparse
import csv
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
PHASES = ("start_to_run_line", "decode", "export_and_int8_check", "train_features", "val_test_features",
          "head_epochs", "test")


def phases(log: Path, started: float) -> dict:
    """Seconds per phase from `log`'s timestamps; `started`, the process's start (epoch seconds)."""
    lines = [(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp(), line)
             for line in log.read_text().splitlines() if (m := STAMP.match(line))]

    def when(pattern, last=False):
        found = [(t, line) for t, line in lines if re.search(pattern, line)]
        return found[-1 if last else 0]

    run, data = when(r"Run: ")[0], when(r"\] - Data ")[0]
    features_end, line = when(r"Features of the train images.*images in")
    features = float(re.search(r"images in ([0-9.]+) s", line).group(1))
    stage, last_epoch, result = when(r"Stage ")[0], when(r"Epoch \d+/", last=True)[0], when(r"Result:")[0]
    reached = [t for t, line in lines if (m := re.search(r"Epoch \d+/\d+: .*val_accuracy ([0-9.]+)", line))
               and float(m.group(1)) >= 0.97]
    return {**dict(zip(PHASES, (run - started, data - run, features_end - features - data, features,
                                stage - features_end, last_epoch - stage, result - last_epoch))),
            "wall_to_0.97_val": reached[0] - started if reached else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", default="1,2,4")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    machine = subprocess.run([sys.executable, "-m", "catdog.utils.run_info"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
    outputs, results = ROOT / "outputs/cold_start" / machine, ROOT / "results/cold_start" / machine
    rows = []
    for seed in args.seeds.split(","):
        for views in args.views.split(","):
            run, cache = outputs / f"views{views}-seed{seed}", outputs / f"cache-views{views}-seed{seed}"
            shutil.rmtree(run, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
            started = time.time()
            subprocess.run([sys.executable, "-m", "catdog.train", f"trainer.feature_cache.views={views}",
                            f"seed={seed}", f"paths.cache_dir={cache}", f"hydra.run.dir={run}"],
                           cwd=ROOT, check=True, capture_output=True)
            wall = time.time() - started
            metrics = json.loads((run / "metrics.json").read_text())
            row = {"views": int(views), "seed": int(seed), "wall_s": wall, **phases(run / "train.log", started),
                   "seconds_to_0.97_val": metrics["seconds_to_val_accuracy"].get("0.97"),
                   "best_val_accuracy": metrics["best_val_accuracy"], "test_accuracy": metrics["test_accuracy"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    results.mkdir(parents=True, exist_ok=True)
    with open(results / "runs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    timed = ["wall_s", *PHASES]
    lines = [f"# The default run from empty caches, by feature views ({machine})", "",
             f"`python benchmarks/cold_start.py --views {args.views} --seeds {args.seeds}`: "
             "`python -m catdog.train trainer.feature_cache.views=V seed=S`, each from an empty cache. Seconds are "
             "medians over seeds, from train.log's timestamps; accuracies are means. `reached 0.97`: the runs "
             "whose validation accuracy reached 0.97, and the median time from the process's start to the end "
             "of the epoch that reached it (train.log's epoch line, so checkpointing and logging count).", "",
             "| views | runs | " + " | ".join(timed) + " | reached 0.97 | mean best val | mean test |",
             "|---" * (len(timed) + 5) + "|"]
    for views in dict.fromkeys(r["views"] for r in rows):
        group = [r for r in rows if r["views"] == views]
        median = lambda key: statistics.median(r[key] for r in group if r[key] is not None)  # noqa: E731
        reached = [r["wall_to_0.97_val"] for r in group if r["wall_to_0.97_val"] is not None]
        when = f", {statistics.median(reached):.1f} s" if reached else ""
        lines.append(f"| {views} | {len(group)} | " + " | ".join(f"{median(k):.1f}" for k in timed)
                     + f" | {len(reached)} of {len(group)}{when} | "
                     f"{statistics.mean(r['best_val_accuracy'] for r in group):.4f} | "
                     f"{statistics.mean(r['test_accuracy'] for r in group):.4f} |")
    (results / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
