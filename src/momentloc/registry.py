"""Name -> object registries (models, plug-in objectives, text encoders) that find their own modules."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


def discover(package: str) -> list[str]:
    """Full names of the modules directly inside ``package`` (sub-packages and ``_private`` modules left out), sorted."""
    pkg = importlib.import_module(package)
    return sorted(f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)
                  if not m.ispkg and not m.name.startswith("_"))


class Registry(Generic[T]):
    """Entries registered by name from the modules of one package, imported only when a name is asked for.

    Every module of the package is a candidate: a method module registers its
    entry on import, a helper module (shared layers, a base class) registers
    nothing and so is never listed. A new module is found by being there.
    """

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package
        self.entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: make ``obj`` findable by ``name`` (a second, different object under one name is an error)."""

        def wrap(obj: T) -> T:
            if name in self.entries and self.entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self.entries[name] = obj
            return obj

        return wrap

    def modules(self) -> list[str]:
        """The modules that may register entries (all of the package's, found on disk)."""
        return discover(self.package)

    def load_all(self) -> None:
        """Import every module of the package (an import error in one is raised, never skipped)."""
        for mod in self.modules():
            importlib.import_module(mod)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self.load_all()
        return sorted(self.entries)

    def get(self, name: str) -> T:
        """The entry registered as ``name``; a KeyError lists the known names."""
        if name not in self.entries:
            # Entries mostly live in the module of the same name: import just that one first.
            same = f"{self.package}.{name}"
            if same in self.modules():
                importlib.import_module(same)
        if name not in self.entries:
            self.load_all()
        if name not in self.entries:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self.entries))}")
        return self.entries[name]


MODELS: Registry[type] = Registry("model", "momentloc.models")
OBJECTIVES: Registry[Any] = Registry("objective", "momentloc.objectives")
TEXT_ENCODERS: Registry[Callable[..., Any]] = Registry("text encoder", "momentloc.data.text")


def register_model(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: make a model constructible by ``name`` from config; it must declare its supervision."""

    def wrap(cls: type[T]) -> type[T]:
        from momentloc.types import SUPERVISIONS

        kind = getattr(cls, "supervision", None)
        if kind not in SUPERVISIONS:
            raise ValueError(f"model {name!r}: supervision must be one of {SUPERVISIONS}, got {kind!r}")
        MODELS.register(name)(cls)
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return wrap


def register_objective(name: str) -> Callable[[T], T]:
    """Decorator: make a plug-in objective findable by ``name``."""
    return OBJECTIVES.register(name)


def register_text_encoder(name: str) -> Callable[[T], T]:
    """Decorator: make a vocabulary builder findable by ``name`` (the config's ``data.text.kind``)."""
    return TEXT_ENCODERS.register(name)


def model_names() -> list[str]:
    """Every registered model name, sorted."""
    return MODELS.names()


def models_by_supervision(supervision: str) -> list[str]:
    """The registered model names whose class declares ``supervision`` (full, weak or point), sorted."""
    return [name for name in model_names() if MODELS.get(name).supervision == supervision]  # type: ignore[attr-defined]


def objective_names() -> list[str]:
    """Every registered objective name, sorted."""
    return OBJECTIVES.names()


def text_encoder_names() -> list[str]:
    """Every registered text encoder name, sorted."""
    return TEXT_ENCODERS.names()


def get_model_class(name: str) -> type:
    """The model class registered as ``name`` (error lists the known names)."""
    return MODELS.get(name)


def get_objective(name: str) -> Any:
    """The objective registered as ``name`` (error lists the known names)."""
    return OBJECTIVES.get(name)


def get_text_encoder(name: str) -> Callable[..., Any]:
    """The vocabulary builder registered as ``name`` (error lists the known names)."""
    return TEXT_ENCODERS.get(name)
