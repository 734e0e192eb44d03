#!/usr/bin/env bash
# The full sweep: four models x augment none,flip_rotate x backend jax,tensorflow (16 jobs), two at a
# time with the joblib launcher, then the report. Needs CATDOG_DATA and CATDOG_WEIGHTS.
#   benchmarks/sweep.sh [EPOCHS=3]
set -uo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-3}
runs=outputs/sweep/$(date +%Y-%m-%d_%H-%M-%S)
results=results/sweep
python -m catdog.train -m model=cnn_small,cnn,cnn_scaled,mobilenet augment=none,flip_rotate \
  backend=jax,tensorflow trainer.max_epochs="$epochs" trainer.verbose=2 hydra.sweep.dir="$runs" \
  hydra/launcher=joblib hydra.launcher.n_jobs=2
status=$?  # a failed job fails the multirun at its end; the report lists it
rm -rf "$results"
for job in "$runs"/*/; do
  dest="$results/$(basename "$job")"
  mkdir -p "$dest/.hydra"
  cp "$job".hydra/{config.yaml,overrides.yaml} "$dest/.hydra/"
  cp "$job"{metrics.json,provenance.json,history.csv,accuracy.png,confusion.png,mistakes.png} "$dest/" 2>/dev/null \
    || true
done
python -m catdog.report "$results" > /dev/null
echo "report: $results/report.md (sweep exit status $status)"
