#!/usr/bin/env bash
# One catdog.train run in outputs/GROUP/NAME, kept in results/GROUP/NAME: metrics, provenance, history, the
# accuracy plot (where the run drew one) and the composed config. Run from the repository root.
#   benchmarks/probes/train_into_results.sh GROUP NAME [catdog.train overrides...]
set -euo pipefail
group=$1 name=$2
shift 2
run=outputs/$group/$name result=results/$group/$name
rm -rf "$run" "$result"
python -m catdog.train trainer.verbose=0 hydra.run.dir="$run" "$@"
mkdir -p "$result/.hydra"
cp "$run"/{metrics.json,provenance.json,history.csv} "$result/"
cp "$run/accuracy.png" "$result/" 2>/dev/null || true
cp "$run/.hydra/config.yaml" "$result/.hydra/"
