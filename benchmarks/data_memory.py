"""Memory, decode speed and epoch time of the data pipeline, into results/data_memory/.

    python benchmarks/data_memory.py [--data DIR] [--out results/data_memory] [--parts rss,decode,epoch]

1. Peak RSS of the same 1-epoch model1 run at 224 px (30 training and 30 validation batches, no test split,
   empty caches)
   on the tutorial's 3,000 photos and on the same photos hard-linked under new names to 5x (15,000): with
   the decode cache on disk (catdog's default) and with `dataset.cache_dir=null` (images in memory).
2. First-pass decode: plain Pillow in one thread (open, draft, convert, resize) against catdog's decode into
   its cache with one thread per core, images/s.
3. Epoch time on the tutorial data at 160 px (model1, 2 epochs, the second one timed) with the images read
   from the disk cache and held in memory, one after the other in this invocation.
Needs the tutorial's photos (--data, default $CATDOG_DATA). `--parts` reruns some parts (each one's figures
are measured within one invocation) and keeps the others from results.json.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def linked_copy(src: Path, dst: Path, times: int) -> int:
    """`src`'s split/class/image tree under `dst`, each image hard-linked under `times` names."""
    n = 0
    for image in sorted(src.rglob("*.jpg")):
        folder = dst / image.parent.relative_to(src)
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(times):
            os.link(image, folder / f"{image.stem}.x{k}{image.suffix}")
            n += 1
    return n


def train(data, run, cache, size, *extra) -> dict:
    cmd = [sys.executable, "-m", "catdog.train", "experiment=model1", "backend=tensorflow", "augment=none",
           f"dataset.root={data}", f"dataset.image_size=[{size},{size}]", "trainer.verbose=0",
           f"paths.cache_dir={cache}", f"hydra.run.dir={run}", *extra]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    metrics = json.loads((run / "metrics.json").read_text())
    return {**json.loads((run / "provenance.json").read_text()), **metrics}


def pillow_rate(paths, size) -> float:
    from PIL import Image

    start = time.perf_counter()
    for p in paths:
        with Image.open(p) as img:
            img.draft("RGB", (size, size))
            np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
    return len(paths) / (time.perf_counter() - start)


def catdog_rate(paths, size, cache) -> float:
    from catdog.data.cache import cached_decode

    start = time.perf_counter()
    cached_decode(paths, (size, size), 89478485, cache)
    return len(paths) / (time.perf_counter() - start)


def peak_rss_part(data: Path, tmp: Path) -> dict:
    limits = ["trainer.max_epochs=1", "trainer.limit_train_batches=30", "trainer.limit_val_batches=30",
              "test=false", "dataset.test_fraction=0"]  # copies of one photo would land in validation and test
    count = linked_copy(data, tmp / "x5", 5)
    rows = {}
    for name, root in (("3000", data), (str(count), tmp / "x5")):
        for where in ("disk", "memory"):
            cache = tmp / f"cache-{name}-{where}"
            extra = [] if where == "disk" else ["dataset.cache_dir=null"]
            m = train(root, tmp / f"run-{name}-{where}", cache, 224, *limits, *extra)
            rows[f"{where}_{name}"] = {"images": sum(m["num_images"].values()), "peak_rss_mb": m["peak_rss_mb"],
                                       "run_seconds": m["run_seconds"]}
            shutil.rmtree(cache, ignore_errors=True)
            print(where, name, rows[f"{where}_{name}"], flush=True)
    return rows


def decode_part(data: Path, tmp: Path) -> dict:
    paths = [str(p) for p in sorted((data / "train").rglob("*.jpg"))]
    cores = len(os.sched_getaffinity(0))
    pillow = float(np.median([pillow_rate(paths[i::3][:300], 160) for i in range(3)]))
    catdog = float(np.median([catdog_rate(paths[i::3], 160, tmp / f"decode-{i}") for i in range(3)]))
    return {"pillow_images_per_second_one_core": pillow, "catdog_images_per_second": catdog, "cores": cores,
            "ratio_to_pillow_times_cores": catdog / (pillow * cores)}


