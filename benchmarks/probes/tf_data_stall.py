"""Keras fit of model1 on TensorFlow, its NumPy batches fed two ways, alternating in one process:

- `pydataset`: the `ArrayBatches` PyDataset itself; Keras wraps it in `from_generator(...).prefetch(AUTOTUNE)`;
- `tf_dataset`: `ArrayBatches.tf_dataset()`, catdog's default since: the same, without tf.data's autotuning.

`CATDOG_DATA=... python benchmarks/probes/tf_data_stall.py [OUT_DIR] [EPOCHS] [ROUNDS]` -> OUT_DIR/report.md
(default results/tf_data_stall, 6 epochs, 2 rounds).
"""

import os
import statistics
import sys
from pathlib import Path

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from catdog.callbacks import EpochTimer  # noqa: E402
from catdog.data import ImageFolderDataModule  # noqa: E402
from catdog.data.loaders import ArrayBatches  # noqa: E402
from catdog.models import build_model  # noqa: E402


def fit(feed: str, arrays: dict, epochs: int) -> list[tuple[float, float]]:
    """(seconds, busy cores) of each epoch."""
    keras.utils.set_random_seed(0)
    model = build_model("cnn_small", arrays["train"][0].shape[1:3], 2)
    model.compile()  # Adam(1e-3), cross-entropy on logits, accuracy
    train, val = ArrayBatches(*arrays["train"], 32, seed=0), ArrayBatches(*arrays["val"], 32)
    if feed == "tf_dataset":
        train, val = train.tf_dataset(), val.tf_dataset()
    history = model.fit(train, validation_data=val, epochs=epochs, callbacks=[EpochTimer()], verbose=0).history
    return list(zip(history["epoch_seconds"], history["epoch_cores"]))


def main(out: Path, epochs: int, rounds: int) -> None:
    data = ImageFolderDataModule(root=os.environ["CATDOG_DATA"], cache_dir=os.path.expanduser("~/.cache/catdog"))
    data.setup()
    runs = {"pydataset": [], "tf_dataset": []}
    for _ in range(rounds):
        for feed in runs:
            runs[feed] += fit(feed, data.arrays, epochs)
            print(feed, [f"{s:.1f}/{c:.2f}" for s, c in runs[feed][-epochs:]], flush=True)
    rows = ["| feed | epochs | median epoch (s) | slowest epoch (s) | epochs with < 1.5 cores busy | "
            "every epoch: seconds / cores |", "|---|---|---|---|---|---|"]
    for feed, epochs_run in runs.items():
        seconds = [s for s, _ in epochs_run]
        idle = sum(c < 1.5 for _, c in epochs_run)
        rows.append(f"| {feed} | {len(seconds)} | {statistics.median(seconds):.2f} | {max(seconds):.2f} | {idle} | "
                    + ", ".join(f"{s:.1f} / {c:.2f}" for s, c in epochs_run) + " |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(
        f"# model1 on TensorFlow {tf.__version__}: NumPy batches with and without "
        f"tf.data's autotuning\n\n`benchmarks/probes/tf_data_stall.py` ({rounds} rounds of {epochs} epochs each, "
        "alternating, one process; `cores` = the process's CPU seconds over the epoch's wall seconds)\n\n"
        + "\n".join(rows) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0] if args else "results/tf_data_stall"), int(args[1]) if len(args) > 1 else 6,
         int(args[2]) if len(args) > 2 else 2)
