#!/usr/bin/env bash
# model1 for EPOCHS epochs on TensorFlow (float32 and mixed_bfloat16) and on JAX, one process each, to show
# how steady each backend's epochs are: results/epoch_cores/<run>/history.csv (epoch_seconds, epoch_cores)
# and results/epoch_cores/report.md. Needs CATDOG_DATA; run it alone on the machine (about 10 minutes).
#   EPOCHS=10 scripts/epoch_cores.sh
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${EPOCHS:-10}
scripts/train_into_results.sh epoch_cores tensorflow_float32 experiment=model1 trainer.max_epochs="$epochs"
scripts/train_into_results.sh epoch_cores tensorflow_bf16 experiment=model1 trainer.max_epochs="$epochs" \
  trainer.precision=mixed_bfloat16
scripts/train_into_results.sh epoch_cores jax_float32 experiment=model1 trainer.max_epochs="$epochs" backend=jax
python -m catdog.report results/epoch_cores > /dev/null
python - >> results/epoch_cores/report.md <<'PY'
import csv
from pathlib import Path
table = {f.parent.name: list(csv.DictReader(open(f))) for f in sorted(Path("results/epoch_cores").glob("*/history.csv"))}
epochs = max(map(len, table.values()))
print("\n## Seconds and busy cores (epoch_cores) per epoch, training and validation\n")
print("| run |" + "".join(f" epoch {i} |" for i in range(1, epochs + 1)))
print("| --- |" + " --- |" * epochs)
for run, rows in table.items():
    print(f"| {run} |" + "".join(f" {float(r['epoch_seconds']):.1f} s @ {float(r['epoch_cores']):.2f} |" for r in rows))
PY
echo "report: results/epoch_cores/report.md"
