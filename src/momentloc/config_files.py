"""The YAML configs shipped inside the package (``momentloc/configs``), found with importlib.resources.

``configs/data/`` holds one file per dataset, ``configs/model/`` one file per method (the parameters its
dataset configs share), ``configs/experiment/`` the runnable experiments that layer them with ``base:``.
The repository's top-level ``configs`` is a link to the same folder, so ``configs/experiment/<name>.yaml``
works from a checkout and a shipped name works from any folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from momentloc.errors import ConfigError


def configs_root() -> Path:
    """The folder of shipped configs inside the installed package (a real folder: configs layer by file path)."""
    root = Path(str(resources.files("momentloc").joinpath("configs")))
    if not root.is_dir():
        raise ConfigError(f"{root}: the shipped configs are missing from this installation of momentloc")
    return root


def experiments_dir() -> Path:
    """The folder of shipped experiment configs."""
    return configs_root() / "experiment"


def experiment_names() -> list[str]:
    """Names of the shipped experiment configs, sorted (what ``momentloc list`` shows)."""
    return sorted(p.stem for p in experiments_dir().glob("*.yaml"))


def experiment_config(name: str) -> Path:
    """The shipped experiment config called ``name`` (with or without ``.yaml``); an unknown name is an error."""
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    path = experiments_dir() / f"{stem}.yaml"
    if "/" in stem or not path.is_file():
        raise ConfigError(f"{name!r}: no shipped experiment config of that name (momentloc list shows them)")
    return path


def resolve_config(config: Path) -> Path:
    """``config`` itself when it exists or has a folder part; else the shipped experiment config of that bare name."""
    if config.exists() or config.parent != Path("."):
        return config
    path = experiments_dir() / f"{config.stem}.yaml"
    return path if path.is_file() else config
