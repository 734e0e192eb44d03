#!/usr/bin/env bash
# What each JAX-on-CPU lever buys: catdog.analysis.stepbench per model with Keras' layers or catdog's
# (model.xla_cpu_layers), with and without conf/backend/jax.yaml's xla_flags, and TensorFlow for reference.
# Writes results/jax_levers/{levers.jsonl,levers.md}. Run it alone on the machine (about 15 minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
flags=$(python -c "import yaml; print(yaml.safe_load(open('conf/backend/jax.yaml'))['xla_flags'])")
out=results/jax_levers
mkdir -p "$out"
: > "$out/levers.jsonl"
steps=${LEVER_STEPS:-10}
for model in cnn_small cnn cnn_scaled mobilenet; do
  for setting in "tensorflow||true" "jax||false" "jax|$flags|false" "jax||true" "jax|$flags|true"; do
    IFS='|' read -r backend xla fast <<< "$setting"
    env -u XLA_FLAGS python -m catdog.analysis.stepbench --model "$model" --backend "$backend" --steps "$steps" \
      --xla-flags="$xla" --option xla_cpu_layers="$fast" | sed -n 's/^STEPBENCH //p' >> "$out/levers.jsonl"
  done
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = [json.loads(line) for line in (out / "levers.jsonl").read_text().splitlines()]
cols = ("model", "backend", "xla_cpu_layers", "ynnpack", "median_step_seconds", "train_images_per_second",
        "inference_images_per_second", "peak_rss_mb", "vs_tensorflow_step")
tf = {r["model"]: r["median_step_seconds"] for r in rows if r["backend"] == "tensorflow"}
lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
for r in rows:
    r = {**r, "xla_cpu_layers": r["options"].get("xla_cpu_layers"),
         "vs_tensorflow_step": r["median_step_seconds"] / tf[r["model"]],
         "ynnpack": "-" if r["backend"] == "tensorflow" else ("off" if "ynn_fusion_type=" in r["xla_flags"] else "on")}
    lines.append("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
(out / "levers.md").write_text("# JAX levers (benchmarks/probes/jax_levers.sh; one run, fresh process per row, batch 32, 160 px)\n\n"
                               + "\n".join(lines) + "\n")
print(out / "levers.md")
PY