def epoch_part(data: Path, tmp: Path) -> dict:
    epochs = {}
    for where in ("disk", "memory", "disk", "memory"):
        extra = [] if where == "disk" else ["dataset.cache_dir=null"]
        run = tmp / f"epoch-{where}-{len(epochs.get(where, []))}"
        m = train(data, run, tmp / "cache-epochs", 160, "trainer.max_epochs=2", "test=false", *extra)
        epochs.setdefault(where, []).append(m["epoch_seconds"][1])
        print(where, m["epoch_seconds"], flush=True)
    return {"disk_epoch_seconds": epochs["disk"], "memory_epoch_seconds": epochs["memory"],
            "ratio_disk_to_memory": float(np.median(epochs["disk"]) / np.median(epochs["memory"]))}


PARTS = {"rss": peak_rss_part, "decode": decode_part, "epoch": epoch_part}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("CATDOG_DATA"))
    parser.add_argument("--out", default="results/data_memory")
    parser.add_argument("--parts", default="rss,decode,epoch")
    args = parser.parse_args()
    if not args.data or not Path(args.data).is_dir():
        raise SystemExit("Give --data (or CATDOG_DATA): the tutorial's cats_and_dogs_filtered folder.")
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from catdog.utils.run_info import cpu_info

    file = out / "results.json"
    results = json.loads(file.read_text()) if file.is_file() else {}
    for part in args.parts.split(","):
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            results[part] = {**PARTS[part](data, Path(tmp)), "cpu": cpu_info(), "load_average": os.getloadavg()}
        print(part, results[part], flush=True)
    file.write_text(json.dumps(results, indent=2) + "\n")
    (out / "report.md").write_text(report(results))
    print(report(results))


def report(results) -> str:
    from catdog.utils.run_info import describe_cpu

    rss, decode, epoch = results["rss"], results["decode"], results["epoch"]
    sizes = sorted(int(k.removeprefix("disk_")) for k in rss if k.startswith("disk_"))
    disk_s, mem_s = rss[f"disk_{sizes[0]}"], rss[f"memory_{sizes[0]}"]
    disk_l, mem_l = rss[f"disk_{sizes[-1]}"], rss[f"memory_{sizes[-1]}"]
    cores = decode["cores"]
    return f"""# Data pipeline: memory, decode, epoch time

`python benchmarks/data_memory.py` (results.json beside this file has every figure, each part's CPU and its
load average at the end).

## Peak RSS, model1 at 224 px, 1 epoch of 30 + 30 batches, empty caches

On {describe_cpu(rss['cpu'])}.

| images | decode cache on disk (default) | images in memory (`dataset.cache_dir=null`) |
| --- | --- | --- |
| {disk_s['images']:,} | {disk_s['peak_rss_mb']:,.0f} MB | {mem_s['peak_rss_mb']:,.0f} MB |
| {disk_l['images']:,} | {disk_l['peak_rss_mb']:,.0f} MB | {mem_l['peak_rss_mb']:,.0f} MB |
| ratio | {disk_l['peak_rss_mb'] / disk_s['peak_rss_mb']:.2f}x | {mem_l['peak_rss_mb'] / mem_s['peak_rss_mb']:.2f}x |

## First-pass decode, 160 px, the 2,000 training photos (median of 3 thirds)

On {describe_cpu(decode['cpu'])}.

| plain Pillow, 1 thread | catdog, {cores} threads, into the disk cache | ratio to Pillow x {cores} cores |
| --- | --- | --- |
| {decode['pillow_images_per_second_one_core']:,.0f} images/s | {decode['catdog_images_per_second']:,.0f} images/s | {decode['ratio_to_pillow_times_cores']:.2f} |

## Epoch time, model1 at 160 px (the second of 2 epochs; two runs each, alternating)

On {describe_cpu(epoch['cpu'])}.

| disk cache | in memory | ratio disk / memory (medians) |
| --- | --- | --- |
| {', '.join(f'{s:.1f}' for s in epoch['disk_epoch_seconds'])} s | {', '.join(f'{s:.1f}' for s in epoch['memory_epoch_seconds'])} s | {epoch['ratio_disk_to_memory']:.2f} |
"""


if __name__ == "__main__":
    main()
