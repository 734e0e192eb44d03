#!/usr/bin/env bash
# Reproduce the tutorial's four experiments on one backend and collect the results.
#   scripts/reproduce_tutorial.sh [BACKEND=tensorflow] [EPOCHS=20] [EXPERIMENTS="model1 model2 model3 model4"]
# Needs CATDOG_DATA (a cats_and_dogs_filtered copy) and CATDOG_WEIGHTS (MobileNetV2 no-top weights), or
# network access for the tutorial's download and Keras' ImageNet weights.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-tensorflow}
epochs=${2:-20}
experiments=${3:-model1 model2 model3 model4}
runs=outputs/tutorial/$backend
results=results/tutorial/$backend
for exp in $experiments; do
  rm -rf "$runs/$exp"
  python -m catdog.train experiment="$exp" backend="$backend" trainer.max_epochs="$epochs" \
    trainer.verbose=2 hydra.run.dir="$runs/$exp"
  mkdir -p "$results/$exp"  # the summary files only; the whole run stays in $runs/$exp
  cp "$runs/$exp"/{metrics.json,provenance.json,history.csv} "$results/$exp/"
done
python -m catdog.report "$results" > /dev/null
echo "report: $results/report.md"
