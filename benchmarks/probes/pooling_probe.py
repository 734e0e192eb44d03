"""Global max (the tutorial's) against global average pooling for model4's head, on validation only.

    CATDOG_DATA=... CATDOG_WEIGHTS=... python benchmarks/probes/pooling_probe.py [OUT_DIR=results/finetune]
        -> OUT_DIR/pooling.{json,md}

The frozen MobileNetV2 runs once per image size; model4's head (Dropout 0.2, Dense 64, Dense 2; Adam 1e-3,
batch 32, 20 epochs, no augmentation) trains on each pooling with five seeds. The test split is never read.
"""

import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

from catdog.data import ImageFolderDataModule  # noqa: E402
from catdog.models.transfer import application  # noqa: E402

SIZES, SEEDS, EPOCHS = (160, 224), range(5), 20


def pooled_features(size):
    data = ImageFolderDataModule(root=os.environ["CATDOG_DATA"], image_size=(size, size),
                                 cache_dir=os.path.expanduser("~/.cache/catdog"))
    data.setup()
    base = application((size, size, 3), "MobileNetV2", os.environ["CATDOG_WEIGHTS"])
    inputs = keras.Input((size, size, 3))
    maps = base(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs), training=False)
    model = keras.Model(inputs, [keras.layers.GlobalMaxPooling2D()(maps), keras.layers.GlobalAveragePooling2D()(maps)])
    out = {}
    for split in ("train", "val"):
        images, labels = data.arrays[split]
        out[split] = dict(zip(("max", "avg"), model.predict(images.astype("float32"), batch_size=64, verbose=0)),
                          labels=labels)
    return out


def head_val_accuracy(feats, pooling, seed):
    keras.utils.set_random_seed(seed)
    head = keras.Sequential([keras.Input(feats["train"][pooling].shape[1:]), keras.layers.Dropout(0.2),
                             keras.layers.Dense(64, activation="relu"), keras.layers.Dense(2)])
    head.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 metrics=["accuracy"])
    history = head.fit(feats["train"][pooling], feats["train"]["labels"], batch_size=32, epochs=EPOCHS,
                       validation_data=(feats["val"][pooling], feats["val"]["labels"]), verbose=0)
    val = history.history["val_accuracy"]
    return max(val), statistics.mean(val[-5:])


def main(out_dir):
    rows = []
    for size in SIZES:
        feats = pooled_features(size)
        for pooling in ("max", "avg"):
            runs = [head_val_accuracy(feats, pooling, seed) for seed in SEEDS]
            rows.append({"image_size": size, "pooling": pooling, "seeds": len(runs),
                         "best_val_median": statistics.median(r[0] for r in runs),
                         "last5_val_median": statistics.median(r[1] for r in runs),
                         "last5_val_min": min(r[1] for r in runs), "last5_val_max": max(r[1] for r in runs)})
            print(rows[-1], flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "pooling.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["# model4's head: global max vs average pooling (validation accuracy, no augmentation)", "",
             f"`python benchmarks/probes/pooling_probe.py`; {len(SEEDS)} seeds, {EPOCHS} epochs, Keras "
             f"{keras.__version__} on {keras.backend.backend()}. Test split not read.", "",
             "| image size | pooling | best val (median) | mean of last 5 epochs (median) | range over seeds |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['image_size']} | {r['pooling']} | {r['best_val_median']:.4f} | {r['last5_val_median']:.4f} | "
              f"{r['last5_val_min']:.4f}-{r['last5_val_max']:.4f} |" for r in rows]
    (out_dir / "pooling.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/finetune"))
