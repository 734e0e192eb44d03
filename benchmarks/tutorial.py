"""The cats-vs-dogs tutorial's own pipeline (image_dataset_from_directory, its four models), on Keras 3.

    python benchmarks/tutorial.py --models 1,2,3,4 [--epochs 20] [--in-process] --data-dir DIR
        [--weights mobilenet_v2_..._no_top.weights.h5] --out-dir OUT [--seed 0]

The reference `python -m catdog.bench` measures catdog against. Data pipeline, models, compile and fit
settings and test split are the tutorial's; each departure is marked `# Keras 3:` (what Keras 3 requires) or
`# Harness:` (local data and weights, seed, timing, outputs). Each model appends one JSON line to
OUT/results.jsonl and writes OUT/history_modelN.json ({"history", "epoch_s", "val_s"}). Without --in-process
each model trains in a child process of its own (its own peak RSS); with it, one after the other in this one.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"  # Keras 3: multi-backend; the tutorial is TensorFlow code

import tensorflow as tf
from tensorflow.keras import layers, models, utils

BATCH_SIZE = 32
IMG_SIZE = (160, 160)
IMG_SHAPE = IMG_SIZE + (3,)


def datasets(data_dir, seed):
    """§1: train and validation from the folders, the first fifth of validation's batches as test, prefetch."""
    train_dir = os.path.join(data_dir, 'train')  # Harness: local data, not utils.get_file's download
    validation_dir = os.path.join(data_dir, 'validation')
    train_dataset = utils.image_dataset_from_directory(train_dir, shuffle=True, batch_size=BATCH_SIZE,
                                                       image_size=IMG_SIZE, seed=seed)  # Harness: seed
    validation_dataset = utils.image_dataset_from_directory(validation_dir, shuffle=True, batch_size=BATCH_SIZE,
                                                            image_size=IMG_SIZE, seed=seed)  # Harness: seed
    val_batches = tf.data.experimental.cardinality(validation_dataset)
    test_dataset = validation_dataset.take(val_batches // 5)
    validation_dataset = validation_dataset.skip(val_batches // 5)
    AUTOTUNE = tf.data.AUTOTUNE
    return (train_dataset.prefetch(buffer_size=AUTOTUNE), validation_dataset.prefetch(buffer_size=AUTOTUNE),
            test_dataset.prefetch(buffer_size=AUTOTUNE))


def make_preprocessor():
    """§4: mobilenet_v2.preprocess_input wrapped as a model."""
    i = tf.keras.Input(shape=(160, 160, 3))
    x = tf.keras.applications.mobilenet_v2.preprocess_input(i)
    return tf.keras.Model(inputs=i, outputs=x)  # Keras 3: not inputs=[i], outputs=[x] (list outputs break Sequential)


def make_base_model_layer(weights):
    """§5: MobileNetV2 without its top, frozen, called with training=False, wrapped as a model."""
    base_model = tf.keras.applications.MobileNetV2(input_shape=IMG_SHAPE, include_top=False,
                                                   weights=weights)  # Harness: a local file for 'imagenet'
    base_model.trainable = False
    i = tf.keras.Input(shape=IMG_SHAPE)
    x = base_model(i, training=False)
    return tf.keras.Model(inputs=i, outputs=x)  # Keras 3: not inputs=[i], outputs=[x] (list outputs break Sequential)


def build_model(n, weights):
    """model1 (§2), model2 (§3, augmentation), model3 (§4, + preprocessor), model4 (§5, MobileNetV2)."""
    if n == 1:
        return models.Sequential([
            layers.Conv2D(32, (3, 3), activation='relu', input_shape=(160, 160, 3)),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(32, (3, 3), activation='relu'),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation='relu'),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.2),
            layers.Flatten(),
            layers.Dense(2),
        ])
    if n == 4:
        return tf.keras.models.Sequential([
            make_preprocessor(),
            layers.RandomFlip(),
            layers.RandomRotation(0.2),
            make_base_model_layer(weights),
            layers.GlobalMaxPooling2D(),
            layers.Dropout(0.2),
            layers.Flatten(),
            layers.Dense(64, activation='relu'),
            layers.Dense(2),
        ])
    return tf.keras.models.Sequential([  # model2; model3 is the same behind the preprocessor
        *([make_preprocessor()] if n == 3 else []),
        layers.RandomFlip(),
        layers.RandomRotation(0.2),
        layers.Conv2D(32, (3, 3), activation='relu', input_shape=(160, 160, 3)),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.2),
        layers.Conv2D(32, (3, 3), activation='relu'),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation='relu'),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(64, activation='relu'),
        layers.Dense(2),
    ])


