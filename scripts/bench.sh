#!/usr/bin/env bash
# The backend benchmark and the catdog-vs-tutorial comparison (20 epochs, as the tutorial), collected
# into results/bench/. Needs CATDOG_DATA and CATDOG_WEIGHTS. About 50 minutes on 2 cores; run it alone.
#   scripts/bench.sh [extra catdog.bench overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
run=outputs/bench/$(date +%Y-%m-%d_%H-%M-%S)
python -m catdog.bench peer.epochs=20 hydra.run.dir="$run" "$@"
mkdir -p results/bench
cp "$run"/{bench.json,bench.md,bench.png} results/bench/
echo "results/bench/bench.md"
