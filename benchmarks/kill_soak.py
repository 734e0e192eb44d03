"""Kill soak: runs killed with SIGKILL at random moments and started again, in four phases.

    python benchmarks/kill_soak.py [--phases train,decode,features,sweep] [--kills 20] [--out results/kill_soak]

- train: one small 10-epoch run, killed at random moments or right when a checkpoint or cache temporary
  appears (a write in progress), and resumed each time. At the end the history must hold each epoch exactly
  once, and each validation loss must be within a stated tolerance of an uninterrupted run with the same seed.
- decode: a first run on new images, killed while it decodes them into an empty cache, then run again.
- features: model=mobilenet (random weights, augmented views), killed during its feature pass, then again.
  Each of these two runs its rounds on a cache folder of its own.
- sweep: a 4-job Hydra multirun killed at random moments, then the same command again until every job is
  done; each job's history must match an uninterrupted sweep's.

After every kill, every checkpoint, cache and JSON file is opened. The decode and feature caches left in the
end must equal an uninterrupted run's, byte for byte. Writes `result.json` and `report.md` to --out.
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


def command(data, cache, run, ckpt=False, epochs=EPOCHS, extra=()):
    args = [sys.executable, "-m", "catdog.train", "experiment=model3", "augment=none", f"dataset.root={data}",
            "dataset.image_size=[64,64]", "dataset.batch_size=8", f"trainer.max_epochs={epochs}",
            "model.optimizer.learning_rate=1e-4", "trainer.precision=float32",
            "trainer.verbose=0", f"paths.cache_dir={cache}", *extra]
    return args + ([f"ckpt_path={run}"] if ckpt else [f"hydra.run.dir={run}"])


FEATURES = ["model=mobilenet", "augment=flip", "model.backbone.weights=null", "model.backbone.alpha=0.35",
            "trainer.feature_cache.runtime=onnxruntime", "trainer.feature_cache.views=8"]
SWEEP = ["seed=0,1,2,3"]


def temporaries(run: Path, cache: Path) -> set:
    """Files of writes in progress (or left by a killed writer): checkpoint, cache and JSON/CSV temporaries."""
    return {*run.glob("checkpoints/.*.tmp.keras"), *cache.glob(".*.tmp"), *run.glob(".*.tmp")}


def truncated_files(run: Path, cache: Path) -> list[str]:
    """Files that exist under their final name but do not open whole."""
    import keras

    from catdog import ImageClassifier  # noqa: F401  (registers catdog's classes with Keras, as a user's import does)

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


def soak_train(args, rng, work, data, env):
    cache, run = work / "cache", work / "run"
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
    return {
        "kills": kills, "kills_during_a_write": sum(1 for e in log if e.get("kill") and e["mode"] != "random"),
        "files_found_truncated": len(truncated), "truncated": truncated,
        "epochs_once_each": epochs == list(range(EPOCHS)),
        "best_keras_loadable_after_every_kill": all(e["best_loads"] for e in log if e.get("kill") and
                                                    e["epochs_in_last_checkpoint"]),
        "max_relative_val_loss_difference": rel, "tolerance": TOLERANCE, "within_tolerance": rel <= TOLERANCE,
        "final_val_loss": {"soaked": soaked[-1][1], "uninterrupted": plain[-1][1]},
        "seconds": time.time() - started, "log": log,
        "passed": epochs == list(range(EPOCHS)) and not truncated and rel <= TOLERANCE,
    }


def kill_when_writing(cmd, env, watch, rng, limit=300, delay=2.0):
    """Start `cmd`; SIGKILL it a random 0-`delay` s after a temporary appears in `watch()` (a write in
    progress), or let it end. True if it was killed."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    left_over, deadline = watch(), time.time() + limit
    while proc.poll() is None and time.time() < deadline and not (watch() - left_over):
        time.sleep(0.005)
    if proc.poll() is None:
        time.sleep(rng.uniform(0, delay))
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def same_files(a: Path, b: Path, pattern) -> bool:
    """The .npy caches `pattern` names in folders `a` and `b`, by kind (`features-train`, ...; a key in a name
    depends on where its inputs sit): the same kinds, the same arrays."""
    def kinds(folder):
        return {p.name.rsplit("-", 1)[0]: p for p in folder.glob(pattern)}

    ours, theirs = kinds(a), kinds(b)
    return bool(ours) and ours.keys() == theirs.keys() and all(
        np.array_equal(np.load(ours[k]), np.load(theirs[k])) for k in ours)


