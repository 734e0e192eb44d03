"""Named models: the options of the `model` config group, built outside a training run (benchmarks, tests)."""

from catdog.errors import CatdogError


def available_models() -> list[str]:
    """The `model` config group's options that build a model by themselves (not its shared base)."""
    from pathlib import Path

    from catdog.utils.config import config_dir

    return sorted(p.stem for p in (Path(config_dir()) / "model").glob("*.yaml") if p.stem != "classifier")


def build_model(name: str, image_size, num_classes: int = 2, overrides=()):
    """`conf/model/<name>.yaml` as an ImageClassifier for `image_size` (height, width) and `num_classes`
    classes; `overrides`: Hydra overrides of the model group, e.g. ["model.backbone.weights=null"]."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from catdog.utils.config import build, config_dir

    if name not in available_models():
        raise CatdogError(f"model={name!r} is not a model option; choose one of {available_models()}.")
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", *overrides])
    classes = [str(i) for i in range(num_classes)]
    return build(cfg.model, "model", class_names=classes, image_size=list(image_size)[:2])
