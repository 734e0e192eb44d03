#!/usr/bin/env bash
# The default run as a user sees it, `python -m catdog.train` with nothing else, from empty caches, into
# results/default_run/ (its train.log, metrics.json, provenance.json, history.csv and accuracy.png, unchanged): the README's
# Run and Result lines. Needs CATDOG_DATA and CATDOG_WEIGHTS, as the README's Install.
set -euo pipefail
cd "$(dirname "$0")/.."
run=outputs/default_run
rm -rf "$run" outputs/default_run_cache
CATDOG_CACHE=outputs/default_run_cache python -m catdog.train hydra.run.dir="$run"
mkdir -p results/default_run
cp "$run"/{train.log,metrics.json,provenance.json,history.csv,accuracy.png} results/default_run/
