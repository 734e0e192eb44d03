#!/usr/bin/env bash
# model4 with fine-tuning (experiment=model4_finetune) on TensorFlow, collected into results/finetune/.
# Needs CATDOG_DATA and CATDOG_WEIGHTS.
set -euo pipefail
cd "$(dirname "$0")/.."
run=outputs/finetune/model4_finetune
rm -rf "$run"
python -m catdog.train experiment=model4_finetune trainer.verbose=2 hydra.run.dir="$run" "$@"
mkdir -p results/finetune/model4_finetune/.hydra
cp "$run"/{metrics.json,history.csv,accuracy.png,config.yaml,confusion.png,mistakes.png} results/finetune/model4_finetune/
cp "$run/.hydra/config.yaml" results/finetune/model4_finetune/.hydra/
python -m catdog.report results/finetune > /dev/null
echo "report: results/finetune/report.md"
