#!/usr/bin/env bash
# The default run (model=mobilenet) from empty caches with its feature pass in float32 and in int8 (ONNX
# Runtime), over seeds: time to 0.97 validation accuracy, and the head's accuracy on each's features.
#   benchmarks/feature_int8.sh [SEEDS]   default: 0,1,2
# Results go to results/feature_int8/<machine>/: report.md ("Over seeds" per runtime), runs.csv and the int8
# check of this machine (int8_check.json). Needs CATDOG_DATA and CATDOG_WEIGHTS, as the README's Install.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-0,1,2}
machine=$(python -m catdog.utils.run_info)
runs=outputs/feature_int8/$machine
results=results/feature_int8/$machine
rm -rf "$runs"
for seed in ${seeds//,/ }; do
  for runtime in onnxruntime onnxruntime_int8; do
    python -m catdog.train trainer.feature_cache.runtime=$runtime seed="$seed" trainer.verbose=2 \
      paths.cache_dir="$runs/cache-$runtime-$seed" hydra.run.dir="$runs/$runtime-$seed"
  done
done
python -m catdog.report "$runs" > /dev/null
rm -rf "$results" && mkdir -p "$results"
cp "$runs"/{report.md,runs.csv,val_curves.png} "$results/"
cp "$(ls "$runs"/cache-onnxruntime_int8-*/features-int8-*.json | head -1)" "$results/int8_check.json"
echo "report: $results/report.md"
