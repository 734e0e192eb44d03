#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: model1 and model4 on both backends at the defaults (trainer.precision=auto
# picks the GPU's policy), then catdog's step benchmark, into results/gpu/<gpu>/ (report.md names the GPU).
# About 10 minutes on one recent GPU. Install first: pip install -e ".[cuda]", and for TensorFlow on the GPU
# pip uninstall -y tensorflow-cpu && pip install "tensorflow[and-cuda]>=2.21" (docs/scale_out.md#gpus).
#   scripts/gpu_check.sh [EPOCHS=10]
# Needs CATDOG_DATA and CATDOG_WEIGHTS, as the README's Install.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-10}
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9-')
runs=outputs/gpu/$gpu
results=results/gpu/$gpu
rm -rf "$runs" && mkdir -p "$runs"
nvidia-smi > "$runs/nvidia-smi.txt"
for backend in tensorflow jax; do
  for exp in model1 model4; do
    python -m catdog.train experiment="$exp" backend="$backend" trainer.max_epochs="$epochs" trainer.verbose=2 \
      paths.cache_dir="$runs/cache" hydra.run.dir="$runs/$backend-$exp"
  done
done
python -m catdog.bench peer.enabled=false 'models=[cnn_small,mobilenet]' hydra.run.dir="$runs/bench"
python -m catdog.report "$runs" > /dev/null
rm -rf "$results" && mkdir -p "$results"
cp "$runs"/{report.md,runs.csv,nvidia-smi.txt} "$runs"/bench/{bench.md,bench.json} "$results/"
for run in "$runs"/*-model*; do cp "$run/provenance.json" "$results/$(basename "$run")-provenance.json"; done
echo "report: $results/report.md"
