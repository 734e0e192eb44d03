"""Run a script's `measure` step in a fresh process on one backend, set up as conf/backend/ sets it up; the
child prints one line "<TAG> <json>", which comes back as a dict."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
XLA_FLAGS = yaml.safe_load((ROOT / "conf" / "backend" / "jax.yaml").read_text())["xla_flags"]


def report(tag: str, row: dict) -> None:
    """In the child: hand `row` back to `measure_in_fresh_process`."""
    print(tag, json.dumps(row), flush=True)


def measure_in_fresh_process(script: str, backend: str, tag: str, *args: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "XLA_FLAGS": XLA_FLAGS}
    out = subprocess.run([sys.executable, script, "measure", *args], env=env, check=True, capture_output=True,
                         text=True).stdout
    row = json.loads(next(line[len(tag) + 1:] for line in out.splitlines() if line.startswith(tag + " ")))
    print(row, flush=True)
    return row
