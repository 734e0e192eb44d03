#!/usr/bin/env bash
# model4 with fine-tuning (experiment=model4_finetune) on TensorFlow, collected into results/finetune/NAME/.
#   scripts/finetune.sh [NAME [OVERRIDES...]]     e.g. scripts/finetune.sh augment_flip_rotate augment=flip_rotate
# Needs CATDOG_DATA and CATDOG_WEIGHTS.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-model4_finetune}
shift || true
run=outputs/finetune/$name
rm -rf "$run"
python -m catdog.train experiment=model4_finetune trainer.verbose=2 hydra.run.dir="$run" "$@"
mkdir -p "results/finetune/$name"  # the summary files only; the whole run stays in $run
cp "$run"/{metrics.json,provenance.json,history.csv} "results/finetune/$name/"
python -m catdog.report results/finetune > /dev/null
echo "report: results/finetune/report.md"
