"""`python -m catdog.bench`: step times per model and backend, and catdog against the tutorial's own pipeline,
each in a fresh process (`catdog.analysis.bench`)."""

from omegaconf import DictConfig

from catdog.analysis.bench import run_bench
from catdog.entry import hydra_entry


@hydra_entry("bench")
def main(cfg: DictConfig) -> dict:
    return run_bench(cfg)


if __name__ == "__main__":
    main()
