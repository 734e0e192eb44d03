#!/usr/bin/env bash
# bf16 (mixed_bfloat16) against float32 step times per backend for model1's network, fresh process per
# row: results/jax_levers/bf16.jsonl. Run it alone on the machine (about 3 minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
flags=$(python -c "import yaml; print(yaml.safe_load(open('conf/backend/jax.yaml'))['xla_flags'])")
out=results/jax_levers/bf16.jsonl
: > "$out"
for backend in tensorflow jax; do
  xla=$([ "$backend" = jax ] && echo "$flags" || true)
  for precision in float32 mixed_bfloat16; do
    env -u XLA_FLAGS python -m catdog.analysis.stepbench --model cnn_small --backend "$backend" --precision "$precision" \
      --steps 10 --xla-flags="$xla" | sed -n 's/^STEPBENCH //p' >> "$out"
  done
done
python -c "
import json
for r in map(json.loads, open('$out')):
    print(r['backend'], r['precision'], round(r['median_step_seconds'], 3), 's/step')"
