#!/usr/bin/env bash
# Two of issue #4's levers for the CNNs on TensorFlow, model1 (no augmentation), 4 epochs per run, each run a
# fresh process (a Hydra multirun): Keras' steps_per_execution (1, 8, 32), then TensorFlow's inter-op
# threads at 1 (its default here is the core count). -> results/tf_levers/report.md (median_epoch_seconds
# leaves out the first epoch). Needs CATDOG_DATA; run it alone on the machine (about 5 minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=outputs/tf_levers
results=results/tf_levers
rm -rf "$runs" "$results"
common=(experiment=model1 backend=tensorflow trainer.max_epochs=4 trainer.verbose=0)
python -m catdog.train -m "${common[@]}" model.steps_per_execution=1,8,32 hydra.sweep.dir="$runs/steps_per_execution"
python -m catdog.train -m "${common[@]}" tags=[inter_op_threads_1] +hydra.job.env_set.TF_NUM_INTEROP_THREADS=1 \
  hydra.sweep.dir="$runs/inter_op_threads_1"
for job in "$runs"/*/*/; do
  kept=$results/${job#"$runs"/}
  mkdir -p "$kept/.hydra"
  cp "$job"{metrics.json,provenance.json,history.csv} "$kept"
  cp "$job.hydra/config.yaml" "$kept/.hydra/"
done
python -m catdog.report "$results" > /dev/null
echo "report: $results/report.md"
