"""The fine-tune preset's head stage with each switch of the practitioner's loop alone and all together, over
seeds, then test-time augmentation on every run's test split: the table the preset's defaults are chosen from.

    python benchmarks/recipe_switches.py [--seeds 0,1,2] [--epochs 10] [--switches baseline,ema,...] [OVERRIDE...]

Each switch is a Hydra multirun of `experiment=finetune` (MobileNetV2, 224 px, average pooling, flips) with
only its head stage, on features cached once and shared by every run; `preset` runs both stages at the
preset's defaults. Rows of switches not named in --switches are kept from an earlier runs.csv. Every run's best checkpoint is then
evaluated by `catdog.evaluate` (the whole model on the images) on its own test split, never read while
choosing, without and with `tta=flip`. Results go to
results/recipe/<machine>/: table.md (means over seeds) and runs.csv (every run); catdog.report's report.md of
every run stays in outputs/recipe/<machine>/.
Needs CATDOG_DATA and CATDOG_WEIGHTS, as the README's Install.
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFF = ["model.loss.label_smoothing=0.0"]
SWITCHES = {  # "cosine": the head stage decays on a cosine; "preset": both stages, at the preset's defaults
    "baseline": OFF,
    "label_smoothing": ["model.loss.label_smoothing=0.1"],
    "ema": [*OFF, "callbacks=ema", "model.optimizer.use_ema=true"],
    "cosine": [*OFF, "cosine"],
    "all": ["model.loss.label_smoothing=0.1", "callbacks=ema", "model.optimizer.use_ema=true", "cosine"],
    "preset": ["preset"],
    "preset_lr_1e-4": ["preset", "trainer.stages.1.learning_rate=1e-4"],
}
SHOWN = {"cosine": "head stage cosine, 1 warm-up", "preset": "both stages, the preset's defaults"}


def stages(epochs: int, switch: list[str]) -> list[str]:
    if "preset" in switch:
        return []
    extra = ",schedule:cosine,warmup_epochs:1" if "cosine" in switch else ""
    return [f"trainer.stages=[{{name:head,epochs:{epochs}{extra}}}]"]


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--switches", default=",".join(SWITCHES))
    parser.add_argument("overrides", nargs="*", help="more overrides for every run, e.g. dataset.test_fraction=0.5")
    args = parser.parse_args()
    machine = subprocess.run([sys.executable, "-m", "catdog.utils.run_info"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
    outputs, results = ROOT / "outputs/recipe" / machine, ROOT / "results/recipe" / machine
    weights = os.environ.get("CATDOG_WEIGHTS")
    if not weights or not os.environ.get("CATDOG_DATA"):
        sys.exit("Set CATDOG_DATA (the tutorial's photos) and CATDOG_WEIGHTS (MobileNetV2's no-top file).")
    chosen = args.switches.split(",")
    rows = []
    if (results / "runs.csv").is_file():  # the other switches' rows, from an earlier invocation
        with open(results / "runs.csv", newline="") as f:
            rows = [{k: v if k == "switch" else int(v) if k in ("seed", "test_images") else float(v)
                     for k, v in r.items()} for r in csv.DictReader(f) if r["switch"] not in chosen]
    for name in chosen:
        overrides = [o for o in SWITCHES[name] if o not in SHOWN]
        sweep = outputs / name
        shutil.rmtree(sweep, ignore_errors=True)
        run([sys.executable, "-m", "catdog.train", "-m", "experiment=finetune", f"model.weights={weights}",
             *stages(args.epochs, SWITCHES[name]), f"seed={args.seeds}", "trainer.verbose=2",
             f"paths.cache_dir={outputs / 'cache'}", f"hydra.sweep.dir={sweep}", *args.overrides, *overrides])
        for job in sorted(p for p in sweep.iterdir() if (p / "metrics.json").exists()):
            evaluated = {}
            for tta in ("none", "flip"):  # the whole model on the images, as a user's evaluate runs it
                out = outputs.with_name(f"{machine}-evaluate") / name / job.name / tta
                run([sys.executable, "-m", "catdog.evaluate", f"ckpt_path={job / 'checkpoints/best.keras'}",
                     f"manifest={job / 'manifest.csv'}", "split=test", f"tta={tta}", f"hydra.run.dir={out}"])
                evaluated[tta] = json.loads((out / "evaluation.json").read_text())
            metrics = json.loads((job / "metrics.json").read_text())
            rows.append({"switch": name, "seed": metrics["seed"], "best_val": metrics["best_val_accuracy"],
                         "final_val": metrics["final_val_accuracy"], "test": evaluated["none"]["accuracy"],
                         "test_tta_flip": evaluated["flip"]["accuracy"], "test_images": evaluated["none"]["images"]})
    results.mkdir(parents=True, exist_ok=True)
    with open(results / "runs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# The fine-tune preset: each switch over seeds ({machine})", "",
             f"`python benchmarks/recipe_switches.py --seeds {args.seeds} --epochs {args.epochs}"
             f"{''.join(' ' + o for o in args.overrides)}`: "
             "experiment=finetune (MobileNetV2, 224 px, average pooling, flips), its head stage alone for "
             f"{args.epochs} epochs on cached features, and (`preset`) both its stages at its defaults. Means over "
             f"seeds; test is each run's own test split ({rows[0]['test_images']} images), evaluated once "
             "at the end, never used to choose.", "",
             "| switch | overrides | seeds | mean best val | mean final val | min final val | mean test "
             "| mean test, tta=flip |", "|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["switch"] for r in rows):
        group = [r for r in rows if r["switch"] == name]
        mean = lambda key: statistics.mean(r[key] for r in group)  # noqa: E731
        shown = " ".join(SHOWN.get(o, f"`{o}`") for o in SWITCHES[name])
        lines.append(f"| {name} | {shown} | {len(group)} | {mean('best_val'):.4f} | "
                     f"{mean('final_val'):.4f} | {min(r['final_val'] for r in group):.4f} | {mean('test'):.4f} | "
                     f"{mean('test_tta_flip'):.4f} |")
    (results / "table.md").write_text("\n".join(lines) + "\n")
    subprocess.run([sys.executable, "-m", "catdog.report", str(outputs)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)  # every run's curves and mistakes, beside the runs
    print("\n".join(lines))


if __name__ == "__main__":
    main()