def soak_cache(args, rng, work, data, env, name, extra):
    """`args.kills` rounds, each on an empty cache folder: the first run killed while it writes `name` caches
    (a random 0-0.5 s after the temporary appears), then run again to its end; the caches must equal an
    uninterrupted run's."""
    pattern = f"{'images' if name == 'decode' else 'features'}-*.npy"
    writes = "images" if name == "decode" else "features"  # the temporaries whose write a kill should cut
    reference_cache = work / f"{name}-reference-cache"
    reference = subprocess.run(command(data, reference_cache, work / f"{name}-reference", epochs=1, extra=extra),
                               env=env, capture_output=True, text=True)
    log, truncated, started, kills, reruns_ok, equal = [], [], time.time(), 0, True, True
    for round_ in range(args.kills):
        cache, runs = work / f"{name}-cache-{round_}", work / f"{name}-runs-{round_}"
        killed = kill_when_writing(command(data, cache, runs / "killed", epochs=1, extra=extra), env,
                                   lambda: {p for p in cache.glob(".*.tmp") if writes in p.name}, rng, delay=0.5)
        kills += killed
        bad = truncated_files(runs / "killed", cache)
        final = subprocess.run(command(data, cache, runs / "final", epochs=1, extra=extra), env=env,
                               capture_output=True, text=True)
        same = same_files(cache, reference_cache, pattern)
        truncated += bad
        reruns_ok, equal = reruns_ok and final.returncode == 0, equal and same
        log.append({"round": round_, "killed": killed, "truncated": bad, "rerun_returncode": final.returncode,
                    "cache_equals_uninterrupted": same})
        print(json.dumps({"phase": name, **log[-1]}), flush=True)
    return {"kills": kills, "files_found_truncated": len(truncated), "truncated": truncated,
            "rerun_completes": reruns_ok, "cache_equals_uninterrupted": equal, "seconds": time.time() - started,
            "log": log, "passed": reference.returncode == 0 and reruns_ok and equal and not truncated and kills > 0}


def soak_sweep(args, rng, work, data, env):
    """A 4-job multirun killed at random moments, then run again until every job has its metrics."""
    cache, sweep, log, started = work / "sweep-cache", work / "sweep", [], time.time()
    cmd = command(data, cache, sweep, epochs=3, extra=SWEEP)
    cmd = [*cmd[:3], "-m", *[c.replace("hydra.run.dir=", "hydra.sweep.dir=") for c in cmd[3:]]]
    kills = 0
    for _ in range(args.kills * 3):
        if kills == args.kills:
            break
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.time() + rng.uniform(5, 40)
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        if proc.poll() is not None:
            log.append({"kill": None, "note": f"the sweep ended with {proc.returncode} before the kill"})
            break
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and any job process it started
        proc.wait()
        kills += 1
        done = sorted(p.parent.name for p in sweep.glob("*/metrics.json"))
        log.append({"kill": kills, "jobs_done": done})
        print(json.dumps({"phase": "sweep", **log[-1]}), flush=True)
    reruns = 0
    while len(list(sweep.glob("*/metrics.json"))) < 4 and reruns < 5:
        reruns += 1
        final = subprocess.run(cmd, env=env, capture_output=True, text=True)
        log.append({"rerun": reruns, "returncode": final.returncode, "stderr": final.stderr[-500:]})
    reference = work / "sweep-reference"
    ref_cmd = [c.replace(str(sweep), str(reference)) for c in cmd]
    subprocess.run(ref_cmd, env=env, capture_output=True, text=True)
    jobs = [str(n) for n in range(4)]
    once = all([e for e, _ in history(sweep / j)] == [0, 1, 2] for j in jobs if (sweep / j / "history.csv").is_file())
    rel = max((abs(a - b) / max(abs(b), 1e-8) for j in jobs if (sweep / j / "history.csv").is_file()
               for (_, a), (_, b) in zip(history(sweep / j), history(reference / j))), default=float("inf"))
    finished = all((sweep / j / "metrics.json").is_file() for j in jobs)
    return {"kills": kills, "reruns": reruns, "every_job_finished": finished, "epochs_once_each": once,
            "max_relative_val_loss_difference": rel, "tolerance": TOLERANCE, "seconds": time.time() - started,
            "log": log, "passed": finished and once and rel <= TOLERANCE}


PHASES = {"train": soak_train,
          "decode": lambda *a: soak_cache(*a, "decode", ()),
          "features": lambda *a: soak_cache(*a, "features", FEATURES),
          "sweep": soak_sweep}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/kill_soak")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill_soak-"))
    data = work / "data"
    make_images(data)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    results = {}
    for phase in args.phases.split(","):
        results[phase] = PHASES[phase](args, rng, work, data, env)
        print(json.dumps({phase: {k: v for k, v in results[phase].items() if k != "log"}}), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(results, indent=2) + "\n")
    rows = [f"| {phase} | {r['kills']} | {r.get('files_found_truncated', 0)} | "
            f"{r.get('epochs_once_each', r.get('cache_equals_uninterrupted'))} | "
            f"{r.get('max_relative_val_loss_difference', 0.0):.2e} | {r['passed']} |" for phase, r in results.items()]
    (out / "report.md").write_text(
        f"# Kill soak (`python benchmarks/kill_soak.py --phases {args.phases} --kills {args.kills}`)\n\n"
        "train: each epoch once and the losses of an uninterrupted run; decode and features: the cache files "
        "equal an uninterrupted run's; sweep: every job finished, each epoch once, an uninterrupted sweep's "
        f"losses (tolerance {TOLERANCE}, relative).\n\n"
        "| phase | kills | files found truncated | each epoch once / cache equal | max relative val_loss "
        "difference | passed |\n|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "log"} for k, v in results.items()}, indent=2))
    return 0 if all(r["passed"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
