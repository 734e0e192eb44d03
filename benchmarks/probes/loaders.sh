#!/usr/bin/env bash
# dataset.loader=tf_data against numpy, EPOCHS epochs per run, one process per run; metrics.json (median
# epoch seconds) and provenance.json (peak RSS) into results/loaders/<experiment>_<backend>_<loader>/ and
# results/loaders/report.md.
# Needs CATDOG_DATA and CATDOG_WEIGHTS; run it alone.
#   EPOCHS=3 benchmarks/probes/loaders.sh [EXPERIMENT:BACKEND ...]
# (default: model1:jax model2:jax model4:jax model1:tensorflow model2:tensorflow)
set -euo pipefail
cd "$(dirname "$0")/../.."
epochs=${EPOCHS:-3}
cases=${*:-model1:jax model2:jax model4:jax model1:tensorflow model2:tensorflow}
for case in $cases; do
  experiment=${case%%:*} backend=${case##*:}
  for loader in tf_data numpy; do
    tf=$([ "$backend" = jax ] && [ "$loader" = tf_data ] && echo backend.import_tensorflow=true || true)
    benchmarks/probes/train_into_results.sh loaders "${experiment}_${backend}_${loader}" experiment="$experiment" \
      backend="$backend" dataset.loader="$loader" $tf trainer.max_epochs="$epochs"
  done
done
python -m catdog.report results/loaders > /dev/null
echo "report: results/loaders/report.md"
