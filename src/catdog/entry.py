"""The shared shape of catdog's command-line entry points: Hydra's main plus one-paragraph errors."""

import functools
import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from catdog.config import config_dir
from catdog.errors import CatdogError

log = logging.getLogger("catdog")


def hydra_entry(config_name: str):
    """`@hydra.main` over catdog's conf/, printing a CatdogError as one paragraph instead of a traceback."""

    def decorate(task):
        @functools.wraps(task)
        def guarded(cfg):
            try:
                return task(cfg)
            except CatdogError as exc:
                log.error("%s", exc)
                if HydraConfig.get().mode == RunMode.MULTIRUN:
                    raise  # the launcher records the failed job and the sweep goes on
                sys.exit(1)

        return hydra.main(version_base="1.3", config_path=config_dir(), config_name=config_name)(guarded)

    return decorate
