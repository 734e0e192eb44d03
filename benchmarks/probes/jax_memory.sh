#!/usr/bin/env bash
# JAX runs with TensorFlow kept out of the process (backend.import_tensorflow=false, the default) and let in,
# EPOCHS epochs per run, one process per run: results/jax_memory/<experiment>_tf_<out|in>/ (provenance.json:
# peak_rss_mb, tensorflow_imported; metrics.json: median epoch seconds) and results/jax_memory/report.md.
# Needs CATDOG_DATA and CATDOG_WEIGHTS; run it alone.
#   EPOCHS=3 benchmarks/probes/jax_memory.sh [EXPERIMENT ...]   (default: model1 model2 model4)
set -euo pipefail
cd "$(dirname "$0")/../.."
epochs=${EPOCHS:-3}
for experiment in ${*:-model1 model2 model4}; do
  for tf in out in; do
    benchmarks/probes/train_into_results.sh jax_memory "${experiment}_tf_$tf" experiment="$experiment" backend=jax \
      backend.import_tensorflow=$([ $tf = in ] && echo true || echo false) trainer.max_epochs="$epochs"
  done
done
python -m catdog.report results/jax_memory > /dev/null
echo "report: results/jax_memory/report.md"
