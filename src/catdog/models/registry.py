"""A name -> builder registry: `@register_model("name")` and `build_model(name, ...)`."""

from catdog.errors import CatdogError

_BUILDERS = {}


def register_model(name: str):
    """Register `fn(input_shape, num_classes, **options) -> keras.Model` under `name`."""

    def decorator(fn):
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = fn
        return fn

    return decorator


def available_models() -> list[str]:
    return sorted(_BUILDERS)


def build_model(name: str, input_shape, num_classes: int, **options):
    if name not in _BUILDERS:
        raise CatdogError(f"model.name={name!r} is not a registered model; choose one of {available_models()}.")
    try:
        return _BUILDERS[name](tuple(input_shape), num_classes, **options)
    except TypeError as exc:
        raise CatdogError(f"model={name}: bad option ({exc}).") from exc
