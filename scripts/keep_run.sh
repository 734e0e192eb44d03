#!/usr/bin/env bash
# Keep a run's metrics, history, accuracy plot and composed config in a results folder.
#   scripts/keep_run.sh RUN_DIR RESULT_DIR
set -euo pipefail
mkdir -p "$2/.hydra"
cp "$1"/{metrics.json,history.csv,accuracy.png} "$2/"
cp "$1/.hydra/config.yaml" "$2/.hydra/"
