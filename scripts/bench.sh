#!/usr/bin/env bash
# The backend benchmark and the catdog-vs-tutorial comparison, collected into results/bench/.
# Needs CATDOG_DATA and CATDOG_WEIGHTS; run it alone on the machine.
#   BENCH_EPOCHS=3 scripts/bench.sh [extra catdog.bench overrides...]
# 3 epochs (the default) takes about 20 minutes on 2 cores with both backends; 20 (the tutorial's) over an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
run=outputs/bench/$(date +%Y-%m-%d_%H-%M-%S)
python -m catdog.bench peer.epochs="${BENCH_EPOCHS:-3}" hydra.run.dir="$run" "$@"
mkdir -p results/bench
cp "$run"/{bench.json,bench.md,bench.png} results/bench/
echo "results/bench/bench.md"
