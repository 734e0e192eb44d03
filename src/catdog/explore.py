"""`python -m catdog.explore`: what the tutorial shows before training, as files in the run directory."""

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from catdog.backend import use_backend
from catdog.utils.config import build
from catdog.entry import hydra_entry
from catdog.utils.io import write_json

log = logging.getLogger("catdog.explore")


def augment_options(seed: int) -> dict:
    """Every option of the `augment` config group, this run's `hydra.searchpath` included, composed by Hydra as
    a training run would see it: {name: {layer key: layer config}}."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    searchpath = [o for o in HydraConfig.get().overrides.hydra if o.startswith("hydra.searchpath=")]
    names = GlobalHydra.instance().config_loader().get_group_options("augment", config_name="explore",
                                                                     overrides=searchpath)
    return {name: compose("train", overrides=[*searchpath, f"augment={name}", f"seed={seed}"]).augment.layers
            for name in names}


def explore(cfg: DictConfig) -> dict:
    use_backend(**cfg.backend)
    import keras
    from hydra.utils import instantiate

    from catdog.analysis.plots import plot_augmentations, plot_samples

    out = Path(cfg.paths.output_dir)
    keras.utils.set_random_seed(cfg.seed)
    datamodule = build(cfg.dataset, "dataset", augment=None)  # the previews below show every augment option
    datamodule.setup()
    images, labels = datamodule.arrays["train"]
    order = np.random.default_rng(cfg.seed).permutation(len(labels))
    plot_samples(images[order], labels[order], datamodule.class_names, out / "samples.png", cfg.per_class)

    counts = datamodule.label_counts("train")
    summary = {
        "label_counts": counts,
        "majority_class": max(counts, key=counts.get),
        "baseline_accuracy": max(counts.values()) / sum(counts.values()),
        "num_images": {s: datamodule.num_images(s) for s in ("train", "val", "test")},
        "skipped_images": datamodule.skipped,
    }
    write_json(out / "label_counts.json", summary)
    log.info("label counts %s; always guessing %s scores %.3f", counts, summary["majority_class"],
             summary["baseline_accuracy"])

    original = images[order[0]].astype("float32")
    for name, specs in augment_options(cfg.seed).items():
        layers = {key: instantiate(spec) for key, spec in specs.items() if spec is not None}
        rows = [(key, [original] + [keras.ops.convert_to_numpy(layer(original[None], training=True))[0]
                                    for _ in range(cfg.copies)])
                for key, layer in layers.items()]
        if rows:
            plot_augmentations(rows, out / f"augment_{name}.png")
    return summary


main = hydra_entry("explore")(explore)


if __name__ == "__main__":
    main()
