#!/usr/bin/env bash
# model4 twice on one backend: with an empty cache (decode + features computed) and again with it warm;
# reports metrics.json (setup_seconds, seconds_to_val_accuracy), provenance.json (run_seconds) and the whole
# process's wall seconds; the report goes to ${MODEL4_RESULTS:-results/model4_time}/<NAME>/ (NAME defaults to the backend); extra
# arguments are catdog.train overrides. Needs CATDOG_DATA and CATDOG_WEIGHTS; run it alone.
#   benchmarks/model4_time.sh [BACKEND=tensorflow, experiment=model4's own] [NAME=BACKEND] [overrides...]
#   benchmarks/model4_time.sh tensorflow tensorflow_views1 trainer.feature_cache.views=1
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-tensorflow}
name=${2:-$backend}
shift $(($# < 2 ? $# : 2))
runs=outputs/model4_time/$name
results=${MODEL4_RESULTS:-results/model4_time}/$name
rm -rf "$runs" "$results"
for state in cold warm; do
  run=$runs/$state
  start=$(date +%s.%N)
  python -m catdog.train experiment=model4 backend="$backend" trainer.verbose=0 paths.cache_dir="$runs/cache" \
    hydra.run.dir="$run" "$@"
  end=$(date +%s.%N)
  python -c "print(round($end - $start, 1))" > "$run/wall_seconds.txt"
done
python -m catdog.report "$runs" > /dev/null  # the summaries are committed, the runs stay in $runs
mkdir -p "$results" && cp "$runs"/{report.md,runs.csv} "$runs"/*.png "$results/"
echo "report: $results/report.md"
