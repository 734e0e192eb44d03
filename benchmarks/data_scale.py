"""What setting up and decoding a data set costs as it grows, into results/data_scale/.

    python benchmarks/data_scale.py [--sizes 10000,30000,100000] [--out results/data_scale]

For each N, a flat folder of N small JPEGs (64x64 noise, 10 classes) is made, then one fresh process per N
times catdog's steps of `ImageFolderDataModule.setup()` and the first decode, one after the other: listing
(`list_image_folder`), the seeded split (`flat_splits`), the check that no image is in two splits
(`check_disjoint`: files told apart by the listing's stats, and a hash of those whose size another split also
has), the decode cache's key (`_files_key`, from the same stats) and the decode to 32x32 into an empty disk
cache; and the process's peak RSS. Where strace is installed, one more child at the smallest size runs under
it and counts the stat-family system calls made on each image (the goal is one). Writes results.json and
report.md, with the machine it ran on.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_folder(root: Path, n: int, classes=10) -> None:
    from PIL import Image

    rng = np.random.default_rng(n)
    for i in range(n):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.jpg", quality=80)


def measure(root: Path, cache: Path) -> dict:
    """The timings of one data set, in this process."""
    from catdog.data.cache import _files_key, cached_decode
    from catdog.data.images import list_image_folder
    from catdog.data.layouts import check_disjoint, stratified_split
    from catdog.utils.run_info import peak_rss_mb

    times = {}
    start = time.perf_counter()
    folder = list_image_folder(root)
    times["list_s"] = time.perf_counter() - start
    start = time.perf_counter()
    train, held = stratified_split(folder, 0.2, 0)
    val, test = stratified_split(held, 0.2, 1)
    splits = {"train": train, "val": val, "test": test}
    times["split_s"] = time.perf_counter() - start
    start = time.perf_counter()
    check_disjoint(splits)
    times["disjoint_check_s"] = time.perf_counter() - start
    start = time.perf_counter()
    for split in splits.values():
        _files_key(split.paths, split.file_stats(), (32, 32), 0)
    times["cache_keys_s"] = time.perf_counter() - start
    times["setup_s"] = sum(times.values())
    start = time.perf_counter()
    for split in splits.values():
        cached_decode(split.paths, (32, 32), 0, cache, split.file_stats())
    times["decode_s"] = time.perf_counter() - start
    n = len(folder)
    return {"images": n, **times, "setup_ms_per_image": 1000 * times["setup_s"] / n,
            "decode_images_per_second": n / times["decode_s"], "peak_rss_mb": peak_rss_mb()}


def stat_calls(data: Path, cache: Path) -> dict:
    """The stat-family system calls (stat, lstat, statx, newfstatat, ...) on each image file of `data` made by
    a measuring child, counted by strace; the child's decode opens each file once more, which is a read."""
    log = cache.with_suffix(".strace")
    subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=/stat", "-o", str(log), sys.executable,
                    __file__, "--measure", str(data), str(cache)], capture_output=True, text=True, check=True)
    per_file = dict.fromkeys((str(p) for p in data.rglob("*.jpg")), 0)
    for line in log.read_text(errors="replace").splitlines():
        found = re.search(r'"([^"]+\.jpg)"', line)
        if found and found.group(1) in per_file:
            per_file[found.group(1)] += 1
    counts = list(per_file.values())
    return {"images": len(counts), "mean": sum(counts) / len(counts), "max": max(counts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,30000,100000")
    parser.add_argument("--out", default="results/data_scale")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # the child: DATA CACHE
    args = parser.parse_args()
    if args.measure:
        print("SCALE " + json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]))))
        return
    from catdog.utils.run_info import cpu_info, describe_cpu, package_versions

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, args.sizes.split(",")):
            data, cache = Path(tmp) / f"n{n}", Path(tmp) / f"cache{n}"
            start = time.perf_counter()
            make_folder(data, n)
            made = time.perf_counter() - start
            child = subprocess.run([sys.executable, __file__, "--measure", str(data), str(cache)],
                                   capture_output=True, text=True, check=True)
            row = json.loads(next(line for line in child.stdout.splitlines() if line.startswith("SCALE "))[6:])
            rows.append(row)
            print(f"{n} images (made in {made:.0f} s): {json.dumps(row)}", flush=True)
            if len(rows) == 1 and shutil.which("strace"):
                shutil.rmtree(cache)
                calls = stat_calls(data, cache)
                print(f"stat calls per image: {json.dumps(calls)}", flush=True)
    cpu = cpu_info()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stats = {"stat_calls_per_image": calls} if "calls" in locals() else {}
    (out / "results.json").write_text(json.dumps({"cpu": cpu, "versions": package_versions(), "rows": rows,
                                                  **stats}, indent=2) + "\n")
    columns = ("images", "list_s", "split_s", "disjoint_check_s", "cache_keys_s", "setup_s", "setup_ms_per_image",
               "decode_s", "decode_images_per_second", "peak_rss_mb")
    lines = [f"# Setup and decode against the data's size\n\nOn {describe_cpu(cpu)}; "
             "`python benchmarks/data_scale.py`, one fresh process per size.\n",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in columns) + " |"
              for r in rows]
    if stats:
        lines += ["", f"System calls of the stat family on each image, counted by strace over setup and decode "
                      f"({calls['images']} images): {calls['mean']:.2f} on average, {calls['max']} at most."]
    (out / "report.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
