#!/usr/bin/env bash
# The backend benchmark and the catdog-vs-tutorial comparison, collected into BENCH_RESULTS (results/bench).
# Needs CATDOG_DATA and CATDOG_WEIGHTS; run it alone on the machine.
#   BENCH_EPOCHS=3 [BENCH_RESULTS=results/bench] scripts/bench.sh [extra catdog.bench overrides...]
# 3 epochs (the default) takes about 20 minutes on 2 cores with both backends; 20 (the tutorial's) over an hour.
# The tutorial's 20 epochs against catdog on TensorFlow, without the step benchmark (about 45 minutes):
#   BENCH_EPOCHS=20 BENCH_RESULTS=results/bench_20 scripts/bench.sh 'models=[]' 'peer.backends=[tensorflow]'
# The same for the CNNs with catdog in bf16 (about 35 minutes):
#   BENCH_EPOCHS=20 BENCH_RESULTS=results/bench_20_bf16 scripts/bench.sh 'models=[]' 'peer.backends=[tensorflow]' \
#     'peer.experiments=[model1,model2,model3]' 'peer.overrides=["trainer.precision=mixed_bfloat16"]'
# Each catdog run's history.csv (epoch_seconds, epoch_cores), metrics.json, provenance.json and train.log (setup
# timeline) are kept in BENCH_RESULTS/catdog/<backend>/<experiment>/,
# the tutorial's code's (epoch_s, results.jsonl) in BENCH_RESULTS/peer/<experiment>/.
set -euo pipefail
cd "$(dirname "$0")/.."
run=outputs/bench/$(date +%Y-%m-%d_%H-%M-%S)
python -m catdog.bench peer.epochs="${BENCH_EPOCHS:-3}" hydra.run.dir="$run" "$@"
results=${BENCH_RESULTS:-results/bench}
mkdir -p "$results"
cp "$run"/{bench.json,bench.md,bench.png} "$results/"
for history in "$run"/catdog/*/*/{history.csv,metrics.json,provenance.json,train.log} \
  "$run"/peer/*/{history_*.json,results.jsonl}; do
  [ -e "$history" ] || continue
  kept=$results/${history#"$run"/}
  mkdir -p "$(dirname "$kept")" && cp "$history" "$kept"
done
echo "$results/bench.md"
