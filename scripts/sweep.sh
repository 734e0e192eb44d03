#!/usr/bin/env bash
# The full sweep: four models x augment none,flip_rotate x backend jax,tensorflow (16 jobs), two at a
# time with the joblib launcher, then the report. Needs CATDOG_DATA and CATDOG_WEIGHTS.
#   scripts/sweep.sh [EPOCHS=3]
set -uo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-3}
runs=outputs/sweep/$(date +%Y-%m-%d_%H-%M-%S)
results=results/sweep
python -m catdog.train -m model=cnn_small,cnn,cnn_scaled,mobilenet augment=none,flip_rotate \
  backend=jax,tensorflow trainer.max_epochs="$epochs" trainer.verbose=2 hydra.sweep.dir="$runs" \
  hydra/launcher=parallel
status=$?  # a failed job fails the multirun at its end; the report lists it
python -m catdog.report "$runs" > /dev/null  # the summaries are committed, the runs stay in $runs
rm -rf "$results" && mkdir -p "$results"
cp "$runs"/{report.md,runs.csv} "$runs"/*.png "$results/"
echo "report: $results/report.md (sweep exit status $status)"
