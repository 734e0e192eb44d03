#!/usr/bin/env bash
# Re-run one experiment with other seeds (a Hydra multirun) and collect the results.
#   scripts/seed_sweep.sh EXPERIMENT SEEDS [OVERRIDE...]   e.g. scripts/seed_sweep.sh model2 1,2
#   SEEDS_NAME=model2_augment scripts/seed_sweep.sh model2 0,1,2 augment=flip_rotate,flip_rotate_keras
# Results go to results/seeds/${SEEDS_NAME:-EXPERIMENT}.
# Needs CATDOG_DATA (and CATDOG_WEIGHTS for model4), as scripts/reproduce_tutorial.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
exp=$1
seeds=$2
shift 2
name=${SEEDS_NAME:-$exp}
runs=outputs/seeds/$name
results=results/seeds/$name
python -m catdog.train -m experiment="$exp" seed="$seeds" "$@" trainer.verbose=2 hydra.sweep.dir="$runs"
python -m catdog.report "$runs" > /dev/null  # the summaries are committed, the runs stay in $runs
rm -rf "$results" && mkdir -p "$results"
cp "$runs"/{report.md,runs.csv} "$runs"/*.png "$results/"
echo "report: $results/report.md"
