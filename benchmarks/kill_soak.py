"""Kill soak: one small 10-epoch run, killed with SIGKILL at random moments and resumed each time.

    python benchmarks/kill_soak.py [--kills 20] [--out results/kill_soak]

Each kill lands at a random moment, or right when a checkpoint or cache temporary appears (a write in
progress). After every kill, every checkpoint, cache and JSON file is opened. At the end, the history must
hold each epoch exactly once, and the final validation loss must be within a stated tolerance of an
uninterrupted run with the same seed. Writes `result.json` and `report.md` to --out.
"""

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

import catdog  # noqa: F401  (registers catdog's task classes once Keras is imported, as a user does)

EPOCHS = 10
TOLERANCE = 1e-3  # relative, on each epoch's validation loss: the run resumes as if never interrupted


def make_images(root: Path, per_class=600, seed=0):
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("validation", per_class // 2)):
        for label, name in enumerate(("cats", "dogs")):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 90, (72, 72, 3), dtype=np.uint8)
                img[:, slice(0, 36) if label == 0 else slice(36, 72)] += 150
                Image.fromarray(img).save(folder / f"{name}.{i}.jpg")


def command(data, cache, run, ckpt=False):
    args = [sys.executable, "-m", "catdog.train", "experiment=model3", "augment=none", f"dataset.root={data}",
            "dataset.image_size=[64,64]", "dataset.batch_size=8", f"trainer.max_epochs={EPOCHS}",
            "model.optimizer.learning_rate=1e-4",
            "trainer.verbose=0", f"paths.cache_dir={cache}"]
    return args + ([f"ckpt_path={run}"] if ckpt else [f"hydra.run.dir={run}"])


def temporaries(run: Path, cache: Path) -> set:
    """Files of writes in progress (or left by a killed writer): checkpoint, cache and JSON/CSV temporaries."""
    return {*run.glob("checkpoints/.*.tmp.keras"), *cache.glob(".*.tmp"), *run.glob(".*.tmp")}


def truncated_files(run: Path, cache: Path) -> list[str]:
    """Files that exist under their final name but do not open whole."""
    import keras

    bad = []
    for path in (p for p in run.glob("checkpoints/*.keras") if not p.name.startswith(".")):
        try:
            with zipfile.ZipFile(path) as z:
                if z.testzip() is not None:
                    raise zipfile.BadZipFile("bad entry")
            keras.saving.load_model(path, compile=False)
        except Exception as exc:  # any failure to open is a truncated or corrupt file
            bad.append(f"{path.name}: {str(exc)[:200]}")
    for path in cache.glob("*.npy"):
        try:
            np.asarray(np.load(path, mmap_mode="r")).sum()
            json.loads(path.with_suffix(".json").read_text())
        except Exception as exc:
            bad.append(f"{path.name}: {str(exc)[:200]}")
    for path in run.glob("*.json"):
        try:
            json.loads(path.read_text())
        except ValueError as exc:
            bad.append(f"{path.name}: {str(exc)[:200]}")
    return bad


def history(run: Path):
    with open(run / "history.csv", newline="") as f:
        return [(int(r["epoch"]), float(r["val_loss"])) for r in csv.DictReader(f)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/kill_soak")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill_soak-"))
    data, cache, run = work / "data", work / "cache", work / "run"
    make_images(data)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    kills, log, truncated, started = 0, [], [], time.time()
    while kills < args.kills:
        resume = (run / "checkpoints" / "last.keras").is_file()
        proc = subprocess.Popen(command(data, cache, run, ckpt=resume), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        mode = rng.choice(["random", "random", "during a write"])
        left_over = temporaries(run, cache)  # a killed writer's, removed by the next write
        deadline = time.time() + (rng.uniform(8, 30) if mode == "random" else 90)
        while proc.poll() is None and time.time() < deadline:
            if mode == "during a write" and temporaries(run, cache) - left_over:
                break
            time.sleep(0.005 if mode == "during a write" else 0.1)
        if proc.poll() is not None:  # it finished before the kill: start a fresh soak run
            log.append({"kill": None, "mode": mode, "note": f"run ended with {proc.returncode} before the kill"})
            if (run / "metrics.json").is_file():
                break
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        epoch = None
        if (run / "checkpoints" / "last.keras").is_file():
            with zipfile.ZipFile(run / "checkpoints" / "last.keras") as z:
                epoch = json.loads(z.read("catdog/trainer_state.json"))["epoch"]
        bad = truncated_files(run, cache)
        truncated += bad
        log.append({"kill": kills, "mode": mode, "epochs_in_last_checkpoint": epoch, "truncated": bad,
                    "best_loads": (run / "checkpoints" / "best.keras").is_file() and not bad})
        print(json.dumps(log[-1]), flush=True)
    if not (run / "metrics.json").is_file():
        final = subprocess.run(command(data, cache, run, ckpt=(run / "checkpoints").is_dir()), env=env,
                               capture_output=True, text=True)
        assert final.returncode == 0, final.stderr[-3000:]
    straight = work / "uninterrupted"
    reference = subprocess.run(command(data, cache, straight), env=env, capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr[-3000:]
    soaked, plain = history(run), history(straight)
    epochs = [e for e, _ in soaked]
    rel = max(abs(a - b) / max(abs(b), 1e-8) for (_, a), (_, b) in zip(soaked, plain))
    result = {
        "kills": kills, "kills_during_a_write": sum(1 for e in log if e.get("kill") and e["mode"] != "random"),
        "files_found_truncated": len(truncated), "truncated": truncated,
        "epochs_once_each": epochs == list(range(EPOCHS)),
        "best_keras_loadable_after_every_kill": all(e["best_loads"] for e in log if e.get("kill") and
                                                    e["epochs_in_last_checkpoint"]),
        "max_relative_val_loss_difference": rel, "tolerance": TOLERANCE, "within_tolerance": rel <= TOLERANCE,
        "final_val_loss": {"soaked": soaked[-1][1], "uninterrupted": plain[-1][1]},
        "seconds": time.time() - started, "log": log,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "report.md").write_text(
        f"# Kill soak (`python benchmarks/kill_soak.py --kills {args.kills}`)\n\n"
        f"| kills | during a write | files found truncated | each epoch once | best.keras loads after every kill "
        f"| max relative val_loss difference vs uninterrupted (tolerance {TOLERANCE}) |\n|---|---|---|---|---|---|\n"
        f"| {kills} | {result['kills_during_a_write']} | {len(truncated)} | {result['epochs_once_each']} | "
        f"{result['best_keras_loadable_after_every_kill']} | {rel:.2e} |\n")
    print(json.dumps({k: v for k, v in result.items() if k != "log"}, indent=2))
    return 0 if (result["epochs_once_each"] and not truncated and result["within_tolerance"]) else 1


if __name__ == "__main__":
    sys.exit(main())
