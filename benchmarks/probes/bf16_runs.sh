#!/usr/bin/env bash
# The tutorial's CNN experiments on TensorFlow under mixed_bfloat16 (AMX), 20 epochs each, collected with
# their report into results/bf16/. Needs CATDOG_DATA; run it alone on the machine (about 10 minutes).
#   benchmarks/probes/bf16_runs.sh [EXPERIMENTS="model1 model2 model3"]
set -euo pipefail
cd "$(dirname "$0")/../.."
experiments=${1:-model1 model2 model3}
for exp in $experiments; do
  run=outputs/bf16/$exp
  rm -rf "$run"
  python -m catdog.train experiment="$exp" trainer.precision=mixed_bfloat16 trainer.verbose=2 hydra.run.dir="$run"
  mkdir -p "results/bf16/$exp/.hydra"
  cp "$run"/{metrics.json,provenance.json,history.csv} "results/bf16/$exp/"
  cp "$run/accuracy.png" "results/bf16/$exp/" 2>/dev/null || true
  cp "$run/.hydra/config.yaml" "results/bf16/$exp/.hydra/"
done
python -m catdog.report results/bf16 > /dev/null
echo "report: results/bf16/report.md"
