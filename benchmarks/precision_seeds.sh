#!/usr/bin/env bash
# trainer.precision float32 against mixed_bfloat16, over seeds (a Hydra multirun), on this machine.
#   benchmarks/precision_seeds.sh [EXPERIMENTS] [SEEDS] [OVERRIDE...]   default: model1 0,1,2
# Results go to results/precision/<machine>/<experiments>/ (report.md names the CPU; "Over seeds" has the means).
# Needs CATDOG_DATA (and CATDOG_WEIGHTS for model4), as scripts/reproduce_tutorial.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
experiments=${1:-model1}
seeds=${2:-0,1,2}
shift $(( $# < 2 ? $# : 2 ))
machine=$(python -m catdog.utils.run_info)
runs=outputs/precision/$machine/${experiments//,/_}
results=results/precision/$machine/${experiments//,/_}
python -m catdog.train -m experiment="$experiments" seed="$seeds" trainer.precision=float32,mixed_bfloat16 "$@" \
  trainer.verbose=2 hydra.sweep.dir="$runs"
python -m catdog.report "$runs" > /dev/null
rm -rf "$results" && mkdir -p "$results"
cp "$runs"/{report.md,runs.csv,val_curves.png} "$results/"
echo "report: $results/report.md"
