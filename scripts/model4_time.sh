#!/usr/bin/env bash
# model4 (TensorFlow) twice: with an empty cache (decode + features computed) and again with it warm;
# collects metrics.json (setup_seconds, seconds_to_val_accuracy, run_seconds) and the whole process's
# wall seconds into results/model4_time/. Needs CATDOG_DATA and CATDOG_WEIGHTS; run it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=outputs/model4_time/cache
rm -rf outputs/model4_time results/model4_time
for state in cold warm; do
  run=outputs/model4_time/$state
  start=$(date +%s.%N)
  python -m catdog.train experiment=model4 trainer.verbose=0 paths.cache_dir="$cache" hydra.run.dir="$run"
  end=$(date +%s.%N)
  mkdir -p "results/model4_time/$state/.hydra"
  cp "$run"/{metrics.json,history.csv,accuracy.png} "results/model4_time/$state/"
  cp "$run/.hydra/config.yaml" "results/model4_time/$state/.hydra/"
  python -c "print(round($end - $start, 1))" > "results/model4_time/$state/wall_seconds.txt"
done
python -m catdog.report results/model4_time > /dev/null
echo "report: results/model4_time/report.md"
