"""Training stages: consecutive fits of one task, each with its own epochs, trainable backbone and learning
rate (a head stage on a frozen backbone, then fine-tuning its top layers, for example)."""

from dataclasses import dataclass

from catdog.errors import CatdogError


@dataclass
class Stage:
    """`epochs` more epochs; `unfreeze_backbone_layers`: None leaves the backbone as it is, 0 freezes it, N makes
    its last N layers trainable (BatchNormalization stays frozen), -1 all of them; `learning_rate`: None keeps
    the task's configured optimizer's."""

    name: str = "fit"
    epochs: int = 1
    unfreeze_backbone_layers: int | None = None
    learning_rate: float | None = None

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
                              "and learning_rate.") from exc
    if len({s.name for s in out}) != len(out):
        raise CatdogError(f"trainer.stages: names must differ ({[s.name for s in out]}).")
    return out
