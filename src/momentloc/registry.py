"""Name -> class registries for models and plug-in objectives."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

T = TypeVar("T")

_MODELS: dict[str, type] = {}
_OBJECTIVES: dict[str, Callable[..., Any]] = {}

# Modules that register entries on import; imported lazily so that
# `momentloc --help` does not pay for torch model code.
_MODEL_MODULES = (
    "momentloc.models.prior",
    "momentloc.models.span",
    "momentloc.models.tan2d",
    "momentloc.models.snag",
    "momentloc.models.vlanet",
    "momentloc.models.fsan",
    "momentloc.models.viga",
    "momentloc.models.sg_sci",
)
_OBJECTIVE_MODULES = (
    "momentloc.objectives.support_set",
    "momentloc.objectives.multiscale_contrast",
)


def register_model(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: make a model constructible by ``name`` from config."""

    def wrap(cls: type[T]) -> type[T]:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = cls
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return wrap


def register_objective(name: str) -> Callable[[T], T]:
    """Decorator: make a plug-in objective findable by ``name``."""

    def wrap(obj: T) -> T:
        _OBJECTIVES[name] = obj  # type: ignore[assignment]
        return obj

    return wrap


def _load(modules: tuple[str, ...]) -> None:
    import importlib

    for mod in modules:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            # A method module that does not exist yet is simply not listed;
            # any other missing import is a real error.
            if err.name != mod:
                raise


def model_names() -> list[str]:
    """Every registered model name, sorted."""
    _load(_MODEL_MODULES)
    return sorted(_MODELS)


def objective_names() -> list[str]:
    """Every registered objective name, sorted."""
    _load(_OBJECTIVE_MODULES)
    return sorted(_OBJECTIVES)


def get_model_class(name: str) -> type:
    """The model class registered as ``name`` (error lists the known names)."""
    if name not in _MODELS:
        # Most names live in the module of the same name; import just that one first.
        _load(tuple(m for m in _MODEL_MODULES if m.rsplit(".", 1)[1] == name))
    if name not in _MODELS:
        _load(_MODEL_MODULES)
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def get_objective(name: str) -> Any:
    """The objective registered as ``name`` (error lists the known names)."""
    _load(_OBJECTIVE_MODULES)
    if name not in _OBJECTIVES:
        raise KeyError(f"unknown objective {name!r}; known: {', '.join(sorted(_OBJECTIVES))}")
    return _OBJECTIVES[name]
