"""`python -m catdog.tune lr_find [overrides]`: the learning-rate finder on the run `python -m catdog.train`
with the same overrides would make; writes lr_find.json and lr_find.png and states the suggested rate."""

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig

from catdog.entry import hydra_entry
from catdog.train import instantiate
from catdog.utils.io import write_json

log = logging.getLogger("catdog.tune")
TUNERS = ("lr_find",)


@hydra_entry("tune")
def run(cfg: DictConfig) -> dict:
    from catdog.analysis.plots import plot_lr_find

    trainer, datamodule, task, _ = instantiate(cfg)
    found = trainer.lr_find(task, datamodule, **cfg.lr_find)
    out = Path(cfg.paths.output_dir)
    write_json(out / "lr_find.json", found)
    plot_lr_find(found, out / "lr_find.png")
    if found["suggestion"] is not None:
        log.info("Suggested learning rate %.2e: python -m catdog.train ... model.optimizer.learning_rate=%.2e",
                 found["suggestion"], found["suggestion"])
    return found


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TUNERS:
        sys.exit(f"usage: python -m catdog.tune {{{','.join(TUNERS)}}} [the train command's overrides]")
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    run()


if __name__ == "__main__":
    main()