class EpochTimer(tf.keras.callbacks.Callback):
    """Harness: seconds per epoch (validation included) and of each epoch's validation pass."""

    def on_train_begin(self, logs=None):
        self.epoch_s, self.val_s = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.t_epoch = time.perf_counter()

    def on_test_begin(self, logs=None):
        self.t_val = time.perf_counter()

    def on_test_end(self, logs=None):
        self.val_s.append(time.perf_counter() - self.t_val)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_s.append(time.perf_counter() - self.t_epoch)


def run(n, args):
    """Train model n as the tutorial does, score it on the test split, write its records to --out-dir."""
    start = time.perf_counter()
    train_dataset, validation_dataset, test_dataset = datasets(args.data_dir, args.seed)
    data_s = time.perf_counter() - start
    model = build_model(n, args.weights)
    model.compile(optimizer='adam',
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    build_s = time.perf_counter() - start - data_s
    timer = EpochTimer()
    history = model.fit(train_dataset, epochs=args.epochs, validation_data=validation_dataset,
                        callbacks=[timer])  # Harness: the timer
    fit_s = time.perf_counter() - start - data_s - build_s
    test_loss, test_accuracy = model.evaluate(test_dataset)  # Harness: every model, not only model4
    hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    val = hist["val_accuracy"]
    result = {
        "model": f"model{n}", "epochs": len(val), "params_total": model.count_params(),
        "params_trainable": sum(int(tf.size(w)) for w in model.trainable_weights),
        "epoch_s": timer.epoch_s, "epoch_s_median": statistics.median(timer.epoch_s),
        "val_s_median": statistics.median(timer.val_s), "data_s": data_s, "build_s": build_s, "fit_s": fit_s,
        "best_val_accuracy": max(val), "best_val_epoch": val.index(max(val)) + 1, "final_val_accuracy": val[-1],
        "final_train_accuracy": hist["accuracy"][-1], "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # this process's so far
        "seed": args.seed, "weights": args.weights if n == 4 else None, "data_dir": args.data_dir,
        "in_process": args.in_process, "cpu_count": os.cpu_count(),
        "versions": {"tensorflow": tf.__version__, "keras": tf.keras.__version__},
    }
    out = Path(args.out_dir)
    (out / f"history_model{n}.json").write_text(json.dumps({"history": hist, "epoch_s": timer.epoch_s,
                                                             "val_s": timer.val_s}, indent=1))
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")
    print(f"model{n}: best val_accuracy {max(val):.4f}, test_accuracy {test_accuracy:.4f}, "
          f"median epoch {result['epoch_s_median']:.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="1,2,3,4", help="comma-separated model numbers, 1 to 4")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--in-process", action="store_true", help="train in this process, not one child each")
    parser.add_argument("--data-dir", required=True, help="holds train/ and validation/, one folder per class")
    parser.add_argument("--weights", default="imagenet", help="MobileNetV2 no-top weights file (model4)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    numbers = [int(n) for n in args.models.split(",")]
    if not set(numbers) <= {1, 2, 3, 4}:
        parser.error(f"--models {args.models}: choose from 1, 2, 3, 4")
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    for n in numbers:
        if args.in_process:
            utils.set_random_seed(args.seed)  # Harness: seed (weights, dropout, augmentation)
            run(n, args)
        else:
            subprocess.run([sys.executable, __file__, "--models", str(n), "--epochs", str(args.epochs),
                            "--in-process", "--data-dir", args.data_dir, "--weights", args.weights,
                            "--out-dir", args.out_dir, "--seed", str(args.seed)], check=True)


if __name__ == "__main__":
    main()
