"""Training stages: consecutive fits of one task, each with its own epochs, trainable backbone and learning
rate (a head stage on a frozen backbone, then fine-tuning its top layers, for example)."""

from dataclasses import dataclass

from catdog.errors import CatdogError


SCHEDULES = ("constant", "cosine")


@dataclass
class Stage:
    """`epochs` more epochs; `unfreeze_backbone_layers`: None leaves the backbone as it is, 0 freezes it, N makes
    its last N layers trainable (BatchNormalization stays frozen), -1 all of them; `unfreeze_backbone_fraction`
    instead: the top fraction of its layers (0.2: the last fifth), whatever the backbone's depth;
    `learning_rate`: None keeps the task's configured optimizer's; `schedule`: constant, or cosine (Keras'
    CosineDecay to 0 over the stage, after `warmup_epochs` of linear warm-up from 0)."""

    name: str = "fit"
    epochs: int = 1
    unfreeze_backbone_layers: int | None = None
    learning_rate: float | None = None
    unfreeze_backbone_fraction: float | None = None
    schedule: str = "constant"
    warmup_epochs: int = 0

    def __post_init__(self):
        key = f"trainer.stages[{self.name}]"
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 1:
            raise CatdogError(f"{key}.epochs={self.epochs!r}: must be a positive integer.")
        layers = self.unfreeze_backbone_layers
        if layers is not None and (not isinstance(layers, int) or isinstance(layers, bool) or layers < -1):
            raise CatdogError(f"{key}.unfreeze_backbone_layers={layers!r}: must be null, -1 (all), 0 or a positive "
                              "integer.")
        rate = self.learning_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0):
            raise CatdogError(f"{key}.learning_rate={rate!r}: must be a positive number or null.")
        fraction = self.unfreeze_backbone_fraction
        if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                                     or not 0 <= fraction <= 1 or layers is not None):
            raise CatdogError(f"{key}.unfreeze_backbone_fraction={fraction!r}: must be in [0, 1], and given instead "
                              "of unfreeze_backbone_layers.")
        if self.schedule not in SCHEDULES:
            raise CatdogError(f"{key}.schedule={self.schedule!r}: must be one of {', '.join(SCHEDULES)}.")
        warm = self.warmup_epochs
        if not isinstance(warm, int) or isinstance(warm, bool) or not 0 <= warm < self.epochs:
            raise CatdogError(f"{key}.warmup_epochs={warm!r}: must be a whole number below the stage's epochs.")

    @property
    def unfreezes(self) -> bool:
        return self.unfreeze_backbone_layers is not None or self.unfreeze_backbone_fraction is not None

    def learning_rate_at(self, base: float, steps_per_epoch: int):
        """The stage's rate: `base`, or Keras' CosineDecay over its steps after a linear warm-up to `base`."""
        if self.schedule == "constant":
            return base
        import keras

        warmup, total = self.warmup_epochs * steps_per_epoch, self.epochs * steps_per_epoch
        return keras.optimizers.schedules.CosineDecay(0.0 if warmup else base, max(total - warmup, 1),
                                                      warmup_target=base if warmup else None, warmup_steps=warmup)


def as_stages(stages, max_epochs) -> list[Stage]:
    """Stages from config (dicts or Stage objects); none means one stage of `max_epochs`."""
    if not stages:
        return [Stage("fit", max_epochs)]
    out = []
    for i, stage in enumerate(stages):
        if isinstance(stage, Stage):
            out.append(stage)
            continue
        try:
            out.append(Stage(**{"name": f"stage{i}", **dict(stage)}))
        except TypeError as exc:
            raise CatdogError(f"trainer.stages[{i}]: {exc}; a stage takes name, epochs, unfreeze_backbone_layers "
                              "or unfreeze_backbone_fraction, learning_rate, schedule and warmup_epochs.") from exc
    if len({s.name for s in out}) != len(out):
        raise CatdogError(f"trainer.stages: names must differ ({[s.name for s in out]}).")
    return out
